"""What to do after a session failed or ended (no I/O; time and randomness are injected).

The controller reports every session that reached `Begin` (`session_began`,
`session_ended`) and asks for a `Decision` after each failure (`next`). The decision says
how long to wait, which state to report and whether the spare token must be thrown away.

- transient: the first retry after a healthy period is immediate, later ones back off
  exponentially with jitter up to `max_seconds`;
- throttled (429, 3009): the same, starting at `throttled_initial_seconds`;
- session over (3008, inactivity): a new session at once; not a failure;
- auth (1008, 401/403): re-mint once at once; after that, retry every `auth_retry_seconds`
  (doubling up to `cooldown_seconds`) and report `auth_failed`;
- client bug (3006, 3007, 1009): backoff of at least `throttled_initial_seconds`, `degraded`;
- config (4001, 404, not a token endpoint): `cooldown_seconds`, `degraded`.

The retry budget (the consecutive-failure count) resets once a session stayed up for
`stable_seconds`, never on a transcript (silence is normal). A quick-failure breaker counts
sessions in a row that died within `quick_seconds` of `Begin` (an auth problem after the
handshake, a server that accepts and drops); at `quick_count` it switches to
`cooldown_seconds` and reports `auth_failed` or `degraded` until a session survives.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from edgecap.engine.states import EngineState
from edgecap.providers.failures import Classified, ErrorClass

RECONNECTING = EngineState.RECONNECTING
AUTH_FAILED = EngineState.AUTH_FAILED
DEGRADED = EngineState.DEGRADED


@dataclass(frozen=True, slots=True)
class RetrySettings:
    initial_seconds: float = 0.5
    max_seconds: float = 30.0
    throttled_initial_seconds: float = 5.0
    auth_retry_seconds: float = 60.0
    stable_seconds: float = 30.0
    quick_seconds: float = 10.0
    quick_count: int = 3
    cooldown_seconds: float = 300.0
    jitter: float = 0.2
    """Random extra wait, as a fraction of the delay (spreads a fleet's reconnects)."""


@dataclass(frozen=True, slots=True)
class Decision:
    delay: float
    state: EngineState
    """RECONNECTING, AUTH_FAILED or DEGRADED."""
    discard_spare: bool
    why: str
    """"immediate", "backoff", "re-mint", "auth slow-down", "cool-down", "session over"."""


class RetryPolicy:
    def __init__(self, settings: RetrySettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.failures = 0
        """Consecutive failures since the last stable session."""
        self.auth_failures = 0
        self.quick_deaths = 0
        """Sessions in a row that ended within `quick_seconds` of Begin."""
        self._began: float | None = None

    def session_began(self, now: float) -> None:
        self._began = now

    def session_ended(self, now: float, *, failed: bool) -> float:
        """A session that reached Begin ended (`failed`: not deliberately, not by expiry).
        Returns how long it lasted."""
        s = self.settings
        lasted = now - self._began if self._began is not None else 0.0
        self._began = None
        if lasted >= s.stable_seconds:
            self.failures = 0
            self.auth_failures = 0
        if failed and lasted < s.quick_seconds:
            self.quick_deaths += 1
        else:
            self.quick_deaths = 0
            if lasted >= s.quick_seconds:
                self.auth_failures = 0
        return lasted

    @property
    def breaker_open(self) -> bool:
        return self.quick_deaths >= self.settings.quick_count

    def next(self, classified: Classified) -> Decision:
        """The decision after a failed attempt or a session that ended with `classified`."""
        s = self.settings
        cls = classified.error_class
        if cls is ErrorClass.SESSION_OVER:
            return Decision(0.0, RECONNECTING, False, "session over")
        self.failures += 1
        auth = cls is ErrorClass.AUTH
        if auth:
            self.auth_failures += 1
        if self.breaker_open:
            state = AUTH_FAILED if auth else DEGRADED
            return Decision(self._jittered(s.cooldown_seconds), state, auth, "cool-down")
        if auth:
            if self.auth_failures == 1:
                return Decision(0.0, RECONNECTING, True, "re-mint")
            delay = min(s.cooldown_seconds, s.auth_retry_seconds * 2.0 ** (self.auth_failures - 2))
            return Decision(self._jittered(delay), AUTH_FAILED, True, "auth slow-down")
        if cls is ErrorClass.CONFIG:
            return Decision(self._jittered(s.cooldown_seconds), DEGRADED, False, "cool-down")
        if cls is ErrorClass.CLIENT_BUG:
            delay = max(s.throttled_initial_seconds, self._backoff(s.initial_seconds))
            return Decision(self._jittered(delay), DEGRADED, False, "backoff")
        if cls is ErrorClass.THROTTLED:
            cap = max(s.max_seconds, s.throttled_initial_seconds)
            delay = min(cap, s.throttled_initial_seconds * 2.0 ** (self.failures - 1))
            return Decision(self._jittered(delay), RECONNECTING, False, "backoff")
        if self.failures == 1:
            return Decision(0.0, RECONNECTING, False, "immediate")
        return Decision(
            self._jittered(self._backoff(s.initial_seconds)), RECONNECTING, False, "backoff"
        )

    def _backoff(self, initial: float) -> float:
        """initial x 2^(n-2) for the n-th consecutive failure (the first is immediate)."""
        return min(self.settings.max_seconds, initial * 2.0 ** max(0, self.failures - 2))

    def _jittered(self, delay: float) -> float:
        return delay + self._rng.uniform(0.0, delay * self.settings.jitter)
