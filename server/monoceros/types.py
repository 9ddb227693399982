"""The ASGI vocabulary, named once."""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The scope the server builds and its observers read: a plain dict, so that compiled code looks
# its keys up natively. The app is handed it as a Scope.
ServerScope = dict[str, Any]
