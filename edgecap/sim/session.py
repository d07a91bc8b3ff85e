"""One simulated ``/v3/ws`` session: the I/O loop around the sans-I/O rules.

A single task per connection reads client messages with a deadline (the
earliest of inactivity, maximum session duration and a wall-time fault), so
timers need no extra tasks. Every error close sends an ``Error`` frame first.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import random
import time
import uuid
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from edgecap.sim import connection
from edgecap.sim.credentials import MAX_SESSION, AuthError, Grant
from edgecap.sim.faults import FaultPlan
from edgecap.sim.params import (
    SessionParams,
    apply_update,
    begin_configuration,
    parse_session_params,
)
from edgecap.sim.protocol import (
    API_VERSION,
    CLOSE_ABNORMAL,
    CLOSE_INVALID_MESSAGE,
    CLOSE_NORMAL,
    CLOSE_SESSION_EXPIRED,
    CLOSE_UNAUTHORIZED,
    SESSION_EXPIRED_TEXT,
    RateCheck,
    SessionError,
    check_frame,
    close_reason,
    error_frame,
    parse_client_message,
)
from edgecap.sim.records import Message, SessionRecord
from edgecap.sim.settings import SessionEnv, turn_extras
from edgecap.sim.speakers import TurnAnnotator, TurnExtras
from edgecap.sim.synthetic import SYNTHETIC_TURN_TEXT, synthetic_finals
from edgecap.sim.turns import TurnGenerator

log = logging.getLogger("edgecap.sim")

_UNSENDABLE_CODES = frozenset({1004, 1005, CLOSE_ABNORMAL, 1015})


def _seconds(value: float) -> int:
    return int(value + 0.5)


class SimSession:
    """Runs one accepted connection to completion and keeps its record current."""

    def __init__(self, ws: ServerConnection, record: SessionRecord, env: SessionEnv) -> None:
        self.ws = ws
        self.record = record
        self.env = env
        self._turns: TurnGenerator | None = None
        self._annotator = TurnAnnotator(TurnExtras())

    async def run(self) -> None:
        rec = self.record
        try:
            await self._run()
        except ConnectionClosed as exc:
            self._note_closed(exc)
        finally:
            if self._turns is not None:
                self._turns.abandon()
            if rec.close_code is None:
                rec.close_code = self.ws.close_code or CLOSE_ABNORMAL
                rec.closed_by = rec.closed_by or "network"
            rec.closed_at = self.env.clock()
            self.env.notifier.notify()
            log.info(
                "simulator: session #%d end code=%s reason=%r by=%s audio=%.2fs frames=%d"
                " finals=%d",
                rec.index,
                rec.close_code,
                rec.close_reason,
                rec.closed_by,
                rec.audio_ms / 1000.0,
                rec.frames_received,
                len(rec.final_turns),
            )

    def _note_closed(self, exc: ConnectionClosed) -> None:
        rec = self.record
        if rec.close_code is not None:
            return
        if exc.sent is not None and (exc.rcvd is None or not exc.rcvd_then_sent):
            rec.close_code, rec.close_reason, rec.closed_by = (
                exc.sent.code,
                exc.sent.reason,
                "server",
            )
        elif exc.rcvd is not None:
            rec.close_code, rec.close_reason, rec.closed_by = (
                exc.rcvd.code,
                exc.rcvd.reason,
                "client",
            )
        else:
            rec.close_code, rec.closed_by = CLOSE_ABNORMAL, "network"

    async def _run(self) -> None:
        rec, env = self.record, self.env
        if rec.auth is not None:  # the proxy path checked the team credential at upgrade
            grant = Grant(kind=rec.auth, max_session_seconds=MAX_SESSION)
        else:
            try:
                grant = env.tokens.authenticate(rec.query, rec.headers.get("authorization"))
            except AuthError as exc:
                await self._close(CLOSE_UNAUTHORIZED, f"Unauthorized Connection: {exc.reason}")
                return
        rec.auth, rec.token = grant.kind, grant.token
        plan = rec.fault
        if plan is not None and plan.kind == "no_begin":
            # upgraded and authenticated, then nothing: frames are read (pings and the
            # client's close are answered by the library) but Begin never comes
            await self.ws.wait_closed()
            received = self.ws.protocol.close_rcvd
            if received is not None:
                rec.close_code, rec.close_reason = received.code, received.reason
                rec.closed_by = "client"
            return
        if plan is not None and plan.kind == "before_begin":
            await self._close(plan.code or CLOSE_UNAUTHORIZED, plan.close_text)
            return
        try:
            params = parse_session_params(rec.query)
        except SessionError as exc:
            await self._close(exc.code, exc.text)
            return
        rec.params, rec.connect_params = params, copy.deepcopy(params)
        settings = env.settings
        self._annotator = TurnAnnotator(turn_extras(params, settings))
        max_session = grant.max_session_seconds
        if settings.max_session_seconds is not None:
            max_session = min(max_session, settings.max_session_seconds)
        self._turns = TurnGenerator(
            env.script,
            sample_rate=params.sample_rate,
            encoding=params.encoding,
            format_turns=params.format_turns,
            endpointing=params.endpointing,
            eot_confidence=settings.eot_confidence,
            threshold_dbfs=settings.speech_threshold_dbfs,
            ms_per_word=settings.ms_per_word,
            rng=random.Random(settings.seed * 1_000_003 + rec.index),
        )
        await self._begin(params, max_session)
        if settings.inactivity_timeout_seconds is not None:
            params.inactivity_timeout = settings.inactivity_timeout_seconds
        await self._loop(params, max_session)

    async def _begin(self, params: SessionParams, max_session: float) -> None:
        rec, settings = self.record, self.env.settings
        model = settings.reported_model or params.speech_model or settings.default_model
        now = self.env.clock()
        api_version = rec.headers.get("assemblyai-version", API_VERSION)
        begin: Message = {
            "type": "Begin",
            "id": str(uuid.uuid4()),
            "expires_at": int(now + max_session),
            "configuration": begin_configuration(params, model, api_version),
        }
        rec.session_id, rec.begin, rec.begin_at, rec.expires_at = (
            begin["id"],
            begin,
            now,
            begin["expires_at"],
        )
        await self._send(begin)
        log.info(
            "simulator: session #%d begin id=%s model=%s auth=%s rate=%d encoding=%s"
            " format_turns=%s",
            rec.index,
            rec.session_id,
            model,
            rec.auth,
            params.sample_rate,
            params.encoding,
            params.format_turns,
        )

    async def _loop(self, params: SessionParams, max_session: float) -> None:
        rec, settings = self.record, self.env.settings
        loop = asyncio.get_running_loop()
        started = last_activity = loop.time()
        rate = RateCheck(settings.max_rate, settings.rate_slack_seconds)
        plan = rec.fault if rec.fault is not None and rec.fault.kind != "before_begin" else None
        if plan is not None and plan.triggered_by_audio(0.0):
            await self._fire(plan)
            if plan.ends_session:
                return
            plan = None
        while True:
            deadlines = [(started + max_session, "expired")]
            if params.inactivity_timeout is not None:
                deadlines.append((last_activity + params.inactivity_timeout, "inactivity"))
            if plan is not None and plan.after_seconds is not None:
                deadlines.append((started + plan.after_seconds, "fault"))
            when, what = min(deadlines)
            remaining = when - loop.time()
            if remaining <= 0 and what == "fault" and plan is not None and not plan.ends_session:
                await self._fire(plan)
                plan = None
                continue
            if remaining <= 0:
                await self._on_deadline(what, plan, params)
                return
            try:
                async with asyncio.timeout(remaining):
                    data = await self.ws.recv()
            except TimeoutError:
                continue
            last_activity = loop.time()
            if isinstance(data, str):
                if await self._on_text(data):
                    return
                continue
            rec.frame_sizes.append(len(data))
            try:
                duration_ms = check_frame(len(data), params)
                rate.max_rate, rate.slack_seconds = settings.max_rate, settings.rate_slack_seconds
                rate.add(duration_ms / 1000.0, last_activity)
            except SessionError as exc:
                await self._close(exc.code, exc.text)
                return
            rec.audio_ms += duration_ms
            self.env.notifier.notify()
            assert self._turns is not None
            for message in self._turns.feed(data):
                await self._send(message)
            if (
                plan is not None
                and plan.after_audio_ms is not None
                and plan.triggered_by_audio(rec.audio_ms)
            ):
                await self._fire(plan)
                if plan.ends_session:
                    return
                plan = None

    async def emit_final_turns(
        self, count: int, *, interval: float = 0.0, text: str = SYNTHETIC_TURN_TEXT
    ) -> list[tuple[int, float]]:
        """Send ``count`` synthetic final turns, ``interval`` s apart (benchmarks); returns
        ``(turn_order, time.monotonic() just before the completing final was sent)`` each.
        ``RuntimeError`` before ``Begin`` or while a speech turn is open."""
        turns = self._turns
        if turns is None or self.record.begin is None:
            raise RuntimeError("the session has not begun")
        sent: list[tuple[int, float]] = []
        for i in range(count):
            if turns.in_turn:
                raise RuntimeError("a speech turn is open; emit synthetic turns in silence")
            order = turns.next_turn_order
            turns.next_turn_order += 1
            messages = synthetic_finals(order, text, turns.position_ms, turns.format_turns)
            for message in messages[:-1]:
                await self._send(message)
            sent_at = time.monotonic()
            await self._send(messages[-1])
            sent.append((order, sent_at))
            if interval > 0 and i + 1 < count:
                await asyncio.sleep(interval)  # the requested spacing between turns
        return sent

    async def _on_deadline(self, what: str, plan: FaultPlan | None, params: SessionParams) -> None:
        if what == "expired":
            await self._close(CLOSE_SESSION_EXPIRED, SESSION_EXPIRED_TEXT)
        elif what == "inactivity":
            timeout = params.inactivity_timeout or 0.0
            await self._close(
                CLOSE_INVALID_MESSAGE,
                f"Inactivity Timeout: no audio or messages received for {timeout:g} s",
            )
        elif plan is not None:
            await self._fire(plan)

    async def _on_text(self, text: str) -> bool:
        """Handle a client text message; True when the session is over."""
        rec = self.record
        try:
            message = parse_client_message(text)
        except SessionError as exc:
            rec.text_messages.append(text)
            await self._close(exc.code, exc.text)
            return True
        rec.text_messages.append(message)
        self.env.notifier.notify()
        kind = message["type"]
        assert self._turns is not None
        if kind == "Terminate":
            rec.terminate_received = True
            await self._terminate()
            return True
        if kind == "ForceEndpoint":
            for turn in self._turns.force_endpoint():
                await self._send(turn)
        elif kind == "UpdateConfiguration":
            try:
                self._update(message)
            except SessionError as exc:
                await self._close(exc.code, exc.text)
                return True
            log.info("simulator: session #%d configuration updated: %s", rec.index, message)
        return False

    def _update(self, message: dict[str, Any]) -> None:
        params = self.record.params
        assert self._turns is not None
        assert params is not None
        apply_update(params, message)  # params.endpointing is the generator's
        self._turns.format_turns = params.format_turns

    async def _terminate(self) -> None:
        rec = self.record
        assert self._turns is not None
        for turn in self._turns.force_endpoint():
            await self._send(turn)
        assert rec.begin_at is not None
        revision = self._annotator.revision(self.env.settings.revised_speakers)
        if revision is not None:
            await self._send(revision)
        rec.audio_duration_seconds = _seconds(rec.audio_ms / 1000.0)
        rec.session_duration_seconds = _seconds(self.env.clock() - rec.begin_at)
        await self._send(
            {
                "type": "Termination",
                "audio_duration_seconds": rec.audio_duration_seconds,
                "session_duration_seconds": rec.session_duration_seconds,
            }
        )
        await self._close(CLOSE_NORMAL, "")

    async def _fire(self, plan: FaultPlan) -> None:
        shown = f"inject {len(plan.frames)} frame(s)" if plan.kind == "inject" else plan
        log.info("simulator: session #%d fault %s", self.record.index, shown)
        if plan.kind == "drop":
            await self._drop()
        elif plan.kind == "stall":
            await self._stall()
        elif plan.kind == "inject":
            for frame in plan.frames:
                await self.ws.send(frame)
                self.record.injected.append(frame)
            self.env.notifier.notify()
        else:
            await self._close(plan.code or 1011, plan.close_text)

    async def _send(self, message: Message) -> None:
        message = self._annotator.annotate(message)
        await self.ws.send(json.dumps(message))
        rec = self.record
        rec.sent.append(message)
        self.env.notifier.notify()
        last_final = message.get("type") == "Turn" and message["end_of_turn"]
        if last_final and self._turns is not None and self._turns.format_turns:
            last_final = message["turn_is_formatted"]
        if last_final:
            log.info(
                "simulator: session #%d turn %d final (formatted=%s): %r",
                rec.index,
                message["turn_order"],
                message["turn_is_formatted"],
                message["transcript"],
            )

    async def _close(self, code: int, text: str) -> None:
        """Error frame (unless 1000), then a close frame with ``code``."""
        if code in _UNSENDABLE_CODES:
            await self._drop()
            return
        rec = self.record
        reason = close_reason(text)
        if code != CLOSE_NORMAL:
            frame = error_frame(code, text)
            rec.error = frame
            with contextlib.suppress(ConnectionClosed):
                await self._send(frame)
        rec.close_code, rec.close_reason, rec.closed_by = code, reason, "server"
        self.env.notifier.notify()
        await self.ws.close(code, reason)

    async def _drop(self) -> None:
        rec = self.record
        rec.close_code, rec.close_reason, rec.closed_by = CLOSE_ABNORMAL, "", "network"
        await connection.drop(self.ws)

    async def _stall(self) -> None:
        self.record.stalled = True
        await connection.stall(self.ws, self.env.stalled, self.env.notifier)
        self.record.close_code, self.record.closed_by = CLOSE_ABNORMAL, "network"
