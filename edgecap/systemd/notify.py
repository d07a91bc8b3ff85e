"""sd_notify adapter (systemd-python): READY, STATUS, WATCHDOG, STOPPING.

Outside systemd (no NOTIFY_SOCKET) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.enabled = bool(env.get("NOTIFY_SOCKET"))
        self._last_status = ""
        self._failed = False

    def _send(self, state: str) -> None:
        if not self.enabled:
            return
        import systemd.daemon as sd_daemon  # lazy: keeps check-config and tests light

        try:
            sd_daemon.notify(state)
        except OSError as exc:  # a vanished socket must not break the daemon
            if not self._failed:
                log.warning("sd_notify failed (%s); systemd will not see status updates", exc)
            self._failed = True

    def ready(self, status: str) -> None:
        self._last_status = status
        self._send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        if status != self._last_status:
            self._last_status = status
            self._send(f"STATUS={status}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def stopping(self) -> None:
        self._send("STOPPING=1\nSTATUS=stopping")

    def reloading(self) -> None:
        self._send("RELOADING=1")

    def reloaded(self) -> None:
        self._send("READY=1")
