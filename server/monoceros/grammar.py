"""HTTP's token grammar (RFC 9110 section 5.6.2), written once: header field names, methods
and the parameter names of `Forwarded` are tokens."""

from __future__ import annotations

import re
from typing import Final

# tchar: "!" "#" "$" "%" "&" "'" "*" "+" "-" "." "^" "_" "`" "|" "~", digits and letters.
TOKEN_PATTERN: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN: Final = re.compile(TOKEN_PATTERN)


def is_token(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None
