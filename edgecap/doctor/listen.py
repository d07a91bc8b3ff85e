"""``--listen SECONDS``: stream that long from the microphone through a real session and
print the turns, with the daemon's own capture, buffer and session code."""

from __future__ import annotations

import asyncio

from edgecap.app import wiring
from edgecap.audio.capture import CaptureEvent, CaptureProcess
from edgecap.audio.frame import Frame
from edgecap.auth.tokens import TokenError
from edgecap.doctor.context import DoctorContext
from edgecap.doctor.explain import session_advice
from edgecap.doctor.result import CheckResult, failed, passed, skipped, warned
from edgecap.doctor.streaming_check import not_runnable, session_settings
from edgecap.engine.buffer import AudioBuffer
from edgecap.engine.session import SessionFailed, StreamingSession
from edgecap.engine.states import CloseReason
from edgecap.providers.assemblyai.url import redact_url
from edgecap.turns.transcript import TranscriptTurn

CHECK = "listen"
BUFFER_MS = 30_000
OPEN_TIMEOUT_SECONDS = 10.0


async def check_listen(ctx: DoctorContext) -> CheckResult:
    seconds = ctx.options.listen_seconds or 0.0
    if ctx.cfg.sync_provider:
        return skipped(
            CHECK,
            'not available with streaming.provider = "assemblyai-sync" (no streaming session '
            "to listen through; the sync check posts a clip)",
        )
    reason = not_runnable(ctx, "client")
    settings = session_settings(ctx)
    if reason is None and not ctx.audio_ok:
        reason = "not run: the audio device did not work (see audio)"
    if reason is not None or settings is None or ctx.tokens is None or ctx.cfg.audio is None:
        return skipped(CHECK, reason or "not run")
    audio = ctx.cfg.audio
    loop = asyncio.get_running_loop()
    buffer = AudioBuffer(BUFFER_MS, audio.frame_ms)
    ready, opened, stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
    problems: list[str] = []
    turns: list[TranscriptTurn] = []

    def on_frame(frame: Frame) -> None:
        buffer.append(frame)
        ready.set()

    def on_event(event: CaptureEvent) -> None:
        if event.kind == "opened":
            opened.set()
        elif event.kind == "unavailable":
            problems.append(event.detail)
            opened.set()
            stop.set()

    def on_turn(turn: TranscriptTurn) -> None:
        turns.append(turn)
        ctx.options.on_line(f"turn {turn.turn_order}: {turn.text}")

    capture = CaptureProcess(
        wiring.capture_settings_for(audio, None),
        loop,
        on_frame,
        on_event,
    )
    capture.start()
    try:
        try:
            await asyncio.wait_for(opened.wait(), OPEN_TIMEOUT_SECONDS)
        except TimeoutError:
            return failed(
                CHECK,
                f"audio device {audio.device!r} did not open within {OPEN_TIMEOUT_SECONDS:g} s",
                "see the audio check",
            )
        if problems:
            return failed(CHECK, problems[0], "see the audio check", device=audio.device)
        try:
            token = await ctx.tokens.fetch()
        except TokenError as exc:
            return failed(CHECK, str(exc), "see the token check")
        session = StreamingSession(settings, buffer, ready, on_turn)
        try:
            begin = await session.open(token.value)
        except SessionFailed as exc:
            way_in = wiring.auth_form(ctx.cfg.auth) if ctx.cfg.auth else "token_query"
            shown = redact_url(settings.url)
            advice = session_advice(exc.stage, exc.classified, shown, way_in=way_in)
            return failed(CHECK, advice.cause, advice.fix)
        ctx.options.on_line(f"listening for {seconds:g} s (session {begin.id}): speak now")
        timer = loop.call_later(seconds, stop.set)
        stopped = asyncio.ensure_future(stop.wait())  # the time is up, or the audio failed
        stopped.add_done_callback(lambda _: session.request_close(CloseReason.STOP, drain=True))
        try:
            result = await session.run()
        finally:
            timer.cancel()
            stopped.cancel()
    finally:
        await capture.stop()
    billed = result.termination.billed_seconds if result.termination else None
    data = {
        "session_id": result.session_id,
        "seconds": seconds,
        "audio_sent_seconds": result.audio_sent_ms / 1000,
        "billed_seconds": billed,
        "turns": [{"turn_order": t.turn_order, "text": t.text} for t in turns],
    }
    heard = "; ".join(f"{t.turn_order}: {t.text!r}" for t in turns)
    summary = (
        f"{len(turns)} turn(s) in {result.audio_sent_ms / 1000:.1f} s of audio"
        f"{': ' + heard if heard else ''}"
    )
    if problems:
        return failed(CHECK, f"{summary}; then {problems[0]}", "see the audio check", **data)
    if result.ended_by == "server" and result.classified is not None:
        return failed(
            CHECK,
            f"{summary}; the server ended the session: {result.classified.line()}",
            "run the doctor again; if it repeats, see the streaming check's advice",
            **data,
        )
    if not turns:
        return warned(
            CHECK,
            f"no turns in {result.audio_sent_ms / 1000:.1f} s of audio",
            "speak clearly near the microphone while listening; check the audio level above",
            **data,
        )
    return passed(CHECK, summary, **data)
