"""The session supervisor: keeps a streaming session open while audio flows.

Fetches a fresh single-use token for every session, opens it, runs it until it ends, and
retries failures with tenacity (exponential backoff with jitter). A session that ran
stably and ended for a benign reason is followed immediately by a new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from edgecap.protocol.errors import ErrorClass
from edgecap.streaming.buffer import AudioBuffer
from edgecap.streaming.session import (
    SessionFailed,
    SessionResult,
    SessionSettings,
    StreamingSession,
)
from edgecap.tokens import TokenClient, TokenError
from edgecap.transcript import TranscriptTurn

log = logging.getLogger(__name__)

STABLE_SESSION_SECONDS = 30.0
RECONNECT_MAX_SECONDS = 60.0


class Stopping(Exception):
    """Raised inside waits when the daemon stops."""


@dataclass
class SupervisorStats:
    sessions: int = 0
    turns: int = 0
    reconnects: int = 0
    billed_seconds: float = 0.0
    """Sum of Termination.session_duration_seconds (measured locally when missing)."""


class SessionSupervisor:
    """Owns the session lifecycle. The daemon supplies audio and receives turns/states.

    - `audio_ok` is set while the capture device delivers audio; no session opens without it.
    - `session_stop` ends the current session gracefully (Terminate) when set; the daemon
      sets it when audio stops or the daemon stops.
    - `on_state(state, detail, error_class)` reports state changes ("streaming",
      "reconnecting", ...); `error_class` names what went wrong, or None.
    """

    def __init__(
        self,
        settings: Callable[[], SessionSettings],
        tokens: TokenClient,
        *,
        buffer: AudioBuffer,
        audio_ready: asyncio.Event,
        audio_ok: asyncio.Event,
        on_turn: Callable[[TranscriptTurn], None],
        on_state: Callable[[str, str, str | None], None],
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._buffer = buffer
        self._audio_ready = audio_ready
        self._audio_ok = audio_ok
        self._on_turn = on_turn
        self._on_state = on_state
        self.session_stop = asyncio.Event()
        self.stats = SupervisorStats()
        self.current: StreamingSession | None = None
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """End the current session gracefully and do not open another."""
        self._stop.set()
        self.session_stop.set()

    def _turn(self, turn: TranscriptTurn) -> None:
        self.stats.turns += 1
        self._on_turn(turn)

    async def _one_session(self) -> SessionResult:
        await self._wait_or_stop(self._audio_ok.wait())
        self.session_stop.clear()
        token = await self._tokens.fetch()
        settings = self._settings()
        session = StreamingSession(settings, self._buffer, self._audio_ready, self._turn)
        begin = await session.open(token.value)
        self.current = session
        self.stats.sessions += 1
        wanted = settings.params.speech_model
        if begin.model is not None and begin.model != wanted:
            log.warning(
                "the server runs speech model %r but %r is configured; check streaming.url",
                begin.model,
                wanted,
            )
        self._on_state("streaming", f"session {begin.id}", None)
        try:
            result = await session.run(self.session_stop)
        finally:
            self.current = None
        self._log_result(result)
        if result.ended_by == "server" and result.classified is not None:
            cls = result.classified.error_class
            quick = result.duration < STABLE_SESSION_SECONDS
            if cls is not ErrorClass.SESSION_OVER and (quick or cls is not ErrorClass.TRANSIENT):
                raise SessionFailed(result.classified, "stream")
            self.stats.reconnects += 1
        return result

    def _log_result(self, r: SessionResult) -> None:
        billed = r.termination.session_duration_seconds if r.termination else None
        self.stats.billed_seconds += billed if billed is not None else r.duration
        why = f"; {r.classified.line()}" if r.classified and r.ended_by == "server" else ""
        log.info(
            "session %s ended (%s) after %.1f s, %.1f s audio sent, %d turn(s), billed %s s%s",
            r.session_id,
            r.ended_by,
            r.duration,
            r.audio_sent_ms / 1000,
            r.turns,
            "?" if billed is None else billed,
            why,
        )
        if r.unfinished_text:
            log.warning("session ended inside a turn; unfinished text: %r", r.unfinished_text)

    async def _wait_or_stop(self, awaitable: Awaitable[object]) -> None:
        waiter = asyncio.ensure_future(awaitable)
        stopper = asyncio.ensure_future(self._stop.wait())
        done, pending = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if stopper in done:
            raise Stopping

    async def _sleep(self, seconds: float) -> None:
        await self._wait_or_stop(asyncio.sleep(seconds))

    def _before_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        line = exc.classified.line() if isinstance(exc, SessionFailed) else str(exc)
        error_class = (
            exc.classified.error_class.value
            if isinstance(exc, SessionFailed)
            else ("token" if isinstance(exc, TokenError) else "unknown")
        )
        self.stats.reconnects += 1
        self._on_state("reconnecting", line, error_class)
        log.warning("%s; next attempt in %.1f s (attempt %d)", line, delay, state.attempt_number)

    async def run(self) -> None:
        """Keep a session open while audio flows, until `stop()`."""
        while not self._stop.is_set():
            retrying = AsyncRetrying(
                retry=retry_if_exception_type((SessionFailed, TokenError)),
                wait=wait_exponential_jitter(initial=0.5, max=RECONNECT_MAX_SECONDS),
                sleep=self._sleep,
                before_sleep=self._before_retry,
            )
            try:
                async for attempt in retrying:
                    with attempt:
                        await self._one_session()
            except Stopping:
                return
            except Exception:  # a bug must not leave the daemon capturing with no session
                log.exception("unexpected error in the session supervisor; restarting it")
                try:
                    await self._sleep(RECONNECT_MAX_SECONDS / 4)
                except Stopping:
                    return
