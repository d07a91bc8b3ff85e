"""What the engine reports: the reporter interface, and the lines it logs about sessions
and failures (no I/O but logging)."""

from __future__ import annotations

import logging
import time
from typing import Protocol

from edgecap.auth.tokens import TokenError
from edgecap.engine import events as c
from edgecap.engine.gaps import Gap
from edgecap.engine.states import CloseReason, EndedBy
from edgecap.engine.types import SessionFailed, SessionResult
from edgecap.providers.assemblyai.errors import classify_token_error
from edgecap.providers.base import SessionOpened
from edgecap.providers.failures import Classified, ErrorClass, classify_network

log = logging.getLogger("edgecap.engine.runner")


class EngineReporter(Protocol):
    """Where the engine's states, failures and gaps go (the daemon's `StatusModel`)."""

    def engine_state(self, report: c.Report, *, spare_token: bool) -> None: ...
    def record_error(self, classified: Classified) -> None: ...
    def record_gap(self, gap: Gap) -> None: ...


class LogReporter:
    """A reporter that only logs (measurements and tests without a status)."""

    def engine_state(self, report: c.Report, *, spare_token: bool) -> None:
        log.debug("engine state %s %s", report.state, report.detail)

    def record_error(self, classified: Classified) -> None:
        pass

    def record_gap(self, gap: Gap) -> None:
        pass


def classify_failure(exc: BaseException) -> Classified:
    if isinstance(exc, SessionFailed):
        return exc.classified
    if isinstance(exc, TokenError):
        return classify_token_error(exc.status, exc.kind, str(exc))
    return classify_network(f"unexpected failure: {exc!r}")


def model_note(begin: SessionOpened, wanted: str) -> str:
    """A WARNING line (and status detail) when the server runs another model."""
    if begin.model is None or begin.model == wanted:
        return ""
    note = (
        f"the server runs speech model {begin.model!r} but {wanted!r} was requested; "
        "check streaming.url and streaming.speech_model"
    )
    log.warning("%s", note)
    return note


def bug_result(session_id: str, exc: Exception, opened_at: float) -> SessionResult:
    return SessionResult(
        session_id=session_id,
        ended_by=EndedBy.SERVER,
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


def log_result(r: SessionResult) -> None:
    billed = r.termination.billed_seconds if r.termination else None
    why = ""
    if r.ended_by is EndedBy.SERVER and r.classified is not None:
        why = f"; {r.classified.line()}"
    elif r.close_reason is CloseReason.IDLE:
        why = " after the idle time"
    elif r.close_reason is CloseReason.BUDGET:
        why = ": budget used up"
    elif r.close_reason is CloseReason.DEADLINE:
        why = " at the deadline"
    elif r.close_reason is not None and r.close_reason.rotation:
        why = f" at a {r.close_reason} point"
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
    if r.close_reason is CloseReason.DEADLINE and r.unfinished_text:
        log.warning("rotation at the deadline ended a turn early: %r", r.unfinished_text)
    if r.replay_ms:
        log.info(
            "%.1f s of audio sent since the last final turn will be replayed%s",
            r.replay_ms / 1000,
            f" (unfinished text: {r.unfinished_text!r})" if r.unfinished_text else "",
        )
