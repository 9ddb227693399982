"""Binding the application listener: TCP (IPv4/IPv6), a unix socket, or an inherited fd.

The socket is created here, not by `loop.create_server(host, port)`, so binding fails fast
with one clear line, and so a supervisor can bind once and hand the socket to its workers.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat

from monoceros.config import ListenSettings
from monoceros.errors import StartupError


def bind_socket(listen: ListenSettings) -> socket.socket:
    if listen.fd is not None:
        return _from_fd(listen.fd)
    if listen.uds is not None:
        return _bind_unix(listen.uds, listen.backlog)
    return _bind_tcp(listen.host, listen.port, listen.backlog, reuse_port=listen.reuse_port)


def close_sockets(sockets: list[socket.socket], listen: ListenSettings) -> None:
    """Close the listener's sockets, and remove the unix socket's file if we made it."""
    for sock in sockets:
        if sock.family == socket.AF_UNIX and listen.uds:
            with contextlib.suppress(OSError):
                os.unlink(listen.uds)
        sock.close()


def describe(sock: socket.socket, scheme: str) -> str:
    """The address a person would paste into a browser or curl."""
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{address}"
    host, port = address[0], address[1]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def _bind_tcp(host: str, port: int, backlog: int, *, reuse_port: bool = False) -> socket.socket:
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise StartupError(f"Cannot resolve --host {host!r}: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        # --reuse-port: every worker binds its own socket and the kernel spreads connections.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise StartupError(f"Cannot listen on {host}:{port}: {reason}") from exc
    sock.setblocking(False)
    return sock


def _bind_unix(path: str, backlog: int) -> socket.socket:
    _remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
        # As uvicorn does: a reverse proxy running as another user must be able to connect.
        os.chmod(path, 0o666)
    except OSError as exc:
        sock.close()
        raise StartupError(f"Cannot listen on unix socket {path}: {exc.strerror}") from exc
    sock.setblocking(False)
    return sock


def _remove_stale_socket(path: str) -> None:
    """Remove a socket file left by a dead server; refuse to touch anything else."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise StartupError(
            f"Cannot listen on unix socket {path}: a file that is not a socket is there"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # nobody answers: stale
    else:
        raise StartupError(
            f"Cannot listen on unix socket {path}: another server is listening there"
        )
    finally:
        probe.close()


def _from_fd(fd: int) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise StartupError(f"--fd {fd} is not a usable socket: {exc.strerror}") from exc
    if sock.type != socket.SOCK_STREAM:
        raise StartupError(f"--fd {fd} is not a stream socket")
    sock.setblocking(False)
    return sock
