"""Build the server's SSLContext from `--ssl-*`, with one clear line for each failure."""

from __future__ import annotations

import ssl
import warnings

from monoceros.config import TLSSettings
from monoceros.errors import StartupError


class _NoPassword(Exception):
    pass


def create_ssl_context(tls: TLSSettings, *, http2: bool = False) -> ssl.SSLContext:
    assert tls.certfile is not None
    # ssl's errors do not say which file is missing, so check each one first.
    for flag, path in (
        ("--ssl-certfile", tls.certfile),
        ("--ssl-keyfile", tls.keyfile),
        ("--ssl-ca-certs", tls.ca_certs),
    ):
        if path is not None:
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise StartupError(f"Cannot read {flag} {path}: {exc.strerror}") from exc
    with warnings.catch_warnings():  # the fixed-version protocols are deprecated, not gone
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.SSLContext(tls.version)
    try:
        # Without a password, OpenSSL would prompt on the terminal for an encrypted key.
        context.load_cert_chain(tls.certfile, tls.keyfile, tls.keyfile_password or _no_password)
    except _NoPassword:
        raise StartupError(
            f"TLS key {tls.keyfile or tls.certfile} is encrypted: pass --ssl-keyfile-password"
        ) from None
    except ssl.SSLError as exc:
        key = f" with key {tls.keyfile}" if tls.keyfile else ""
        raise StartupError(
            f"Cannot load TLS certificate {tls.certfile}{key}: {_reason(exc)}"
        ) from exc
    context.verify_mode = ssl.VerifyMode(tls.cert_reqs)
    if tls.ca_certs:
        try:
            context.load_verify_locations(tls.ca_certs)
        except ssl.SSLError as exc:
            raise StartupError(
                f"Cannot load --ssl-ca-certs {tls.ca_certs}: {_reason(exc)}"
            ) from exc
    if tls.ciphers:  # else OpenSSL's defaults
        try:
            context.set_ciphers(tls.ciphers)
        except ssl.SSLError as exc:
            raise StartupError(f"--ssl-ciphers {tls.ciphers!r} selects no cipher") from exc
    # ALPN: HTTP/2 when --http2 and the client offers it (RFC 9113 section 3.2), else 1.1.
    context.set_alpn_protocols(["h2", "http/1.1"] if http2 else ["http/1.1"])
    return context


def _no_password() -> str:
    raise _NoPassword


def _reason(exc: ssl.SSLError) -> str:
    if exc.reason is None or exc.reason == "PEM lib":
        # "[SSL] PEM lib": OpenSSL's way of saying the PEM data was not what it expected.
        return "not a PEM certificate and key, the key does not match, or its password is wrong"
    return str(exc.reason).replace("_", " ").lower()
