"""The event loop's blocking helpers, and the bounded shutdown (no edgecap imports).

asyncio runs blocking calls (name lookups for the token service and the streaming host,
`asyncio.to_thread`) on a `ThreadPoolExecutor` whose threads the interpreter joins at exit:
one name lookup that hangs (a DNS server that swallows queries) would then hold the daemon
after SIGTERM for as long as the resolver retries. `DaemonThreadExecutor` runs each call in
a daemon thread instead, so a call nobody waits for any more is simply left behind.

`Deadline` spreads the shutdown budget over the steps of a stop.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class DaemonThreadExecutor(concurrent.futures.ThreadPoolExecutor):
    """Each call in its own daemon thread, never joined: for the loop's rare blocking calls
    (getaddrinfo, the MQTT client's stop). A subclass because asyncio accepts only a
    `ThreadPoolExecutor` as the default executor; none of its pooling is used."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="edgecap-blocking")
        self._started = 0

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # handed to whoever awaits the future
                future.set_exception(exc)
            else:
                future.set_result(result)

        self._started += 1
        name = f"edgecap-blocking-{self._started}"
        threading.Thread(target=run, name=name, daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to join: a call still running is abandoned with its daemon thread."""


class Deadline:
    """A point in monotonic time; how much of the budget is left."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.at = clock() + seconds

    def left(self, reserve: float = 0.0, *, at_least: float = 0.05) -> float:
        """Seconds left before the deadline, keeping `reserve` for later steps."""
        return max(at_least, self.at - self._clock() - reserve)

    @property
    def passed(self) -> bool:
        return self._clock() >= self.at


def exit_backstop(seconds: float, on_expiry: Callable[[], None]) -> threading.Timer:
    """If the shutdown has not finished after `seconds`, call `on_expiry` (it logs) and end
    the process with status 0: what was not delivered stays in the spool on disk. A
    safety net for a bug; the normal stop ends well before it."""

    def expire() -> None:
        try:
            on_expiry()
        finally:
            os._exit(0)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.name = "edgecap-exit-backstop"
    timer.start()
    return timer


__all__ = ["DaemonThreadExecutor", "Deadline", "exit_backstop"]
