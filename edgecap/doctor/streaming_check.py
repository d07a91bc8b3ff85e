"""Check 4: the streaming service accepts the token and begins a session with the
configured model; the session is terminated at once so it bills about a second."""

from __future__ import annotations

import asyncio
import time

from edgecap.app import wiring
from edgecap.config import SessionConfig
from edgecap.doctor.context import DoctorContext
from edgecap.doctor.explain import network_advice, network_kind, session_advice
from edgecap.doctor.loading import DoctorConfig
from edgecap.doctor.result import CheckResult, failed, passed, skipped, warned
from edgecap.engine.buffer import AudioBuffer
from edgecap.engine.session import SessionFailed, SessionSettings, StreamingSession
from edgecap.providers.assemblyai.url import redact_url
from edgecap.turns.transcript import TranscriptTurn

CHECK = "streaming"


def session_settings(ctx: DoctorContext) -> SessionSettings | None:
    """The session the daemon would open (the daemon's own wiring), with the doctor's
    timeouts; None if unknown."""
    cfg: DoctorConfig = ctx.cfg
    if cfg.streaming is None or cfg.endpointing is None or cfg.audio is None or cfg.auth is None:
        return None
    return wiring.session_settings_for(
        cfg.device_id,
        audio=cfg.audio,
        auth=cfg.auth,
        streaming=cfg.streaming,
        endpointing=cfg.endpointing,
        session=cfg.session or SessionConfig(),
        openai=cfg.openai,
        timeout=ctx.options.network_timeout,
    )


def not_runnable(ctx: DoctorContext, what: str) -> str | None:
    """Why a streaming session cannot be tried, or None."""
    cfg = ctx.cfg
    invalid = [
        name
        for name, section in (
            ("streaming", cfg.streaming),
            ("endpointing", cfg.endpointing),
            ("audio", cfg.audio),
        )
        if section is None
    ]
    if invalid:
        return cfg.unavailable(*invalid)
    if ctx.tokens is None or ctx.token_problem or (ctx.token is None and what == "token"):
        return f"not run: {ctx.token_problem or 'no token'} (see token)"
    if ctx.streaming_problem:
        return f"not run: {ctx.streaming_problem} (see streaming)"
    return None


def _ignore_turn(turn: TranscriptTurn) -> None:
    """The probe sends no audio, so no turns arrive."""


async def check_streaming(ctx: DoctorContext) -> CheckResult:
    reason = not_runnable(ctx, "token")
    settings = session_settings(ctx)
    if reason is not None or settings is None or ctx.token is None:
        return skipped(CHECK, reason or "not run")
    token, ctx.token = ctx.token, None  # single-use: spent by this attempt either way
    shown = redact_url(settings.url)
    session = StreamingSession(settings, AudioBuffer(1000, 50), asyncio.Event(), _ignore_turn)
    started = time.monotonic()
    try:
        begin = await session.open(token.value)
    except SessionFailed as exc:
        c = exc.classified
        failure = {"url": shown, "stage": exc.stage, "code": c.code, "class": str(c.error_class)}
        ctx.streaming_problem = "no streaming session could be opened"
        if exc.stage == "handshake" and c.code is None:
            advice = network_advice(network_kind(exc), "streaming server", shown, "streaming.url")
            return failed(CHECK, f"{advice.cause}: {c.hint}", advice.fix, **failure)
        way_in = wiring.auth_form(ctx.cfg.auth) if ctx.cfg.auth else "token_query"
        advice = session_advice(exc.stage, c, shown, way_in=way_in)
        return failed(CHECK, advice.cause, advice.fix, **failure)
    began_ms = round((time.monotonic() - started) * 1000)
    termination = await session.terminate()
    open_seconds = round(time.monotonic() - started, 2)
    wanted = settings.params.speech_model
    billed = termination.billed_seconds if termination else None
    data: dict[str, object] = {
        "url": shown,
        "session_id": begin.id,
        "model": begin.model,
        "configured_model": wanted,
        "begin_ms": began_ms,
        "open_seconds": open_seconds,
        "terminated": termination is not None,
        "billed_seconds": billed,
    }
    ended = (
        f"terminated after {open_seconds:.1f} s (billed {billed} s)"
        if termination is not None
        else f"closed after {open_seconds:.1f} s without Termination"
    )
    if begin.model is not None and begin.model != wanted:
        ctx.streaming_problem = "the server runs another speech model"
        return failed(
            CHECK,
            f"session {begin.id} runs speech model {begin.model!r} but {wanted!r} is "
            f"configured; {ended}",
            "streaming.url points at a server or proxy that overrides speech_model (or "
            "ignores it); use wss://streaming.assemblyai.com/v3/ws, or set "
            f'streaming.speech_model = "{begin.model}" if that model is what you want',
            **data,
        )
    model = begin.model or "not reported by the server"
    detail = f"session {begin.id} began {began_ms} ms after connecting (model {model}); {ended}"
    if termination is None:
        return warned(
            CHECK,
            detail,
            "the server did not confirm Terminate in time; if this repeats, sessions may "
            "bill longer than needed: check the network path to the streaming server",
            **data,
        )
    return passed(CHECK, detail, **data)
