"""Classify what ended or prevented an OpenAI Realtime session (no I/O).

OpenAI reports most trouble as an `error` event (`{type, code, message, param}`) on a
connection that stays open, not as a close code; a refused upgrade is an HTTP status. Each
becomes a class for the retry policy and one line for humans (`Classified`):

| class | examples | retry |
|---|---|---|
| transient | `server_error`, close 1006/1011/1012/1013, HTTP 5xx | at once, then backoff |
| throttled | `rate_limit_exceeded`, HTTP 429 | longer backoff |
| session_over | `session_expired`, close 1000 after our end | a new session at once |
| auth | HTTP 401/403, `invalid_api_key`, `insufficient_quota` | re-mint once, then slowly |
| config | model in the URL, `model_not_found`, session.update rejected | long cool-down |
| client_bug | an event edgecap sent was rejected, close 1009 | backoff, reported loudly |

An error event travels to the engine as `ServerFailed`/`ServerWarned` with the text made by
`error_text` ("[type/code param] message"); `classify_close` reads it back, so the engine's
provider-neutral end classification (close code + the last server error's text) works.
"""

from __future__ import annotations

import re

from edgecap.providers.failures import Classified, ErrorClass

_URL = "wss://api.openai.com/v1/realtime?intent=transcription"
AUTH_CAUSES = (
    "the key lacks Realtime access or permissions (a restricted key), the project's model "
    "limits exclude the realtime/transcription models, the organisation has no billing or "
    "credit, the model is not available to the project, or the key is in the wrong place "
    "(it goes in 'Authorization: Bearer', never in the URL)"
)
_BUG_TODO = "this is an edgecap bug, please report it with the log"
CONVERSATION_SESSION = (
    "the URL opened a conversation session, not a transcription session: a 'model' in the "
    f"URL does that for api.openai.com; use {_URL} and set the transcription model in the "
    "settings"
)
BETA_PROTOCOL = (
    "the server speaks the deprecated beta Realtime protocol (transcription_session.*): use "
    f"the GA endpoint {_URL} (no OpenAI-Beta header)"
)

_SESSION_SETTINGS_CODES = frozenset(
    {"invalid_value", "unknown_parameter", "missing_required_parameter", "invalid_type"}
)
_AUTH_CODES = frozenset(
    {"invalid_api_key", "invalid_authentication", "expired_api_key", "unauthorized"}
)


def classify_openai_error(
    kind: str | None, code: str | None, message: str, param: str | None = None
) -> Classified:
    """An `error` event's `type`, `code`, `message` and `param` as a class and a hint."""
    low = message.lower()
    k = (kind or "").lower()
    c = (code or "").lower()

    def out(cls: ErrorClass, hint: str) -> Classified:
        return Classified(cls, None, message, f"{hint} ({kind or '?'}/{code or '?'})")

    if c == "conversation_session":
        return out(ErrorClass.CONFIG, CONVERSATION_SESSION)
    if c == "beta_protocol":
        return out(ErrorClass.CONFIG, BETA_PROTOCOL)
    if c == "session_expired" or "maximum duration" in low:
        return out(ErrorClass.SESSION_OVER, "the session reached OpenAI's maximum duration")
    if "cannot be used as the realtime session model" in low or (
        "conversation" in low and "transcription" in low and "session" in low
    ):
        return out(ErrorClass.CONFIG, CONVERSATION_SESSION)
    if c in _AUTH_CODES or k in ("authentication_error", "invalid_api_key"):
        return out(
            ErrorClass.AUTH,
            "OpenAI refused the credential (invalid, revoked or expired key or ek_ secret); "
            "edgecap re-mints once, then retries slowly",
        )
    if c == "insufficient_quota" or k == "insufficient_quota" or "billing" in low:
        return out(
            ErrorClass.AUTH,
            "the OpenAI project has no quota left (no billing or credit): add credit or raise "
            "the project's budget",
        )
    if c in ("model_not_found", "permission_denied") or k == "permission_error":
        return out(ErrorClass.CONFIG, f"OpenAI refused the model or the access: {AUTH_CAUSES}")
    if c == "rate_limit_exceeded" or k in ("rate_limit_error", "rate_limit_exceeded"):
        return out(ErrorClass.THROTTLED, "OpenAI's rate limit was hit; backing off")
    if k == "server_error" or c == "server_error":
        return out(ErrorClass.TRANSIENT, "OpenAI had a server error; retrying")
    if c == "input_audio_buffer_commit_empty":
        return out(
            ErrorClass.CLIENT_BUG,
            "a commit had less than 100 ms of audio (skipped by the server, nothing lost); "
            f"if it repeats, {_BUG_TODO}",
        )
    if c in _SESSION_SETTINGS_CODES and (param or "").startswith("session"):
        return out(
            ErrorClass.CONFIG,
            f"OpenAI rejected the session settings ({param}): check the model, language, "
            "prompt, noise reduction and turn detection settings",
        )
    if k == "invalid_request_error":
        return out(ErrorClass.CLIENT_BUG, f"OpenAI rejected an event edgecap sent; {_BUG_TODO}")
    return out(ErrorClass.CLIENT_BUG, f"unexpected OpenAI error; {_BUG_TODO}")


ENDS_SESSION = frozenset(
    {
        ErrorClass.SESSION_OVER,
        ErrorClass.AUTH,
        ErrorClass.CONFIG,
        ErrorClass.THROTTLED,
        ErrorClass.TRANSIENT,
    }
)
"""Error classes that mean the session cannot usefully go on (a `ServerFailed`); the rest
(an event edgecap sent was rejected) are warnings on a session that goes on."""


def error_text(kind: str | None, code: str | None, message: str, param: str | None = None) -> str:
    """An error event as one line that `classify_close` can read back."""
    where = f" {_token(param)}" if param else ""
    return f"[{_token(kind)}/{_token(code)}{where}] {message}"


def _token(value: str | None) -> str:
    return re.sub(r"[\s/\[\]]", "_", value or "")


_ERROR_TEXT = re.compile(r"\[([^/\]\s]*)/([^\]\s]*)(?: ([^\]]*))?\](?: (.*))?", re.DOTALL)


def read_error_text(text: str) -> tuple[str | None, str | None, str, str | None] | None:
    """(type, code, message, param) from `error_text`'s line, or None for other text."""
    match = _ERROR_TEXT.fullmatch(text.strip())
    if match is None:
        return None
    kind, code, param, message = match.groups()
    return kind or None, code or None, message or "", param or None


def classify_close(
    code: int | None, reason: str = "", *, after_terminate: bool = False
) -> Classified:
    """The end of a session: the last error event's text when there was one (the engine
    passes it as `reason`), else the WebSocket close (code None or 1006: no close frame)."""
    error = read_error_text(reason)
    if error is not None:
        return classify_openai_error(*error)
    r = reason.strip()
    low = r.lower()

    def c(cls: ErrorClass, hint: str) -> Classified:
        return Classified(cls, code, r, hint)

    if "expired" in low or "maximum duration" in low:
        return c(ErrorClass.SESSION_OVER, "the session reached OpenAI's maximum duration")
    if "rate limit" in low:
        return c(ErrorClass.THROTTLED, "OpenAI's rate limit was hit; backing off")
    if code == 1000:
        if after_terminate:
            return c(ErrorClass.SESSION_OVER, "session ended normally")
        return c(ErrorClass.TRANSIENT, "OpenAI closed the session without an error; reconnecting")
    if code is None or code == 1006:
        return c(ErrorClass.TRANSIENT, "connection lost without a close frame (network drop)")
    if code == 1008:
        return c(ErrorClass.AUTH, f"OpenAI closed the session as a policy violation: {AUTH_CAUSES}")
    if code == 1009:
        return c(ErrorClass.CLIENT_BUG, f"a message exceeded OpenAI's size limit; {_BUG_TODO}")
    if code in (1002, 1003, 1007):
        return c(ErrorClass.CLIENT_BUG, f"OpenAI rejected what edgecap sent; {_BUG_TODO}")
    if code in (1001, 1011, 1012, 1013, 1014):
        return c(ErrorClass.TRANSIENT, "temporary server condition; retrying")
    return c(ErrorClass.TRANSIENT, "unexpected close; retrying with backoff")


def classify_upgrade(status: int) -> Classified:
    """The WebSocket upgrade was refused with this HTTP status."""

    def c(cls: ErrorClass, hint: str) -> Classified:
        return Classified(cls, status, "", hint)

    if status == 401:
        return c(
            ErrorClass.AUTH,
            "OpenAI refused the credential (HTTP 401: missing, invalid, revoked or expired key "
            "or ek_ secret, or not sent as 'Authorization: Bearer'); edgecap re-mints once, "
            "then retries slowly",
        )
    if status == 403:
        return c(
            ErrorClass.AUTH,
            f"OpenAI refused access (HTTP 403): {AUTH_CAUSES}; edgecap re-mints once, then "
            "retries slowly",
        )
    if status == 429:
        return c(ErrorClass.THROTTLED, "OpenAI is rate limiting (HTTP 429); backing off")
    if status in (400, 404):
        return c(
            ErrorClass.CONFIG,
            f"OpenAI has no such endpoint or rejected the URL (HTTP {status}); use {_URL}",
        )
    if status >= 500:
        return c(ErrorClass.TRANSIENT, f"OpenAI failed (HTTP {status}); retrying")
    return c(ErrorClass.CLIENT_BUG, f"OpenAI answered the upgrade with HTTP {status}")


__all__ = [
    "AUTH_CAUSES",
    "BETA_PROTOCOL",
    "CONVERSATION_SESSION",
    "ENDS_SESSION",
    "classify_close",
    "classify_openai_error",
    "classify_upgrade",
    "error_text",
    "read_error_text",
]
