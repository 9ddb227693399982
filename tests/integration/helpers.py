"""Helpers for the subprocess tests: app modules on disk and TLS material."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization

# Each subprocess test gives the server this long to start, stop or fail.
TIMEOUT = 10.0


class TLSFiles:
    """A throwaway CA and a server certificate for 127.0.0.1, written as PEM files."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.cert = str(directory / "server.pem")
        self.key = str(directory / "server.key")
        server.cert_chain_pems[0].write_to_path(self.cert)
        server.private_key_pem.write_to_path(self.key)
        self._private_key = server.private_key_pem.bytes()

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def encrypted_key(self, password: bytes) -> str:
        """The server key again, encrypted (trustme cannot do that itself)."""
        key = serialization.load_pem_private_key(self._private_key, password=None)
        path = Path(self.key).with_suffix(".encrypted.key")
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(password),
            )
        )
        return str(path)


async def keep_alive_client(port: int, request: bytes, requests: int) -> int:
    """`request` sent `requests` times on one connection, one after the other (each response
    read whole, by its Content-Length); how many were 200s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answered = 0
    try:
        for _ in range(requests):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            answered += head.startswith(b"HTTP/1.1 200 ")
    finally:
        writer.close()
    return answered


def concurrent_load(port: int, request: bytes, connections: int, requests: int) -> int:
    """`connections` keep-alive clients at once, each sending `request` `requests` times (bounded
    in time too); how many 200s they got."""

    async def load() -> int:
        clients = [keep_alive_client(port, request, requests) for _ in range(connections)]
        return sum(await asyncio.wait_for(asyncio.gather(*clients), TIMEOUT * 6))

    return asyncio.run(load())
