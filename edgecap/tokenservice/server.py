"""Serving the API with uvicorn; logging as JSON lines; a graceful SIGTERM.

uvicorn alone would close open WebSockets with 1012 at once on SIGTERM. Here the first
SIGTERM (or SIGINT) first drains: readiness turns 503, new requests are refused with
`draining`, every proxied session is asked to end (Terminate upstream, so the provider bills
nothing more and sends its Termination, then a 1012 close so the device reconnects through
another replica), and only then, or after `drain_seconds`, uvicorn stops. A second signal
stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
from collections.abc import Iterator
from typing import Any

import uvicorn

from edgecap.systemd.notify import Notifier
from edgecap.tokenservice.app import build_app
from edgecap.tokenservice.service import TokenService


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, and the audit fields or message."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        audit = getattr(record, "audit", None)
        if isinstance(audit, dict):
            entry.update(audit)
        else:
            entry["message"] = record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            entry["exception"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(entry, sort_keys=False)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # the audit log replaces it


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service: TokenService) -> None:
        super().__init__(config)
        self.service = service
        self.notifier = Notifier()
        self._drain: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            logging.getLogger("edgecap.tokens").info(
                "edgecap-tokens serving on %s", self.service.config.listen
            )
            self.notifier.ready(f"serving on {self.service.config.listen}")

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)
        try:
            yield
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    def _on_signal(self) -> None:
        if self._drain is not None:  # a second signal: stop now
            self.force_exit = True
            self.should_exit = True
            return
        self.notifier.stopping()
        self._drain = asyncio.get_running_loop().create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        sessions = len(self.service.sessions.open)
        logging.getLogger("edgecap.tokens").info("draining %d open session(s)", sessions)
        await self.service.drain(self.service.config.drain_seconds)
        self.should_exit = True


def serve(service: TokenService) -> int:
    config = service.config
    app = build_app(service)
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        ws="websockets-sansio",
        http="h11",
        lifespan="on",
        access_log=False,
        log_config=None,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=5,
        ws_max_size=2**20,
    )
    server = DrainingServer(uv_config, service)
    asyncio.run(server.serve())
    return 0 if server.started else 1
