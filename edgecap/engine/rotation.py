"""When to end a session before its cap (no I/O).

AssemblyAI bills the time a session is open and ends it (3008) at the token's
`max_session_duration_seconds` or `Begin.expires_at`. edgecap ends each session itself
shortly before the earlier of `session.max_session_seconds` and `expires_at`, at a quiet
point so that no turn is cut in half by the `Terminate` (which finalizes whatever the
server heard), and only with the next session's token already in hand:

- the rotation window opens at `deadline - window`;
- inside it the session rotates right after a final turn arrived (the speaker paused), or
  after `silence_s` without any Turn message (nobody is speaking), provided no turn is open
  and a spare token is ready;
- at the deadline it rotates regardless (a turn may be split; it is logged).
"""

from __future__ import annotations

from dataclasses import dataclass

QUIET_AFTER_FINAL_S = 0.3
SILENCE_S = 2.0
WINDOW_MAX_S = 60.0
MARGIN_MAX_S = 5.0


@dataclass(frozen=True, slots=True)
class RotationPlan:
    began: float
    """Monotonic time of Begin."""
    deadline: float
    """Monotonic time at which the session is ended whatever is happening."""
    window_start: float
    """Monotonic time from which a quiet point ends the session."""
    cap_s: float
    """The effective session length limit in seconds (cap or expires_at)."""

    @classmethod
    def for_session(
        cls,
        began: float,
        max_session_s: float,
        *,
        expires_in_s: float | None = None,
        window_s: float | None = None,
    ) -> RotationPlan:
        """`expires_in_s`: `Begin.expires_at` minus the wall time at Begin, if known."""
        cap = max_session_s
        if expires_in_s is not None and 0 < expires_in_s < cap:
            cap = expires_in_s
        margin = min(MARGIN_MAX_S, 0.1 * cap)
        window = min(WINDOW_MAX_S, 0.5 * cap) if window_s is None else min(window_s, cap)
        deadline = began + cap - margin
        return cls(began, deadline, max(began, deadline - window), cap)

    def decide(
        self,
        now: float,
        *,
        turn_open: bool,
        last_final_at: float | None,
        last_turn_message_at: float | None,
        token_ready: bool,
    ) -> str | None:
        """Why the session should rotate now ("quiet", "silence", "deadline"), or None."""
        if now >= self.deadline:
            return "deadline"
        if now < self.window_start or turn_open or not token_ready:
            return None
        if last_final_at is not None and now - last_final_at <= QUIET_AFTER_FINAL_S:
            return "quiet"
        last = max(self.began, last_turn_message_at or self.began)
        if now - last >= SILENCE_S:
            return "silence"
        return None
