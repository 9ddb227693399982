"""`--env-file`: variables loaded into the environment before the app is imported, read by
python-dotenv as uvicorn reads them: `export`, quotes and escapes, multi-line quoted values,
`${VAR}` expanded from the file and the environment; a variable already set keeps its value.

Where python-dotenv would skip a line it cannot parse with a warning, we refuse to start and
name the line: a key that silently goes missing is found much later.
"""

from __future__ import annotations

import io
import logging

from dotenv import load_dotenv
from dotenv.parser import parse_stream

from monoceros.errors import StartupError

logger = logging.getLogger("monoceros.error")


def load_env_file(path: str) -> None:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise StartupError(f"Cannot read --env-file {path}: {reason}") from exc
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            line = binding.original.string.strip().splitlines()[0]
            raise StartupError(
                f"--env-file {path}, line {binding.original.line}: cannot parse {line!r}"
            )
    logger.info("Loading environment from '%s'", path)
    load_dotenv(stream=io.StringIO(text), override=False)
