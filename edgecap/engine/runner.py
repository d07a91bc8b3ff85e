"""The engine: carries out what the `SessionController` decides (the I/O around it).

The daemon talks to the engine through a narrow interface: `on_frame` for every captured
frame, `audio_available` when capture starts or stops delivering, `update_session` for a
live change (UpdateConfiguration), `set_muted` for the privacy mute, `stop`/`abort` and
the read-only `counters`,
`open_session_seconds` and `only_listening`. Everything the engine learns becomes an
event for the controller (`_dispatch`); each action it returns is done here: a token
fetched (`TokenPrefetcher`), a session opened, run and closed (`StreamingSession`), a
timer started, a state reported (`EngineReporter`).

The per-frame path stays on the capture callback: the frame goes into the buffer, the gate
(`BillingGuard`) gives its verdict, and the session's sender is offered the frame. Only a
change of the verdict (a session is wanted or not, close it) becomes an event.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from edgecap.audio.frame import Frame
from edgecap.auth.tokens import Token, TokenError, TokenPrefetcher, TokenSource
from edgecap.billing.admission import Action as GateAction
from edgecap.billing.admission import AdmissionSettings
from edgecap.billing.gate import SpeechDetector
from edgecap.billing.guard import BillingGuard, BillingStore
from edgecap.billing.ledger import Ledger
from edgecap.engine import controller as c
from edgecap.engine.buffer import AudioBuffer
from edgecap.engine.controller import ControllerSettings, Counters, SessionController
from edgecap.engine.gaps import GapTracker
from edgecap.engine.heard import HeardWithoutTurns, SpeechWithoutTranscript
from edgecap.engine.policy import RetryPolicy, RetrySettings
from edgecap.engine.report import (
    EngineReporter,
    LogReporter,
    bug_result,
    classify_failure,
    log_result,
    model_note,
)
from edgecap.engine.session import StreamingSession
from edgecap.engine.states import CloseReason, EngineState
from edgecap.engine.types import SessionFailed, SessionSettings
from edgecap.providers.base import SessionOpened
from edgecap.providers.failures import Classified, ErrorClass
from edgecap.providers.turn import SpeakerRevision, Turn
from edgecap.turns.transcript import TranscriptTurn

log = logging.getLogger(__name__)

BILLING_TICK_SECONDS = 1.0
BUG_RESTART_SECONDS = 15.0


class Engine:
    """Keeps a streaming session open while audio flows and a session is wanted.

    `settings()` gives the settings of the next session (re-read at each connect, so a
    reload applies from the next session). `clock`, `sleep` and `rng` are injectable for
    tests (virtual time for long back-offs)."""

    def __init__(
        self,
        settings: Callable[[], SessionSettings],
        tokens: TokenSource,
        *,
        buffer: AudioBuffer,
        on_turn: Callable[[TranscriptTurn], None],
        on_partial: Callable[[str, Turn], None] | None = None,
        on_revision: Callable[[str, SpeakerRevision], None] | None = None,
        on_billing: Callable[[], None] | None = None,
        on_heard: Callable[[SpeechWithoutTranscript], None] | None = None,
        reporter: EngineReporter | None = None,
        retry: RetrySettings | None = None,
        prefetch: bool = True,
        admission: AdmissionSettings | None = None,
        vad: SpeechDetector | None = None,
        ledger: Ledger | None = None,
        store: BillingStore | None = None,
        counters: Counters | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._buffer = buffer
        self._on_turn = on_turn
        self._on_partial = on_partial
        self._on_revision = on_revision
        self._on_billing = on_billing
        self._on_heard = on_heard
        self.heard = HeardWithoutTurns()
        self.muted = False
        self._reporter: EngineReporter = reporter or LogReporter()
        self._clock = clock
        self._sleeper = sleep
        self.billing = BillingGuard(admission, vad=vad, ledger=ledger, store=store, clock=clock)
        first = settings()
        self.policy = RetryPolicy(retry or RetrySettings(), rng)
        self.controller = SessionController(
            self.policy,
            ControllerSettings(
                max_session_seconds=first.max_session_seconds,
                rotation_window_seconds=first.rotation_window_seconds,
                voice=self.billing.voice,
                prefetch=prefetch,
            ),
            wanted=self.billing.admission.wanted,
            counters=counters if counters is not None else Counters(),
        )
        self.counters = self.controller.counters
        self.prefetcher = TokenPrefetcher(tokens, on_failure=self._token_failed)
        self.gaps = GapTracker()
        self.billed_seconds = 0.0
        """Sum of the sessions' billed seconds (the server's figure, else measured)."""
        self.current: StreamingSession | None = None
        self._opening: StreamingSession | None = None
        self._pending_update: dict[str, float | int | list[str] | str] = {}
        self._token: Token | None = None
        self._audio_ready = asyncio.Event()  # a frame waits and the sender was not offered it
        self._tasks: set[asyncio.Task[Any]] = set()
        self._open_task: asyncio.Task[None] | None = None
        self._wait_task: asyncio.Task[None] | None = None
        self._check: asyncio.TimerHandle | None = None
        self._finished = asyncio.Event()
        self._finish_by: float | None = None
        self._pending: deque[c.Event] = deque()
        self._dispatching = False

    # -- the narrow interface --------------------------------------------------------

    def on_frame(self, frame: Frame) -> None:
        """A captured frame (on the loop). Never blocks; a full buffer drops the oldest.
        Muted: dropped at once (not buffered, not even looked at by the gate)."""
        if self.muted:
            return
        lost = self._buffer.append(frame)
        if lost:
            if self.gaps.dropped(lost):
                log.warning(
                    "replay buffer full (%.0f s): dropping the oldest audio until the stream "
                    "is back",
                    self._buffer.max_ms / 1000,
                )
        elif self.gaps.open:
            self._gap_closed()
        session = self.current
        wanted = self.billing.admission.wanted
        gate = self.billing.admission.gate
        speaking = gate.speaking
        verdict = self.billing.frame(frame, self._buffer, session.turn_open if session else None)
        if gate.speaking != speaking and session is not None:
            session.speech_edge(gate.speaking)  # (a provider may commit there: OpenAI)
        if verdict is GateAction.END_TURN and session is not None:
            session.end_turn()
        elif verdict in (GateAction.CLOSE_IDLE, GateAction.CLOSE_BUDGET) and session is not None:
            idle = verdict is GateAction.CLOSE_IDLE
            reason = CloseReason.IDLE if idle else CloseReason.BUDGET
            self._dispatch(c.CloseRequested(self._clock(), reason))
        elif verdict is GateAction.OPEN:
            self.heard.opened(gate.speech_seconds - gate.s.onset_ms / 1000)
        if self.billing.admission.wanted != wanted:
            self._dispatch(c.WantChanged(self._clock(), self.billing.admission.wanted))
        if session is None or not session.audio_arrived():
            self._audio_ready.set()  # the sender task wakes (or a session takes it later)

    def audio_available(self, ok: bool, *, reported: bool = False) -> None:
        """Capture delivers audio again (`ok`), or stopped (`reported`: the daemon has said
        so in the status); an open session is closed while there is no audio."""
        self._dispatch(c.AudioChanged(self._clock(), ok, reported))

    async def update_session(self, **fields: float | int | list[str] | str) -> bool:
        """Change the live session's configuration (UpdateConfiguration, no reconnect).
        A session still connecting (its URL built from the old settings) gets it as soon
        as it has begun. False when no session is open or opening (the change applies
        from the next one, whose settings are read when it connects)."""
        session = self.current
        if session is not None:
            return await session.update_configuration(**fields)
        if self._opening is not None:
            self._pending_update.update(fields)
            return True
        return False

    def set_muted(self, muted: bool) -> None:
        """The privacy mute: while on, no frame is buffered, nothing buffered is sent (the
        buffer is held, then cleared), an open session ends at once (Terminate without
        sending what waits), no token is fetched and no session opens."""
        if muted == self.muted:
            return
        self.muted = muted
        self._buffer.held = muted
        adm = self.billing.admission
        if muted:
            self.heard.disarm()
            if self.current is None:
                self._buffer.clear()
        else:
            self._buffer.clear()
            adm.gate.session_ended()  # the next onset opens the next session
            if adm.voice and adm.wanted:
                adm.wanted = False
                self._dispatch(c.WantChanged(self._clock(), False))
        self._dispatch(c.MuteChanged(self._clock(), muted))

    def set_admission(self, admission: AdmissionSettings, vad: SpeechDetector | None) -> None:
        """Another gate (`voice`/`always`) from now on: `always` opens a session at once;
        `voice` lets an open session close once no speech is heard for a while."""
        live = self.current is not None or self.controller.phase in (
            c.Phase.TOKEN,
            c.Phase.CONNECTING,
        )
        self.billing.set_admission(admission, vad, live=live, now=self._clock())
        self.controller.settings = dataclasses.replace(
            self.controller.settings, voice=self.billing.voice
        )
        self._dispatch(c.WantChanged(self._clock(), self.billing.admission.wanted))

    def open_session_seconds(self) -> float:
        """How long the current session has been open (billed, not yet recorded)."""
        return self.billing.open_session_seconds()

    @property
    def only_listening(self) -> bool:
        """The voice gate waits for speech and no session is open or wanted."""
        return self.billing.only_listening

    def stop(self, within: float | None = None) -> None:
        """End the current session gracefully and open no other. `within`: seconds the
        session may take to drain and wait for `Termination` (the daemon's stop budget);
        a token request, connect or wait for `Begin` in progress ends at once."""
        if within is not None:
            self._finish_by = self._clock() + within
            if self.current is not None:
                self.current.finish_by = self._finish_by
        self._dispatch(c.Stop(self._clock()))

    def abort(self) -> None:
        """Cut the current or opening session's connection at once (no closing
        handshake): the stop budget is spent."""
        for session in (self.current, self._opening):
            if session is not None:
                session.abort()

    async def run(self) -> None:
        """Run until `stop()`: sessions open, stream, rotate and reconnect as decided."""
        self.prefetcher.start()
        self.billing_tick()  # a budget already used up today holds from the start
        ticker = asyncio.create_task(self._billing_loop(), name="edgecap-billing")
        try:
            self._dispatch(c.Start(self._clock()))
            await self._finished.wait()
        finally:
            ticker.cancel()
            self._cancel_timers()
            for task in list(self._tasks):
                task.cancel()
            await self.prefetcher.aclose()

    # -- events in, actions out ------------------------------------------------------

    def _dispatch(self, event: c.Event) -> None:
        """Give the controller an event and carry out its actions (events raised while
        doing so are handled after, in order)."""
        self._pending.append(event)
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._pending:
                for action in self.controller.handle(self._pending.popleft()):
                    self._do(action)
        finally:
            self._dispatching = False

    def _do(self, action: c.Action) -> None:
        match action:
            case c.FetchToken():
                self._open_task = self._spawn(self._fetch_token(), "edgecap-token")
            case c.Connect():
                self._open_task = self._spawn(self._connect(), "edgecap-connect")
            case c.Prefetch(active=active, discard=discard):
                if discard:
                    self.prefetcher.deactivate()
                    self.prefetcher.discard()
                elif active:
                    self.prefetcher.activate()
                else:
                    self.prefetcher.deactivate()
            case c.Close(reason=reason, drain=drain):
                if self.current is not None:
                    self.current.request_close(reason, drain=drain)
            case c.Abandon():
                if self._open_task is not None:
                    self._open_task.cancel()
                if self._opening is not None:
                    self._opening.abort()  # a connection without Begin: not billed
            case c.Wait(seconds=seconds):
                self._wait_task = self._spawn(self._wait(seconds), "edgecap-backoff")
            case c.ScheduleCheck(at=at):
                if self._check is not None:
                    self._check.cancel()
                loop = asyncio.get_running_loop()
                self._check = loop.call_later(max(0.0, at - self._clock()), self._check_due)
            case c.Report():
                self._reporter.engine_state(action, spare_token=self.prefetcher.spare_ready)
            case c.Retrying():
                self._log_retry(action)
            case c.Finished():
                self._cancel_timers()
                self._finished.set()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        # A bug in the engine must not leave the daemon capturing with no session.
        log.error("unexpected error in the engine; retrying", exc_info=task.exception())
        classified = Classified(
            ErrorClass.CLIENT_BUG,
            None,
            "",
            f"internal error ({type(task.exception()).__name__}); this is an edgecap bug, "
            "please report it with the log",
        )
        self._dispatch(c.OpenFailed(self._clock(), classified))

    def _cancel_timers(self) -> None:
        if self._check is not None:
            self._check.cancel()
            self._check = None
        if self._wait_task is not None:
            self._wait_task.cancel()

    # -- the actions' I/O ------------------------------------------------------------

    async def _fetch_token(self) -> None:
        try:
            self._token, spare = await self.prefetcher.get()
        except TokenError as exc:
            self._dispatch(c.OpenFailed(self._clock(), classify_failure(exc)))
            return
        log.debug("token for the next session: %s", "the spare" if spare else "fresh")
        self._dispatch(c.TokenReady(self._clock()))

    async def _connect(self) -> None:
        token, self._token = self._token, None
        assert token is not None
        settings = self._settings()
        # a voice session not retrying a failure: what waits is the pre-roll (after a clean
        # rotation, replayed audio: up to the same 1 s in the first message)
        preroll = self.billing.admission.voice and self.controller.attempt == 0
        session = StreamingSession(
            settings,
            self._buffer,
            self._audio_ready,
            self._turn,
            self._on_partial,
            on_activity=self._activity,
            on_revision=self._on_revision,
            preroll=preroll,
        )
        self._opening = session
        try:
            begin = await session.open(token.value)
        except SessionFailed as exc:
            self._dispatch(c.OpenFailed(self._clock(), exc.classified))
            return
        finally:
            self._opening = None
        if self.controller.phase is not c.Phase.CONNECTING:  # stopped meanwhile
            session.abort()
            return
        self.billing.session_began(begin.id)
        self.current = session
        if preroll or self.billing.admission.gate.speaking:
            # opened by a voice onset: its audio is speech (even when the talk already
            # ended while connecting: a provider that commits must then commit it)
            session.speech_edge(True)
        session.finish_by = self._finish_by
        expires_in = begin.expires_at - time.time() if begin.expires_at else None
        self._dispatch(
            c.Began(self._clock(), begin.id, expires_in, model_note(begin, session.provider.model))
        )
        self._spawn(self._run_session(session, begin), "edgecap-session")
        if self._pending_update:  # a reload while it was connecting
            fields, self._pending_update = self._pending_update, {}
            self._spawn(self._send_update(session, fields), "edgecap-update")

    async def _send_update(
        self, session: StreamingSession, fields: dict[str, float | int | list[str] | str]
    ) -> None:
        if await session.update_configuration(**fields):
            log.info("sent %s to the session that was connecting", ", ".join(sorted(fields)))

    async def _run_session(self, session: StreamingSession, begin: SessionOpened) -> None:
        opened_at = time.monotonic()
        try:
            result = await session.run()
        except Exception as exc:  # a bug (run() has closed the connection): say so, bill it
            log.error("internal error in session %s", begin.id, exc_info=True)
            result = bug_result(begin.id, exc, opened_at)
        finally:
            self.current = None
        self.billed_seconds += self.billing.session_ended(result)
        log_result(result)
        if self.muted:
            self._buffer.clear()  # what it held is never sent, nor replayed later
        heard = self.heard.session_ended(begin.id, self.billing.admission.gate.speech_seconds)
        if heard is not None and self._on_heard is not None:
            self._on_heard(heard)
        if self._on_billing is not None:
            self._on_billing()
        self._dispatch(c.SessionEnded(self._clock(), result.ended_by, result.classified))

    async def _wait(self, seconds: float) -> None:
        await self._sleeper(seconds)
        self._dispatch(c.WaitOver(self._clock()))

    def _check_due(self) -> None:
        self._check = None
        self._dispatch(c.CheckDue(self._clock(), *self._rotation_view()))

    def _activity(self, final: bool) -> None:
        self.heard.turn()
        self._dispatch(c.TurnActivity(self._clock(), final, *self._rotation_view()))

    def _rotation_view(self) -> tuple[bool, bool]:
        """(a turn is open, the next session's token is ready): what rotation weighs."""
        session = self.current
        return session is not None and session.turn_open, self.prefetcher.spare_ready

    # -- turns, gaps, tokens, budget -------------------------------------------------

    def _turn(self, turn: TranscriptTurn) -> None:
        gap = self.gaps.attach(turn.ended_at)
        if gap is not None:
            turn = dataclasses.replace(turn, gap_before_ms=gap)
        self.counters.turns += 1
        self.billing.turn(turn)
        self._on_turn(turn)

    def _gap_closed(self) -> None:
        gap = self.gaps.kept()
        assert gap is not None
        self.counters.frames_dropped += gap.frames
        self.counters.gaps += 1
        log.warning(
            "audio gap: %.1f s of captured audio was dropped (the outage outlasted the "
            "replay buffer); the next turn reports gap_before_ms",
            gap.ms / 1000,
        )
        self._reporter.record_gap(gap)

    def _token_failed(self, exc: TokenError) -> None:
        self.counters.token_failures += 1

    async def _billing_loop(self) -> None:
        while True:
            await asyncio.sleep(BILLING_TICK_SECONDS)  # the period itself
            self.billing_tick()

    def billing_tick(self) -> None:
        wanted = self.billing.admission.wanted
        change = self.billing.tick()
        if change is None:
            return
        if change.exhausted:
            log.warning("%s (raise session.daily_budget_minutes to allow more)", change.detail)
        else:
            log.info("%s", change.detail)
        resets = self.billing.resets_at
        resets_at = resets.timestamp() if resets is not None and change.exhausted else None
        self._dispatch(c.BudgetChanged(self._clock(), change.exhausted, change.detail, resets_at))
        if self.billing.admission.wanted != wanted:
            self._dispatch(c.WantChanged(self._clock(), self.billing.admission.wanted))

    def _log_retry(self, r: c.Retrying) -> None:
        line = r.classified.line()
        loud = r.classified.error_class in (ErrorClass.CLIENT_BUG, ErrorClass.CONFIG)
        log.log(
            logging.ERROR if loud else logging.WARNING,
            "%s; %s: next attempt in %.1f s (attempt %d)",
            line,
            r.decision.why,
            r.decision.delay,
            r.attempt + 1,
        )
        self._reporter.record_error(r.classified)


__all__ = ["Counters", "Engine", "EngineReporter", "EngineState"]
