"""The Sync pipeline (`streaming.provider = "assemblyai-sync"`): frames in, one published
turn per utterance out; the daemon runs it in place of the streaming engine.

Per frame (on the loop, never blocking): the detector's verdict, the segmenter's events
(`sync.segmenter`). An utterance that opens while nothing else is being sent or waits is
uploaded as it is captured (`live_upload`); every utterance is written to the pending spool
when it ends (`sync.store`), and leaves it when its transcript came back. What failed is
sent again by the worker (`run`), oldest first, after the back-off of `sync.pending`, so
turns arrive in the order they were spoken and an outage loses nothing within the bounds.
Each transcribed utterance counts its audio seconds as billed in the ledger (the Sync API
bills audio sent, no session), so the daily budget holds: while it is used up, no utterance
is cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from edgecap.audio.frame import Frame
from edgecap.billing.gate import SpeechDetector
from edgecap.billing.ledger import Ledger
from edgecap.engine.controller import Counters
from edgecap.providers.assemblyai.sync import (
    Disposition,
    SyncFailure,
    SyncProtocolError,
    SyncRefused,
    SyncTranscript,
)
from edgecap.providers.failures import Classified, ErrorClass, classify_network
from edgecap.sync.pending import Dropped, PendingItem, PendingQueue
from edgecap.sync.segmenter import Appended, Closed, Event, Opened
from edgecap.sync.segmenter import UtteranceSegmenter as Segmenter
from edgecap.sync.store import PendingStore
from edgecap.sync.transport import SyncNetworkError
from edgecap.sync.types import BillingStore, Reporter, Sender, SyncSettings
from edgecap.sync.uploads import LiveBody, Utterance
from edgecap.turns.timeline import AudioTimeline
from edgecap.turns.transcript import TranscriptTurn, build_transcript_turn

log = logging.getLogger("edgecap.sync")

PROVIDER = "assemblyai-sync"
AUTH_RETRY_MIN_SECONDS = 30.0
Outcome = SyncTranscript | SyncFailure


class SyncPipeline:
    def __init__(
        self,
        settings: SyncSettings,
        sender: Sender,
        *,
        detector: SpeechDetector,
        store: PendingStore,
        on_turn: Callable[[TranscriptTurn], None],
        reporter: Reporter,
        ledger: Ledger,
        ledger_store: BillingStore | None = None,
        on_billing: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.s = settings
        self.sender = sender
        self.detector = detector
        self.store = store
        self.on_turn = on_turn
        self.reporter = reporter
        self.ledger = ledger
        self.ledger_store = ledger_store
        self.on_billing = on_billing or (lambda: None)
        self._clock = clock
        self.segmenter = Segmenter(settings.segments)
        self.queue = PendingQueue(settings.bounds)
        self.session_id = f"sync-{uuid.uuid4().hex[:12]}"
        """This run's id: a turn's id is `<session_id>:<utterance number>` (kept on retry)."""
        self._next_order = 0
        self._current: Utterance | None = None
        self._in_flight: str | None = None
        self._uploads: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._audio_ok = True
        self._budget_out = False
        self.muted = False
        self.billed_seconds = 0.0
        self.latencies_ms: list[int] = []
        """End of the utterance's capture to its turn handed on (for the log and bench)."""

    # -- the daemon's interface (the streaming engine's) ------------------------------------

    @property
    def counters(self) -> Counters:
        return self.reporter.counters

    @property
    def only_listening(self) -> bool:
        return self._current is None

    def open_session_seconds(self) -> float:
        return 0.0  # no session: each utterance is billed when it is transcribed

    async def update_session(self, **fields: float | int | list[str] | str) -> bool:
        return False

    def set_muted(self, muted: bool) -> None:
        """The privacy mute: the utterance being captured is dropped (its live upload cut)
        and nothing is captured or sent while muted. Utterances completed before the mute
        wait in the pending spool and are sent once it is lifted."""
        if muted == self.muted:
            return
        self.muted = muted
        if muted:
            u, self._current = self._current, None
            if u is not None:
                if u.task is not None:
                    u.task.cancel()
                    if self._in_flight == u.key:
                        self._in_flight = None
                u.closed.set()
            self.segmenter = Segmenter(self.s.segments)
            self.reporter.set_state("muted", detail="privacy mute: no audio is sent")
        else:
            self.reporter.set_state("listening")  # what comes next reports itself
        self._wake.set()

    def _state(self, state: str, **detail: Any) -> None:
        """Report `state`, unless the privacy mute is on: it says `muted` until lifted."""
        if not self.muted:
            self.reporter.set_state(state, **detail)

    def set_admission(self, admission: object, vad: SpeechDetector | None) -> None:
        """The gate is always the voice detector here (each utterance is one request)."""
        log.warning("sync: session.gate does not apply to assemblyai-sync (always by voice)")

    def on_frame(self, frame: Frame) -> None:
        if self._stopping or self.muted or (self._budget_out and self._current is None):
            return
        speech = self.detector.is_speech(frame.pcm)
        for event in self.segmenter.feed(frame.monotonic, frame.captured_at, frame.pcm, speech):
            self._handle(event)

    def audio_available(self, ok: bool, *, reported: bool = False) -> None:
        self._audio_ok = ok
        if not ok:
            for event in self.segmenter.stop():
                self._handle(event)
        elif self._state_is_idle():
            self._state("listening")

    def stop(self, within: float | None = None) -> None:
        for event in self.segmenter.stop():
            self._handle(event)
        self._stopping = True
        self._wake.set()

    def abort(self) -> None:
        """The stop budget is spent: cut the uploads still running (their utterances stay
        in the pending spool for the next start)."""
        for task in list(self._uploads):
            task.cancel()

    # -- the frame path ---------------------------------------------------------------

    def _handle(self, event: Event) -> None:
        if isinstance(event, Opened):
            self._opened(event)
        elif isinstance(event, Appended):
            u = self._current
            if u is not None:
                u.audio += event.audio
                if u.live is not None:
                    u.live.feed(event.audio)
        elif isinstance(event, Closed):
            self._closed(event)

    def _opened(self, event: Opened) -> None:
        order, self._next_order = self._next_order, self._next_order + 1
        key = f"{int(event.started_at * 1000):013d}-{self.session_id[5:]}-{order:06d}"
        u = Utterance(key, order, event.started_at, bytearray(event.audio))
        live = self.s.live_upload and self._in_flight is None and self.queue.count == 0
        if live and not self._stopping:
            u.live = LiveBody()
            u.live.feed(event.audio)
            self._in_flight = key
            u.task = asyncio.get_running_loop().create_task(self._live(u), name="edgecap-sync")
            self._uploads.add(u.task)
            u.task.add_done_callback(self._uploads.discard)
        self._current = u
        if self.queue.count == 0:  # otherwise the state says why utterances wait
            self._state("streaming", session_id=self.session_id, detail="utterance")

    def _closed(self, event: Closed) -> None:
        u, self._current = self._current, None
        if u is None:
            return
        if u.live is not None:
            u.live.end()
        u.ended_at = event.ended_at
        if event.send:
            u.item = PendingItem(
                key=u.key,
                session_id=self.session_id,
                turn_order=u.turn_order,
                started_at=u.started_at,
                ended_at=event.ended_at,
                size_bytes=len(u.audio),
                audio_seconds=len(u.audio) / (2 * self.s.sample_rate),
            )
            self.store.save(u.item, bytes(u.audio))
            self._report_drops(self.queue.add(u.item, time.time()))
        else:
            log.info("sync: a %d ms sound was too short to send; skipped", event.duration_ms)
            if u.task is not None:
                u.task.cancel()
                self._in_flight = None
        u.closed.set()
        self._wake.set()
        if self._state_is_idle():
            self._state("listening")

    # -- sending ----------------------------------------------------------------------

    async def _live(self, u: Utterance) -> None:
        assert u.live is not None
        try:
            outcome = await self._attempt(u.live.chunks())
            await u.closed.wait()
        finally:
            if self._in_flight == u.key:
                self._in_flight = None
            self._wake.set()
        if u.item is not None:
            self._settle(u.item, outcome, live=True)

    async def _attempt(self, body: bytes | AsyncIterator[bytes]) -> Outcome:
        try:
            return await self.sender.send(body)
        except SyncRefused as exc:
            return exc.failure
        except SyncProtocolError as exc:
            c = Classified(ErrorClass.TRANSIENT, 200, "", f"{exc}; retrying after a back-off")
            return SyncFailure(c, Disposition.RETRY)
        except SyncNetworkError as exc:
            return SyncFailure(classify_network(str(exc)), Disposition.RETRY)
        except Exception as exc:  # a bug must not stop transcription: kept and retried
            log.error("sync: the request failed unexpectedly: %r", exc, exc_info=True)
            c = Classified(ErrorClass.CLIENT_BUG, None, "", f"{type(exc).__name__}: {exc}")
            return SyncFailure(c, Disposition.RETRY)

    async def run(self) -> None:
        """Send what waits, oldest first, until `stop()`; then wait for the utterance being
        sent (the daemon bounds this with its stop budget)."""
        for item in self.store.load():
            self._report_drops(self.queue.add(replace(item, attempts=0, due_at=0.0), time.time()))
        if self.queue.count:
            log.info("sync: %d utterance(s) left by the last run will be sent", self.queue.count)
        self._state("listening")
        while not self._stopping:
            self._tick()
            head, wait = self.queue.head(), self.queue.wait(self._clock())
            if head is not None and wait == 0 and self._in_flight is None and not self.muted:
                await self._send_pending(head)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0 if wait is None else min(1.0, wait))
        if self._uploads:  # the last utterance's answer (the daemon bounds the wait)
            await asyncio.gather(*self._uploads, return_exceptions=True)
        await self.sender.aclose()

    async def _send_pending(self, item: PendingItem) -> None:
        audio = self.store.audio(item.key)
        if audio is None:
            self.queue.done(item.key)
            self.store.remove(item.key)
            return
        self._in_flight = item.key
        try:
            outcome = await self._attempt(audio)
        finally:
            self._in_flight = None
        self._settle(item, outcome, live=False)

    # -- results ----------------------------------------------------------------------

    def _settle(self, item: PendingItem, outcome: Outcome, *, live: bool) -> None:
        if isinstance(outcome, SyncTranscript):
            self._transcribed(item, outcome, live=live)
        elif outcome.disposition is Disposition.DROP:
            self.queue.refused(item.key)
            self.store.remove(item.key)
            line = outcome.classified.line()
            log.error(
                "sync: utterance %s:%d (%.1f s) dropped: %s",
                item.session_id,
                item.turn_order,
                item.audio_seconds,
                line,
                extra={"ERROR_CLASS": str(outcome.classified.error_class)},
            )
            self.reporter.record_error(outcome.classified)
            self.reporter.set_condition("sync", f"an utterance was dropped: {line}")
        else:
            self._failed(item, outcome)
        self._wake.set()

    def _failed(self, item: PendingItem, failure: SyncFailure) -> None:
        c = failure.classified
        wait = failure.retry_after
        if c.error_class is ErrorClass.AUTH:
            wait = max(wait or 0.0, AUTH_RETRY_MIN_SECONDS)
        delay = self.queue.failed(item.key, self._clock(), wait)
        line = c.line()
        log.warning(
            "sync: %s; %d utterance(s) pending, next try in %.1f s",
            line,
            self.queue.count,
            delay,
            extra={"ERROR_CLASS": str(c.error_class)},
        )
        self.reporter.record_error(c)
        state = "auth_failed" if c.error_class is ErrorClass.AUTH else "reconnecting"
        self._state(state, detail=line, error_class=str(c.error_class), retry_in=delay)

    def _transcribed(self, item: PendingItem, result: SyncTranscript, *, live: bool) -> None:
        self.queue.done(item.key)
        self.store.remove(item.key)
        timeline = AudioTimeline()
        timeline.append(round(item.audio_seconds * 1000), item.started_at)
        turn = build_transcript_turn(
            result.turn(item.turn_order),
            device_id=self.s.device_id,
            session_id=item.session_id,
            speech_model=self.s.model,
            timeline=timeline,
            provider=PROVIDER,
        )
        if result.words:
            turn = replace(turn, confidence=result.confidence)
        speech = 0.0
        if turn.started_at is not None and turn.ended_at is not None:
            speech = max(0.0, turn.ended_at - turn.started_at)
        self._bill(turn.id, item.audio_seconds, speech)
        latency = round((time.time() - item.ended_at) * 1000)
        if turn.text.strip():
            self.counters.turns += 1
            self.latencies_ms.append(latency)
            self.on_turn(turn)
        log.info(
            "sync: utterance %s transcribed (%.2f s of audio, %s upload, turn %d ms after the "
            "end of capture%s)",
            turn.id,
            item.audio_seconds,
            "live" if live else "whole",
            latency,
            "" if turn.text.strip() else "; no words: nothing published",
        )
        self.reporter.set_condition("sync", None)
        if self._current is None:
            self._state("listening")

    def _bill(self, key: str, billed: float, speech: float) -> None:
        self.billed_seconds += billed
        if self.ledger_store is not None:
            self.ledger_store.session_closed(key, time.time(), billed, speech, "local")
        else:
            self.ledger.record(datetime.now().astimezone(), billed, speech)
        self.on_billing()

    # -- upkeep -----------------------------------------------------------------------

    def _tick(self) -> None:
        self._report_drops(self.queue.expire(time.time()))
        out = self.ledger.exhausted(datetime.now().astimezone())
        if out != self._budget_out:
            self._budget_out = out
            if out:
                log.warning("sync: today's budget is used up; no utterance is sent until reset")
                self._state("budget_exhausted")
            else:
                self._state("listening")

    def _report_drops(self, dropped: list[Dropped]) -> None:
        for d in dropped:
            self.store.remove(d.item.key)
            log.error(
                "sync: pending utterance %s:%d (%.1f s of speech captured at %s) dropped: %s "
                "(sync.pending_max_*); %d dropped so far",
                d.item.session_id,
                d.item.turn_order,
                d.item.audio_seconds,
                time.strftime("%H:%M:%S", time.localtime(d.item.started_at)),
                "older than the age bound" if d.reason.value == "age" else "the spool is full",
                sum(self.queue.dropped.values()),
            )
        if dropped:
            self.reporter.set_condition(
                "sync", f"{sum(self.queue.dropped.values())} pending utterance(s) dropped"
            )

    def _state_is_idle(self) -> bool:
        return (
            not self.muted
            and self._current is None
            and self._in_flight is None
            and self.queue.count == 0
        )
