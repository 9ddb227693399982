"""Wire protocols: bytes in, ASGI events to the app, bytes out. No logging or metrics here."""
