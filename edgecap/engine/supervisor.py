"""The session supervisor: keeps a streaming session open while audio flows.

Takes a single-use token for every session (the prefetched spare when there is one),
opens the session, runs it until it ends, and retries failures with tenacity; how long to
wait, what to report and whether to re-mint come from the sans-I/O `RetryPolicy`.
Rotations and expiries are followed by a new session at once. Capture frames enter here
(`on_frame`): the buffer keeps them while no session streams, and an outage that outlasts
it is recorded as a gap, reported in the status and on the next turn.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from edgecap.app.status import StatusModel
from edgecap.audio.frame import Frame
from edgecap.auth.tokens import TokenError, TokenPrefetcher, TokenSource
from edgecap.billing.admission import Action, AdmissionSettings
from edgecap.billing.gate import SpeechDetector
from edgecap.billing.guard import BillingGuard, BillingStore
from edgecap.billing.ledger import Ledger
from edgecap.engine.buffer import AudioBuffer
from edgecap.engine.gaps import GapTracker
from edgecap.engine.policy import Decision, RetryPolicy, RetrySettings
from edgecap.engine.session import (
    SessionFailed,
    SessionResult,
    SessionSettings,
    StreamingSession,
)
from edgecap.providers.assemblyai.errors import (
    Classified,
    ErrorClass,
    classify_network,
    classify_token_error,
)
from edgecap.providers.assemblyai.messages import Turn
from edgecap.turns.transcript import TranscriptTurn

log = logging.getLogger(__name__)

BUG_RESTART_SECONDS = 15.0
STABLE_SESSION_SECONDS = RetrySettings().stable_seconds  # the default; see streaming.*


BILLING_TICK_SECONDS = 1.0
T = TypeVar("T")


class Stopping(Exception):
    """Raised inside waits when the daemon stops."""


@dataclass
class SupervisorStats:
    sessions: int = 0
    turns: int = 0
    reconnects: int = 0
    billed_seconds: float = 0.0
    """Sum of Termination.session_duration_seconds (measured locally when missing)."""
    frames_dropped: int = 0
    gaps: int = 0


def classify_failure(exc: BaseException | None) -> Classified:
    if isinstance(exc, SessionFailed):
        return exc.classified
    if isinstance(exc, TokenError):
        return classify_token_error(exc.status, exc.kind, str(exc))
    return classify_network(f"unexpected failure: {exc!r}")


class SessionSupervisor:
    """Owns the session lifecycle. The daemon supplies audio and receives turns/states.

    - `on_frame(frame)` takes every captured frame.
    - `audio_ok` is set while the capture device delivers audio; no session opens without it.
    - `session_stop` ends the current session gracefully (Terminate) when set; the daemon
      sets it when audio stops or the daemon stops.
    - `status` (a `StatusModel`) is kept current; its listeners publish and log it.
      `on_state(state, detail, error_class)`, if given, is told of each state too.
    - `prefetch`: hold a spare token (False: fetch one per connect, for measurements).
    - `admission`: voice gating and budget rules (default: `always`, no budget); `vad`
      tells speech from silence in a frame's PCM (needed for `voice`; not asked while a
      turn is open); `ledger` holds the billed time per day (the budget is checked every
      second) and `store` persists each session (see `BillingGuard`); `on_billing` is
      called after each session is recorded.
    - `clock`, `sleep`, `rng`: injectable for tests (virtual time for long back-offs).
    """

    def __init__(
        self,
        settings: Callable[[], SessionSettings],
        tokens: TokenSource,
        *,
        buffer: AudioBuffer,
        audio_ready: asyncio.Event,
        audio_ok: asyncio.Event,
        on_turn: Callable[[TranscriptTurn], None],
        on_state: Callable[[str, str, str | None], None] | None = None,
        on_partial: Callable[[str, Turn], None] | None = None,
        status: StatusModel | None = None,
        retry: RetrySettings | None = None,
        prefetch: bool = True,
        admission: AdmissionSettings | None = None,
        vad: SpeechDetector | None = None,
        ledger: Ledger | None = None,
        store: BillingStore | None = None,
        on_billing: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._on_partial = on_partial  # growing text of the turn being spoken (session id, Turn)
        self._buffer = buffer
        self._audio_ready = audio_ready
        self._audio_ok = audio_ok
        self._on_turn = on_turn
        self._on_state = on_state
        self.status = status if status is not None else StatusModel(device_id="")
        self.policy = RetryPolicy(retry or RetrySettings(), rng)
        self.prefetcher = TokenPrefetcher(tokens, on_failure=self._token_failed)
        self._prefetch = prefetch
        self._clock = clock
        self._sleeper = sleep
        self.gaps = GapTracker()
        self.session_stop = asyncio.Event()
        self.stats = SupervisorStats()
        self.current: StreamingSession | None = None
        self._stop = asyncio.Event()
        self._decision: tuple[Classified, Decision] | None = None
        self.billing = BillingGuard(admission, vad=vad, ledger=ledger, store=store, clock=clock)
        self._on_billing = on_billing
        self._close_reason = ""
        self._opening: StreamingSession | None = None  # between connect and Begin
        self._finish_by: float | None = None  # when stopping: the session's end, at the latest

    def stop(self, within: float | None = None) -> None:
        """End the current session gracefully and do not open another. `within`: seconds
        the session may take to drain and wait for `Termination` (the daemon's stop
        budget); a token request, connect or wait for `Begin` in progress ends at once."""
        if within is not None:
            self._finish_by = self._clock() + within
            if self.current is not None:
                self.current.finish_by = self._finish_by
        self._stop.set()
        self.session_stop.set()

    def abort(self) -> None:
        """Close the current or opening session's connection at once (no closing
        handshake): the stop budget is spent."""
        for session in (self.current, self._opening):
            if session is not None:
                session.abort()

    # -- audio in ------------------------------------------------------------------------

    def on_frame(self, frame: Frame) -> None:
        """A captured frame (on the loop). Never blocks; a full buffer drops the oldest."""
        lost = self._buffer.append(frame)
        if lost:
            if self.gaps.dropped(lost):
                log.warning(
                    "replay buffer full (%.0f s): dropping the oldest audio until the stream "
                    "is back",
                    self._buffer.max_ms / 1000,
                )
        elif self.gaps.open:
            gap = self.gaps.kept()
            assert gap is not None
            self.stats.frames_dropped += gap.frames
            self.stats.gaps += 1
            log.warning(
                "audio gap: %.1f s of captured audio was dropped (the outage outlasted the "
                "replay buffer); the next turn reports gap_before_ms",
                gap.ms / 1000,
            )
            self.status.record_gap(gap)
        session = self.current
        action = self.billing.frame(frame, self._buffer, session.turn_open if session else None)
        if action in (Action.CLOSE_IDLE, Action.CLOSE_BUDGET) and session is not None:
            self._close_reason = str(action)
            self.session_stop.set()
        self._audio_arrived()

    def _audio_arrived(self) -> None:
        """Tell the sender that a frame is waiting (the per-frame hand-off): an idle
        session sends it at once; otherwise its sender task wakes."""
        session = self.current
        if session is None or not session.audio_arrived():
            self._audio_ready.set()

    # -- turns and states ----------------------------------------------------------------

    def _turn(self, turn: TranscriptTurn) -> None:
        gap = self.gaps.attach(turn.ended_at)
        if gap is not None:
            turn = dataclasses.replace(turn, gap_before_ms=gap)
        self.stats.turns += 1
        self.status.counters.turns += 1
        self.billing.turn(turn)
        self._on_turn(turn)

    def _set_state(
        self,
        state: str,
        detail: str = "",
        error_class: str | None = None,
        *,
        session_id: str | None = None,
        retry_in: float | None = None,
    ) -> None:
        self.status.spare_token = self.prefetcher.spare_ready
        if self.status.state == "stopping":
            return  # the daemon is shutting down: that is what the status says to the end
        out = self.billing.budget_out
        if out and state != "budget_exhausted":
            return  # a session closing or failing does not hide the exhausted budget
        resets = self.billing.resets_at if out else None
        self.status.set_state(
            state,
            session_id=session_id,
            detail=detail,
            error_class=error_class,
            retry_in=retry_in,
            resets_at=resets.timestamp() if resets is not None else None,
        )
        if self._on_state is not None:
            self._on_state(state, detail, error_class)

    def _token_failed(self, exc: TokenError) -> None:
        self.status.counters.token_failures += 1

    # -- one session ---------------------------------------------------------------------

    def _token_ready(self) -> bool:
        return self.prefetcher.spare_ready or not self._prefetch

    async def _one_session(self) -> SessionResult:
        if self.status.state == "stopping":
            raise Stopping  # no new session (a rotation may coincide with the shutdown)
        if not self._audio_ok.is_set():
            self.prefetcher.deactivate()
            if self.status.state not in ("starting", "audio_unavailable", "stopping", "idle"):
                self._set_state("idle", "no session: waiting for audio")
        await self._wait_or_stop(self._audio_ok.wait())
        if not self.billing.wanted.is_set():
            if self.billing.voice:
                self._set_state("listening", "no session open: waiting for speech")
            await self._wait_or_stop(self.billing.wanted.wait())
        self.session_stop.clear()
        self._close_reason = ""
        token, spare = await self._wait_or_stop(self.prefetcher.get())
        settings = self._settings()
        session = StreamingSession(
            settings,
            self._buffer,
            self._audio_ready,
            self._turn,
            self._on_partial,
            token_ready=self._token_ready,
        )
        self._opening = session
        try:
            begin = await self._wait_or_stop(session.open(token.value))
        except Stopping:
            session.abort()  # a connection without Begin: nothing to terminate, not billed
            raise
        finally:
            self._opening = None
        self.policy.session_began(self._clock())
        self.billing.session_began(begin.id)
        self.current = session
        session.finish_by = self._finish_by
        self.stats.sessions += 1
        self.status.counters.sessions += 1
        if self._prefetch:
            self.prefetcher.activate()
        wanted = settings.params.speech_model
        if begin.model is not None and begin.model != wanted:
            log.warning(
                "the server runs speech model %r but %r is configured; check streaming.url",
                begin.model,
                wanted,
            )
        log.debug("session %s opened with a %s token", begin.id, "spare" if spare else "fresh")
        self._set_state("streaming", session_id=begin.id)
        opened_at = time.monotonic()
        try:
            result = await session.run(self.session_stop)
        except Exception as exc:  # a bug (run() has closed the connection): say so, bill it
            log.error("internal error in session %s", begin.id, exc_info=True)
            result = SessionResult(
                session_id=begin.id,
                ended_by="server",
                classified=Classified(
                    ErrorClass.CLIENT_BUG,
                    None,
                    "",
                    f"internal error in the session ({type(exc).__name__}: {exc}); this is an "
                    "edgecap bug, please report it with the log",
                ),
                termination=None,
                began_at=opened_at,
                ended_at=time.monotonic(),
                audio_sent_ms=0,
                turns=0,
            )
        finally:
            self.current = None
        self._log_result(result, self.billing.session_ended(result))
        if self._on_billing is not None:
            self._on_billing()
        c = result.classified
        over = c is not None and c.error_class is ErrorClass.SESSION_OVER
        failed = result.ended_by == "server" and not over
        self.policy.session_ended(self._clock(), failed=failed)
        if failed and c is not None:
            raise SessionFailed(c, "stream")
        return result

    def _log_result(self, r: SessionResult, billed_or_measured: float) -> None:
        billed = r.termination.session_duration_seconds if r.termination else None
        self.stats.billed_seconds += billed_or_measured
        why = f"; {r.classified.line()}" if r.classified and r.ended_by == "server" else ""
        if r.ended_by == "stop" and self._close_reason:
            why = " after the idle time" if self._close_reason == "idle" else ": budget used up"
        if r.rotation:
            why = f" at a {r.rotation} point" if r.rotation != "deadline" else " at the deadline"
        log.info(
            "session %s ended (%s%s) after %.1f s, %.1f s audio sent, %d turn(s), billed %s s",
            r.session_id,
            r.ended_by,
            why,
            r.duration,
            r.audio_sent_ms / 1000,
            r.turns,
            "?" if billed is None else billed,
        )
        if r.rotation == "deadline" and r.unfinished_text:
            log.warning("rotation at the deadline ended a turn early: %r", r.unfinished_text)
        if r.replay_ms:
            log.info(
                "%.1f s of audio sent since the last final turn will be replayed%s",
                r.replay_ms / 1000,
                f" (unfinished text: {r.unfinished_text!r})" if r.unfinished_text else "",
            )

    # -- waiting -------------------------------------------------------------------------

    async def _wait_or_stop(self, awaitable: Awaitable[T]) -> T:
        """`awaitable`'s result, unless the daemon stops first (it is then cancelled)."""
        waiter = asyncio.ensure_future(awaitable)
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not waiter.done():
                waiter.cancel()
        if not waiter.done() or waiter.cancelled():
            raise Stopping
        return waiter.result()

    async def _sleep(self, seconds: float) -> None:
        await self._wait_or_stop(self._sleeper(seconds))

    # -- retrying ------------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        """tenacity's wait strategy: the policy's decision for this failure."""
        exc = state.outcome.exception() if state.outcome else None
        classified = classify_failure(exc)
        decision = self.policy.next(classified)
        if decision.discard_spare:  # re-mint; no background refills until a session works
            self.prefetcher.deactivate()
            self.prefetcher.discard()
        self._decision = (classified, decision)
        return decision.delay

    def _before_retry(self, state: RetryCallState) -> None:
        assert self._decision is not None
        classified, d = self._decision
        self.stats.reconnects += 1
        self.status.counters.reconnects += 1
        self.status.record_error(classified)
        line = classified.line()
        loud = classified.error_class in (ErrorClass.CLIENT_BUG, ErrorClass.CONFIG)
        log.log(
            logging.ERROR if loud else logging.WARNING,
            "%s; %s: next attempt in %.1f s (attempt %d)",
            line,
            d.why,
            d.delay,
            state.attempt_number + 1,
        )
        self._set_state(d.state, line, str(classified.error_class), retry_in=d.delay)

    async def run(self) -> None:
        """Keep a session open while audio flows (and is wanted), until `stop()`."""
        self.prefetcher.start()
        self.billing_tick()  # a budget already used up today holds from the start
        ticker = asyncio.create_task(self._billing_loop(), name="edgecap-billing")
        try:
            await self._run()
        finally:
            ticker.cancel()
            await self.prefetcher.aclose()

    async def _billing_loop(self) -> None:
        while True:
            await asyncio.sleep(BILLING_TICK_SECONDS)  # the period itself
            self.billing_tick()

    def billing_tick(self) -> None:
        change = self.billing.tick()
        if change is None:
            return
        if change.exhausted:
            log.warning("%s (raise session.daily_budget_minutes to allow more)", change.detail)
            self._set_state("budget_exhausted", change.detail)
        else:
            log.info("%s", change.detail)
            voice = self.billing.voice
            self._set_state("listening" if voice else "idle", change.detail)

    async def _run(self) -> None:
        while not self._stop.is_set():
            retrying = AsyncRetrying(
                retry=retry_if_exception_type((SessionFailed, TokenError)),
                wait=self._wait,
                sleep=self._sleep,
                before_sleep=self._before_retry,
                reraise=True,
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
                    await self._sleep(BUG_RESTART_SECONDS)
                except Stopping:
                    return
