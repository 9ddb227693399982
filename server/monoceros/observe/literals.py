"""JSON literals of the values an access line carries, and the memory of those that repeat.

Every value a client or the app could have chosen goes into a line as a JSON string made by
orjson, which escapes quotes, backslashes and control characters: no value can break or forge
a line. Values that repeat from request to request (methods, hosts, user agents, addresses,
paths) are encoded once and looked up after (`Literals`), within bounds a hostile client
cannot grow. The line's templates are observe/access.py's.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

# What `Literals` remembers: this many distinct values of each kind (then it starts over:
# client ports churn), each at most this long (so hostile headers cannot grow a kind past
# ~1 MiB, nor the origin fields, which hold four values and their names, past ~4 MiB).
MAX_LITERALS = 4096
MAX_LITERAL_LENGTH = 256
MAX_ORIGIN_LENGTH = 1024

# Held as a static under mypyc; a module global would be a dict lookup at every call.
_dumps: Final = orjson.dumps


def json_literal(value: Any) -> bytes:
    """`value` as JSON: a string escaped by orjson (bytes read as latin-1, as HTTP defines
    header bytes), or null for None."""
    if type(value) is str:  # the common case, checked first: isinstance(tuple) is slower
        try:
            return _dumps(value)
        except TypeError:  # a lone surrogate: an app's str, decoded with surrogateescape
            return _dumps(_without_surrogates(value))
    return _other_literal(value)


def _other_literal(value: Any) -> bytes:
    """Anything but a str, as the line's fields are strings or null (the log schemas): None
    as null, bytes-like objects read as latin-1, whatever else an app put in its scope as
    its repr. Never an exception: the line is written whatever the app did."""
    if value is None:
        return b"null"
    return _dumps(_without_surrogates(_text_of(value)))


def _without_surrogates(text: str) -> str:
    """`text` as UTF-8 can hold it: a lone surrogate as its escape (\\udcff)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _text_of(value: Any) -> str:
    try:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).decode("latin-1")
        return value if isinstance(value, str) else repr(value)
    except Exception:  # a released memoryview, a repr that raises...
        return f"<{type(value).__name__}>"


# An address or a Host header as two JSON values: host (or IP) and port (null: none known).
Pair = tuple[bytes, bytes]
_NULLS: Final[Pair] = (b"null", b"null")


class LastText:
    """One field's last str and its literal. The server fills the fields `Literals.text` takes
    from a few str objects of its own (the method table's "GET", the scope's "1.1", the
    outcome's "complete"), the same object request after request: telling it by identity
    costs a compare where the lookup cost 140 instructions."""

    __slots__ = ("literal", "value")

    def __init__(self) -> None:
        self.value: Any = None  # None's literal is null: right for None too
        self.literal = b"null"


class Literals:
    """JSON literals of the values that repeat from request to request (methods, hosts, user
    agents, addresses), each made once, and each connection's origin fields (`origins`, by
    peer address). Bounded: at most MAX_LITERALS of each kind, none longer than
    MAX_LITERAL_LENGTH (MAX_ORIGIN_LENGTH); anything else is encoded each time."""

    __slots__ = (
        "_addresses",
        "_headers",
        "_hosts",
        "_paths",
        "_texts",
        "last_method",
        "last_outcome",
        "last_scheme",
        "last_version",
        "origins",
    )

    def __init__(self) -> None:
        # Apart, so that a header's bytes are never compared with a scope field's str, and
        # paths (which may not repeat) never push the others out.
        self._headers: dict[bytes, bytes] = {}
        self._texts: dict[str, bytes] = {}
        self._paths: dict[str, bytes] = {}
        self._addresses: dict[Any, Pair] = {}
        self._hosts: dict[Any, Pair] = {}
        # A line's origin fields by the peer address they were last rendered for.
        self.origins: dict[tuple[Any, ...], OriginMemo] = {}
        # One per field `text` takes: a memo shared by two fields would change at each.
        self.last_method = LastText()
        self.last_outcome = LastText()
        self.last_scheme = LastText()
        self.last_version = LastText()

    def header(self, value: Any) -> bytes:
        """A header value (bytes), or null if the request had none."""
        if type(value) is not bytes:
            return b"null" if value is None else json_literal(value)
        literal = self._headers.get(value)
        if literal is None:
            literal = _remember(self._headers, value, json_literal(value))
        return literal

    def text(self, value: Any, last: LastText) -> bytes:
        """A field the server set as a str (method, outcome, scheme, HTTP version); `last` is
        that field's own."""
        if value is last.value:
            return last.literal
        if type(value) is not str:
            return json_literal(value)  # an app changed the scope: encoded, not remembered
        literal = self._texts.get(value)
        if literal is None:
            literal = _remember(self._texts, value, json_literal(value))
        last.value = value  # a str: the same object always has the same literal
        last.literal = literal
        return literal

    def path(self, value: Any) -> bytes:
        """The request's path: most requests go to a few of them (a dict lookup costs a
        fifth of encoding one)."""
        if type(value) is not str:
            return json_literal(value)
        literal = self._paths.get(value)
        if literal is None:
            literal = _remember(self._paths, value, json_literal(value))
        return literal

    def address(self, address: Any) -> Pair:
        """A (host, port) pair as its host and its port (null for port 0: a client a proxy
        header named without one), or two nulls. Apart, an IPv6 address reads unambiguously."""
        if not _server_address(address):
            # What an app put in its scope (ASGI allows a list), neither looked up nor
            # remembered: ("h", 80.0) or ("h", True) equal ("h", 80), and would find its pair.
            return _address_pair(address) if type(address) in (tuple, list) else _NULLS
        if address is None:
            return _NULLS
        pair = self._addresses.get(address)
        if pair is None:
            pair = _address_pair(address)
            _keep(self._addresses, address, pair, len(pair[0]))
        return pair

    def remember_origin(self, peer: tuple[Any, ...], memo: OriginMemo) -> None:
        """Keeps `memo` for `peer` if its values are the server's own kinds (so that values
        equal to them are alike in a line) and its fields are not overlong."""
        if memo.of_server_kinds():
            _keep(self.origins, peer, memo, len(memo.fields), MAX_ORIGIN_LENGTH)

    def host(self, value: Any) -> Pair:
        """A Host header as its host and port (the port null when not given), for the
        schemas that name them apart."""
        if type(value) is not bytes:
            if value is None:
                return _NULLS
            return _split_host(_text_of(value))  # what an app put there
        pair = self._hosts.get(value)
        if pair is None:
            pair = _split_host(value.decode("latin-1"))
            _keep(self._hosts, value, pair, len(pair[0]))
        return pair


def _address_pair(address: tuple[Any, ...] | list[Any]) -> Pair:
    if len(address) != 2:
        return _NULLS
    host, port = address[0], address[1]
    return json_literal(host), (b"%d" % port if type(port) is int and port else b"null")


def _split_host(text: str) -> Pair:
    if text.startswith("["):  # an IPv6 literal: [::1]:8000
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, colon, port = text.rpartition(":")
        if not colon:
            host, port = text, ""
    # isascii: "²" is a digit to isdigit(), and no JSON number.
    digits = port.isascii() and port.isdigit() and len(port) <= 5
    return json_literal(host), (port.encode() if digits else b"null")


def _remember(literals: dict[Any, bytes], value: Any, literal: bytes) -> bytes:
    _keep(literals, value, literal, len(literal))
    return literal


def _keep(
    store: dict[Any, Any], key: Any, value: Any, length: int, longest: int = MAX_LITERAL_LENGTH
) -> None:
    """Keeps `value` (`length` bytes long) under `key` unless it is longer than `longest`; a
    store holding MAX_LITERALS starts over (client ports churn; hostile values may too)."""
    if length <= longest:
        if len(store) >= MAX_LITERALS:
            store.clear()
        store[key] = value


class OriginMemo:
    """A line's origin fields (observe/access.py's `origin_fields`: client to User-Agent) as
    last rendered for one peer, with the values they were rendered from. `matches` is what
    tells a request's values alike: a few compares where rendering took about 1,500
    instructions."""

    __slots__ = (
        "client",
        "fields",
        "host",
        "schema",
        "scheme",
        "user_agent",
        "version",
    )

    def __init__(
        self,
        schema: int,
        client: Any,
        scheme: Any,
        version: Any,
        host: Any,
        user_agent: Any,
        fields: bytes,
    ) -> None:
        self.schema = schema
        self.client = client
        self.scheme = scheme
        self.version = version
        self.host = host
        self.user_agent = user_agent
        self.fields = fields

    def of_server_kinds(self) -> bool:
        """Whether its values are all of the kinds the server makes them: only then are values
        equal to them written alike (an app's ("h", 80.0) equals ("h", 80) but is written
        otherwise), so only then is it kept."""
        return (
            _server_address(self.client)
            and type(self.scheme) is str
            and type(self.version) is str
            and (self.host is None or type(self.host) is bytes)
            and (self.user_agent is None or type(self.user_agent) is bytes)
        )

    def matches(
        self, schema: int, client: Any, scheme: Any, version: Any, host: Any, user_agent: Any
    ) -> bool:
        """Whether a request with these values has these fields."""
        return (
            schema == self.schema
            and (client is self.client or (_server_address(client) and client == self.client))
            and _same_text(scheme, self.scheme)
            and _same_text(version, self.version)
            and _same_header(host, self.host)
            and _same_header(user_agent, self.user_agent)
        )


def _server_address(address: Any) -> bool:
    """None or (host, port) as the server makes them."""
    return address is None or (
        type(address) is tuple
        and len(address) == 2
        and type(address[0]) is str
        and type(address[1]) is int
    )


def _same_text(value: Any, remembered: str) -> bool:
    return value is remembered or (type(value) is str and value == remembered)


def _same_header(value: Any, remembered: bytes | None) -> bool:
    # Identity first: None, or the same object; else bytes compared as bytes.
    return value is remembered or (
        type(value) is bytes and remembered is not None and value == remembered
    )
