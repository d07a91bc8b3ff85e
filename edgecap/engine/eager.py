"""Run the first step of a coroutine now, from a plain callback (no task, no loop turn).

The per-frame send is a coroutine (`ClientConnection.send`) that, on an open connection
whose write buffer has room, writes the frame to the socket and returns without ever
yielding to the event loop. Waking a task for it costs a future, a loop iteration and the
task machinery for every 50 ms frame. `start_eagerly` runs the coroutine up to its first
suspension instead: usually it simply finishes. If it does suspend (flow control, the
connection closing), it returns a `Suspended` whose `await` in a task carries the
coroutine on from exactly where it stopped. This is the contract of Python 3.12's eager
tasks, built on the coroutine protocol alone (`send`, `throw`, `close`).

The first step runs outside any task, so only coroutines that need no current task before
their first suspension may be started this way (the caller checks the connection is open:
websockets only enters `asyncio.timeout` when it is not).
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any


class Suspended:
    """A started coroutine that yielded to the event loop; `await` it (once) in a task to
    finish it, or `close()` it to abandon it."""

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, None], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded  # what it yielded: a future to wait for, or None

    def __await__(self) -> Generator[Any, Any, None]:
        coro, yielded = self._coro, self._yielded
        while True:
            try:
                value = yield yielded  # the awaiting task waits for it, then resumes us
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation: delivered where the coroutine waits
                try:
                    yielded = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    yielded = coro.send(value)
                except StopIteration:
                    return

    def close(self) -> None:
        self._coro.close()


def start_eagerly(coro: Coroutine[Any, Any, None]) -> Suspended | None:
    """Run `coro` until it finishes (returns None) or first suspends (returns `Suspended`).

    An exception it raises before suspending propagates (the coroutine is then finished).
    """
    try:
        yielded = coro.send(None)
    except StopIteration:
        return None
    return Suspended(coro, yielded)
