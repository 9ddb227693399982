"""--loop's names and loop factories, and --ssl-version and the --ssl-ciphers default in the
SSLContext built."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import uvloop

from monoceros.config import TLSSettings
from monoceros.errors import StartupError
from monoceros.loops import loop_factory
from monoceros.tls import create_ssl_context
from tests.integration.helpers import TLSFiles


@pytest.mark.parametrize(
    ("name", "factory"),
    [
        pytest.param("auto", uvloop.new_event_loop, id="auto"),
        pytest.param("uvloop", uvloop.new_event_loop, id="uvloop"),
        pytest.param("zuvloop", uvloop.new_event_loop, id="zuvloop-runs-uvloop"),
        pytest.param("asyncio", None, id="asyncio"),
        pytest.param("none", None, id="none-is-asyncio"),
        pytest.param("asyncio:new_event_loop", asyncio.new_event_loop, id="module-attribute"),
    ],
)
def test_loop_factory(name: str, factory: object) -> None:
    assert loop_factory(name) is factory


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param(
            "nowhere:factory", "--loop nowhere:factory: Could not import module", id="module"
        ),
        pytest.param("asyncio:nothing", '--loop asyncio:nothing: Attribute "nothing"', id="attr"),
        pytest.param("ssl:CERT_NONE", "--loop ssl:CERT_NONE: not callable", id="not-callable"),
    ],
)
def test_loop_factory_errors(name: str, message: str) -> None:
    with pytest.raises(StartupError, match=message):
        loop_factory(name)


@pytest.mark.parametrize("version", [int(ssl.PROTOCOL_TLS_SERVER), int(ssl.PROTOCOL_TLS)])
def test_ssl_version_and_openssls_ciphers(tmp_path: Path, version: int) -> None:
    files = TLSFiles(tmp_path)
    context = create_ssl_context(
        TLSSettings(certfile=files.cert, keyfile=files.key, version=version)
    )
    assert int(context.protocol) == version
    default = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert [c["name"] for c in context.get_ciphers()] == [c["name"] for c in default.get_ciphers()]
