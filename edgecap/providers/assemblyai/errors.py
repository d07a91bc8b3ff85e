"""Classify what ended or prevented a session (no I/O).

Input is what was observed: a WebSocket close (code + reason, possibly preceded by an
`Error` frame), an HTTP status at the upgrade, a token-source failure, a network error or
a timeout. Output is a class that drives the retry policy (`edgecap.engine.policy`) and
one line for humans that says what happened and what to do. Codes moved in 2026 (every
in-session error was 3005 until 2026-02-25, the concurrency limit was 1008), so the reason
prefix is consulted before the code.

| class | examples | retry |
|---|---|---|
| transient | 1006, 1011, 1013, 3005, network errors, timeouts, HTTP 5xx | at once, then backoff |
| throttled | 3009, HTTP 429 | longer backoff |
| session_over | 3008, 1000 after Terminate, inactivity | a new session at once |
| auth | 1008, HTTP 401/403 (server or token service) | re-mint once, then slowly |
| client_bug | 3006, 3007, 1009 | backoff, reported loudly |
| config | 4001 and other v2-era codes, HTTP 404, a non-token answer | long cool-down |
"""

from __future__ import annotations

from edgecap.providers.failures import Classified, ErrorClass, classify_network

_V3 = "wss://streaming.assemblyai.com/v3/ws"
_AUTH_TODO = (
    "if it persists, the AssemblyAI account behind the token source cannot stream "
    "(balance, disabled key) or streaming.url does not match the tokens: ask the "
    "token-service admin / check auth.*"
)
_BUG_TODO = "this is an edgecap bug, please report it with the log"


def classify_close(
    code: int | None, reason: str = "", *, after_terminate: bool = False
) -> Classified:
    """A WebSocket close as seen by the client (code None or 1006: no close frame)."""
    r = reason.strip()
    low = r.lower()

    def c(cls: ErrorClass, hint: str) -> Classified:
        return Classified(cls, code, r, hint)

    # Reason prefixes first: they survived the 2026 renumbering.
    if low.startswith("unauthorized connection: too many concurrent sessions") or (
        "too many" in low and "session" in low
    ):
        return c(
            ErrorClass.THROTTLED,
            "AssemblyAI's new-session rate limit was hit; backing off (other devices on the "
            "same account count too)",
        )
    if low.startswith("session expired"):
        return c(
            ErrorClass.SESSION_OVER,
            "the session reached its maximum duration; a new session is opened with a fresh token",
        )
    if low.startswith("audio transmission rate exceeded"):
        return c(ErrorClass.CLIENT_BUG, f"audio was sent faster than real time; {_BUG_TODO}")
    if low.startswith("input duration violation"):
        return c(ErrorClass.CLIENT_BUG, f"an audio message was outside 50-1000 ms; {_BUG_TODO}")
    if low.startswith(("invalid message", "invalid json")):
        return c(ErrorClass.CLIENT_BUG, f"the server rejected a message edgecap sent; {_BUG_TODO}")
    if "inactiv" in low or "idle" in low:
        return c(ErrorClass.SESSION_OVER, "the server closed the session for inactivity")
    if low.startswith("session cancelled"):
        return c(ErrorClass.TRANSIENT, "the server cancelled the session (server error); retrying")
    if low.startswith("unauthorized connection") and code in (None, 1008, 3005):
        return c(
            ErrorClass.AUTH,
            "the streaming server rejected the token (missing, invalid, reused or expired); "
            f"edgecap re-mints once, then retries slowly; {_AUTH_TODO}",
        )

    if code == 1000:
        if after_terminate:
            return c(ErrorClass.SESSION_OVER, "session ended normally after Terminate")
        return c(ErrorClass.TRANSIENT, "the server closed the session normally without Terminate")
    if code is None or code == 1006:
        return c(ErrorClass.TRANSIENT, "connection lost without a close frame (network drop)")
    if code == 1008:
        return c(
            ErrorClass.AUTH,
            f"unauthorized: the token was rejected; edgecap re-mints once, then retries slowly; "
            f"{_AUTH_TODO}",
        )
    if code == 1009:
        return c(ErrorClass.CLIENT_BUG, f"a message exceeded 128 KB; {_BUG_TODO}")
    if code in (1001, 1011, 1012, 1013, 1014):
        return c(ErrorClass.TRANSIENT, "temporary server condition; retrying")
    if code == 3005:
        return c(ErrorClass.TRANSIENT, "the server cancelled the session (server error); retrying")
    if code == 3006:
        return c(ErrorClass.CLIENT_BUG, f"the server rejected a message edgecap sent; {_BUG_TODO}")
    if code == 3007:
        return c(
            ErrorClass.CLIENT_BUG,
            f"audio pacing or chunk size violated the API limits; {_BUG_TODO}",
        )
    if code == 3008:
        return c(ErrorClass.SESSION_OVER, "maximum session duration reached; rotating")
    if code == 3009:
        return c(ErrorClass.THROTTLED, "too many new sessions; backing off")
    if code == 4001 or low.startswith("not authorized"):
        return c(
            ErrorClass.CONFIG,
            "'Not authorized' (4001) is a legacy v2 realtime answer: streaming.url points at a "
            f"v2-era endpoint or proxy; use {_V3} with a v3 token",
        )
    if code is not None and 4000 <= code < 4200:
        return c(ErrorClass.CONFIG, f"a v2-era close code: streaming.url must be {_V3}")
    return c(ErrorClass.TRANSIENT, "unexpected close; retrying with backoff")


def classify_http_status(status: int, *, where: str = "streaming server") -> Classified:
    """An HTTP status: at the WebSocket upgrade, or from the token source."""
    if status in (401, 403):
        hint = (
            f"the {where} refused the credentials (HTTP {status}); edgecap re-mints once, then "
            "retries slowly; check the token source and its credential"
        )
        return Classified(ErrorClass.AUTH, status, "", hint)
    if status == 429:
        return Classified(
            ErrorClass.THROTTLED, status, "", f"the {where} is rate limiting; backing off"
        )
    if status == 404:
        return Classified(
            ErrorClass.CONFIG,
            status,
            "",
            f"the {where} has no such endpoint (HTTP 404); check the URL",
        )
    if status >= 500:
        return Classified(
            ErrorClass.TRANSIENT, status, "", f"the {where} failed (HTTP {status}); retrying"
        )
    return Classified(ErrorClass.CLIENT_BUG, status, "", f"the {where} answered HTTP {status}")


def classify_token_error(status: int | None, kind: str, message: str) -> Classified:
    """A failed token request. `message` is the token client's one-line explanation.

    `kind` is "http" (with `status`), "network", "timeout" or "malformed".
    """
    if kind == "http" and status is not None:
        cls = classify_http_status(status, where="token source").error_class
        return Classified(cls, status, "", message)
    if kind == "malformed":
        return Classified(ErrorClass.CONFIG, status, "", message)
    return Classified(ErrorClass.TRANSIENT, None, "", message)


__all__ = ["classify_close", "classify_http_status", "classify_network", "classify_token_error"]
