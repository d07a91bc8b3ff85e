"""One simulated ``/v1/realtime`` connection: the I/O loop around the sans-I/O rules.

A single task per connection reads client events with a deadline (the session cap or a
wall-time fault), so timers need no extra tasks. Errors the client can recover from are
``error`` events and the session stays open; the session cap, an ``error`` fault and the
refusals at connect end with an ``error`` event and a close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from edgecap.sim import connection
from edgecap.sim.openai.buffer import Commit, InputBuffer, LiveDelta, release
from edgecap.sim.openai.config import TranscriptionConfig, apply_session_update
from edgecap.sim.openai.events import (
    committed_events,
    decode_append,
    delta_event,
    failed_event,
    parse_client_event,
    recorded_form,
    speech_event,
    transcribed_events,
)
from edgecap.sim.openai.faults import RealtimeFault
from edgecap.sim.openai.protocol import (
    CLIENT_EVENT_TYPES,
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    NO_VAD_MODELS,
    PCM_RATE,
    SERVER_ERROR_TEXT,
    TRANSCRIPTION_UPDATE_REFUSED_TEXT,
    Message,
    RealtimeError,
    close_reason,
    conversation_session,
    error_event,
    event,
    invalid_value,
    new_id,
    session_expired,
)
from edgecap.sim.openai.records import CommitRecord, ItemRecord, RealtimeSessionRecord
from edgecap.sim.openai.settings import RealtimeEnv
from edgecap.sim.protocol import CLOSE_ABNORMAL

log = logging.getLogger("edgecap.sim")

_EARLY_AUDIO = "input_audio_buffer.append before session.updated (audio not transcribed)"


class RealtimeSession:
    """Runs one accepted connection to completion and keeps its record current."""

    def __init__(
        self,
        ws: ServerConnection,
        record: RealtimeSessionRecord,
        env: RealtimeEnv,
        refusal: RealtimeError | None = None,
    ) -> None:
        self.ws = ws
        self.record = record
        self.env = env
        self._refusal = refusal
        self._buffer: InputBuffer | None = None
        self._format: str | None = None  # the buffer's audio format
        self._live: dict[str, list[str]] = {}  # item id -> deltas sent before its commit
        self._fail_next: str | None = None

    async def run(self) -> None:
        rec = self.record
        try:
            await self._run()
        except ConnectionClosed as exc:
            self._note_closed(exc)
        finally:
            if self._buffer is not None:
                self._buffer.abandon()
            if rec.close_code is None:
                rec.close_code = self.ws.close_code or CLOSE_ABNORMAL
                rec.closed_by = rec.closed_by or "network"
            rec.closed_at = self.env.clock()
            self.env.notifier.notify()
            log.info(
                "simulator: openai session #%d end code=%s reason=%r by=%s audio=%.2fs items=%d",
                rec.index,
                rec.close_code,
                rec.close_reason,
                rec.closed_by,
                rec.audio_ms / 1000.0,
                len(rec.items),
            )

    def _note_closed(self, exc: ConnectionClosed) -> None:
        rec = self.record
        if rec.close_code is not None:
            return
        if exc.rcvd is not None:
            rec.close_code, rec.close_reason = exc.rcvd.code, exc.rcvd.reason
            rec.closed_by = "client"
        else:
            rec.close_code, rec.closed_by = CLOSE_ABNORMAL, "network"

    async def _run(self) -> None:
        rec = self.record
        if self._refusal is not None:
            await self._send(error_event(self._refusal))
            await self._close(CLOSE_POLICY, self._refusal.message)
            return
        plan = rec.fault
        if plan is not None and plan.kind == "no_created":
            await self.ws.wait_closed()  # pings and the client's close are still answered
            received = self.ws.protocol.close_rcvd
            if received is not None:
                rec.close_code, rec.close_reason = received.code, received.reason
                rec.closed_by = "client"
            return
        await self._created()
        await self._loop(plan)

    async def _created(self) -> None:
        rec, settings = self.record, self.env.settings
        now = self.env.clock()
        rec.session_id = new_id("sess")
        rec.created_at, rec.expires_at = now, int(now + settings.max_session_seconds)
        if rec.kind == "conversation":
            session = conversation_session(rec.session_id, rec.url_model or "", rec.expires_at)
        else:
            assert rec.config is not None
            session = rec.config.session_object(rec.session_id, rec.expires_at)
            self._configure(rec.config)
        rec.created = event("session.created", session=session)
        await self._send(rec.created)
        log.info(
            "simulator: openai session #%d created id=%s kind=%s auth=%s",
            rec.index,
            rec.session_id,
            rec.kind,
            rec.auth,
        )

    async def _loop(self, plan: RealtimeFault | None) -> None:
        rec = self.record
        loop = asyncio.get_running_loop()
        started = loop.time()
        max_session = self.env.settings.max_session_seconds
        if plan is not None and plan.immediate:
            if await self._fire(plan):
                return
            plan = None
        while True:
            deadlines = [(started + max_session, "expired")]
            if plan is not None and plan.after_seconds is not None:
                deadlines.append((started + plan.after_seconds, "fault"))
            when, what = min(deadlines)
            remaining = when - loop.time()
            if remaining <= 0:
                if what == "expired":
                    error = session_expired(max_session)
                    await self._send(error_event(error))
                    await self._close(CLOSE_GOING_AWAY, error.message)
                    return
                assert plan is not None
                fired, plan = plan, None
                if await self._fire(fired):
                    return
                continue
            try:
                async with asyncio.timeout(remaining):
                    data = await self.ws.recv()
            except TimeoutError:
                continue
            await self._on_message(data)
            utterances = self._buffer.utterances_started if self._buffer is not None else 0
            if plan is not None and plan.triggered(rec.audio_ms, utterances):
                fired, plan = plan, None
                if await self._fire(fired):
                    return

    async def _fire(self, plan: RealtimeFault) -> bool:
        """Carry out ``plan``; True when the session is over."""
        log.info("simulator: openai session #%d fault %s", self.record.index, plan.kind)
        if plan.kind == "drop":
            await self._drop()
        elif plan.kind == "stall":
            await self._stall()
        elif plan.kind == "error":
            message = plan.message or SERVER_ERROR_TEXT
            await self._send(error_event(RealtimeError(message, kind="server_error")))
            await self._close(plan.code or 1011, message)
        elif plan.kind == "fail_item":
            self._fail_next = plan.message or self.env.settings.failed_message
        elif plan.kind == "inject":
            for frame in plan.frames:
                await self.ws.send(frame)
                self.record.injected.append(frame)
            self.env.notifier.notify()
        return plan.ends_session

    # -- client events ---------------------------------------------------------------

    async def _on_message(self, data: str | bytes) -> None:
        rec = self.record
        try:
            message, client_id = parse_client_event(data)
        except RealtimeError as error:
            rec.received.append(data if isinstance(data, str) else f"<{len(data)} bytes>")
            await self._error(error)
            return
        rec.received.append(recorded_form(message))
        kind = message["type"]
        if kind == "input_audio_buffer.append":
            await self._on_append(message, client_id)
        elif kind == "session.update":
            await self._on_update(message, client_id)
        elif kind == "input_audio_buffer.commit":
            await self._on_commit(client_id)
        elif kind == "input_audio_buffer.clear":
            if self._buffer is not None:
                self._buffer.clear()
            await self._send(event("input_audio_buffer.cleared"))
        else:
            await self._error(invalid_value(kind, CLIENT_EVENT_TYPES, "type"), client_id)
        self.env.notifier.notify()

    async def _on_update(self, message: Message, client_id: str | None) -> None:
        rec = self.record
        rec.session_updates.append(message)
        session = message.get("session")
        assert rec.session_id is not None
        assert rec.expires_at is not None
        if rec.kind == "conversation":
            if isinstance(session, dict) and session.get("type") == "transcription":
                error = RealtimeError(TRANSCRIPTION_UPDATE_REFUSED_TEXT, param="session.type")
                await self._error(error, client_id)
                return
            updated = conversation_session(rec.session_id, rec.url_model or "", rec.expires_at)
            await self._send(event("session.updated", session=updated))
            return
        assert rec.config is not None
        try:
            config = apply_session_update(rec.config, session)
        except RealtimeError as error:
            await self._error(error, client_id)
            return
        rec.config = config
        rec.updates_accepted += 1
        self._configure(config)
        await self._send(
            event("session.updated", session=config.session_object(rec.session_id, rec.expires_at))
        )

    def _configure(self, config: TranscriptionConfig) -> None:
        """Build or adjust the input buffer for ``config`` (once it has a model)."""
        if not config.ready:
            return
        settings, buffer = self.env.settings, self._buffer
        live = settings.live_deltas and config.model in NO_VAD_MODELS
        if buffer is not None and self._format == config.format_type:
            buffer.vad, buffer.live_deltas = config.turn_detection, live
            return
        if buffer is not None:
            buffer.abandon()
        self._format = config.format_type
        self._buffer = InputBuffer(
            self.env.script,
            lambda: new_id("item"),
            sample_rate=config.sample_rate,
            encoding="pcm_s16le" if config.format_type == "audio/pcm" else "pcm_mulaw",
            vad=config.turn_detection,
            live_deltas=live,
            threshold_dbfs=settings.speech_threshold_dbfs,
            ms_per_word=settings.ms_per_word,
            min_speech_ms=settings.min_speech_ms,
            manual_gap_ms=settings.manual_gap_ms,
        )

    async def _on_append(self, message: Message, client_id: str | None) -> None:
        rec = self.record
        rec.appends += 1
        try:
            audio = decode_append(message)
        except RealtimeError as error:
            await self._error(error, client_id)
            return
        buffer, config = self._buffer, rec.config
        if buffer is None or config is None:
            ms = len(audio) / (PCM_RATE * 2 / 1000.0)
            if rec.kind == "conversation":
                rec.audio_ms += ms
                return
            rec.audio_ms_before_ready += ms
            if _EARLY_AUDIO not in rec.client_errors:
                rec.client_errors.append(_EARLY_AUDIO)
                log.warning("simulator: openai session #%d: %s", rec.index, _EARLY_AUDIO)
            return
        rec.audio_ms += len(audio) / config.bytes_per_ms
        for happening in buffer.feed(audio):
            if isinstance(happening, Commit):
                await self._committed(happening)
            elif isinstance(happening, LiveDelta):
                self._live.setdefault(happening.item_id, []).append(happening.delta)
                await self._send(delta_event(happening))
            else:
                await self._send(speech_event(happening))

    async def _on_commit(self, client_id: str | None) -> None:
        rec, buffer = self.record, self._buffer
        held = buffer.buffered_ms if buffer is not None else 0.0
        try:
            if buffer is None:
                raise RealtimeError("The session has no transcription model configured.")
            commit = buffer.commit()
        except RealtimeError as error:
            rec.commits.append(CommitRecord(held, error_code=error.code or "not_configured"))
            await self._error(error, client_id)
            return
        rec.commits.append(CommitRecord(held, item_id=commit.item_id))
        await self._committed(commit)

    # -- server events ---------------------------------------------------------------

    async def _committed(self, commit: Commit) -> None:
        rec = self.record
        item = ItemRecord(
            commit.item_id,
            commit.previous_item_id,
            commit.audio_start_ms,
            commit.audio_end_ms,
            commit.by,
            commit.texts,
            deltas=self._live.pop(commit.item_id, []),
            session=rec.index,
        )
        rec.items.append(item)
        try:
            for message in committed_events(commit):
                await self._send(message)
            if self._fail_next is not None:
                failure, self._fail_next = self._fail_next, None
                item.status = "failed"
                release(self.env.script, commit.texts)
                await self._send(failed_event(item.item_id, failure))
                return
            model = rec.config.model if rec.config is not None else None
            for message in transcribed_events(commit, model):
                if message["type"].endswith(".delta"):
                    item.deltas.append(message["delta"])
                elif message["type"].endswith(".completed"):
                    item.transcript, item.status = commit.transcript, "completed"
                await self._send(message)
        finally:
            if item.status == "committed":  # never completed: a replay gets the same texts
                release(self.env.script, commit.texts)
        log.info(
            "simulator: openai session #%d item %s %s: %r",
            rec.index,
            item.item_id,
            item.status,
            item.transcript,
        )

    async def _error(self, error: RealtimeError, client_id: str | None = None) -> None:
        await self._send(error_event(error, client_id))

    async def _send(self, message: Message) -> None:
        await self.ws.send(json.dumps(message))
        self.record.sent.append(message)
        self.env.notifier.notify()

    async def _close(self, code: int, reason: str) -> None:
        rec = self.record
        rec.close_code, rec.close_reason, rec.closed_by = code, close_reason(reason), "server"
        self.env.notifier.notify()
        with contextlib.suppress(ConnectionClosed):
            await self.ws.close(code, rec.close_reason)

    async def _drop(self) -> None:
        rec = self.record
        rec.close_code, rec.close_reason, rec.closed_by = CLOSE_ABNORMAL, "", "network"
        await connection.drop(self.ws)

    async def _stall(self) -> None:
        self.record.stalled = True
        await connection.stall(self.ws, self.env.stalled, self.env.notifier)
        self.record.close_code, self.record.closed_by = CLOSE_ABNORMAL, "network"
