"""The ASGI lifespan protocol: startup before serving, shutdown after the drain."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from monoceros.config import LifespanMode
from monoceros.errors import LifespanStartupFailed
from monoceros.types import ASGIApp, Message

logger = logging.getLogger("monoceros.error")


class Lifespan:
    def __init__(self, app: ASGIApp, mode: LifespanMode, state: dict[str, Any]) -> None:
        self.app = app
        self.mode = mode
        self.state = state
        self.supported = mode != "off"
        # For the monoceros_lifespan_state metric.
        self.phase = "starting" if self.supported else "unsupported"
        self._events: asyncio.Queue[Message] = asyncio.Queue()
        self._startup: asyncio.Future[str | None] | None = None
        self._shutdown: asyncio.Future[str | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._received = False

    async def startup(self) -> None:
        """Run the app's startup; raise LifespanStartupFailed with its message if it fails."""
        if not self.supported:
            return
        loop = asyncio.get_running_loop()
        self._startup = loop.create_future()
        self._shutdown = loop.create_future()
        self._task = loop.create_task(self._main())
        logger.info("Waiting for application startup.")
        await self._events.put({"type": "lifespan.startup"})
        failure = await self._startup
        if failure is not None:
            self.phase = "failed"
            raise LifespanStartupFailed(f"Application startup failed: {failure}")
        if self.supported:
            self.phase = "started"
            logger.info("Application startup complete.")
        else:
            self.phase = "unsupported"

    async def shutdown(self) -> None:
        if not self.supported or self._shutdown is None or self._task is None:
            return
        logger.info("Waiting for application shutdown.")
        self.phase = "stopping"
        await self._events.put({"type": "lifespan.shutdown"})
        failure = await self._shutdown
        if failure is not None:
            logger.error("Application shutdown failed: %s", failure)
        else:
            logger.info("Application shutdown complete.")
        self.phase = "stopped" if failure is None else "failed"
        await self._task

    async def _main(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            # The process is exiting without a lifespan shutdown (a second Ctrl+C): not an error.
            self._resolve(self._startup, "cancelled")
            self._resolve(self._shutdown, None)
            raise
        except BaseException as exc:
            if self.mode == "auto" and not self._received:
                # Apps without lifespan support raise on the unknown scope type before they
                # ever call receive(); an app that did call it has really failed.
                logger.info("ASGI 'lifespan' protocol appears unsupported.")
                self.supported = False
                reason = None
            else:
                reason = f"{type(exc).__name__}: {exc}"
                if self._startup is not None and not self._startup.done():
                    # Reported as one line, "Application startup failed: <reason>"; the
                    # traceback is there with --log-level debug.
                    logger.debug("Exception in 'lifespan' protocol", exc_info=exc)
                else:
                    logger.error("Exception in 'lifespan' protocol", exc_info=exc)
            self._resolve(self._startup, reason)
            self._resolve(self._shutdown, reason)
        else:
            if self.mode == "auto" and not self._received:
                # `if scope["type"] != "http": return` is the other common way to say "no
                # lifespan here"; uvicorn serves such apps too.
                logger.info("ASGI 'lifespan' protocol appears unsupported.")
                self.supported = False
                self._resolve(self._startup, None)
            else:
                self._resolve(self._startup, "the app returned before completing startup")
            self._resolve(self._shutdown, None)

    async def _receive(self) -> Message:
        self._received = True
        return await self._events.get()

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self._resolve(self._startup, None)
        elif kind == "lifespan.startup.failed":
            self._resolve(self._startup, message.get("message") or "lifespan.startup.failed")
        elif kind == "lifespan.shutdown.complete":
            self._resolve(self._shutdown, None)
        elif kind == "lifespan.shutdown.failed":
            self._resolve(self._shutdown, message.get("message") or "lifespan.shutdown.failed")
        else:
            raise RuntimeError(f"Unexpected lifespan message {kind!r}")

    @staticmethod
    def _resolve(future: asyncio.Future[str | None] | None, failure: str | None) -> None:
        if future is not None and not future.done():
            future.set_result(failure)
