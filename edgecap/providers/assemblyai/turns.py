"""Which Turn messages are final, once per turn (no I/O).

A turn is final when `end_of_turn and (not format_turns or turn_is_formatted)`: with
`format_turns` the server sends an unformatted end-of-turn message first and the formatted
one after it, with the same `turn_order`. Each `turn_order` is released once; a message
of an earlier turn than the last one released is out of order (`check_order`).
"""

from __future__ import annotations

from edgecap.providers.assemblyai.messages import ProtocolError, Turn


class TurnAssembler:
    def __init__(self, format_turns: bool) -> None:
        self.format_turns = format_turns
        self._released: int = -1  # highest turn_order released so far
        self._open: Turn | None = None
        self.duplicates = 0

    @property
    def open_turn(self) -> Turn | None:
        """The latest partial of a turn not yet final (None between turns)."""
        return self._open

    def check_order(self, turn: Turn) -> None:
        """`ProtocolError` for a message of a turn older than the last one released (the
        server went backwards: a jump ahead before it, or a broken server). A repeat of the
        turn just released is a harmless duplicate (`feed` ignores it)."""
        if turn.turn_order < self._released:
            raise ProtocolError(
                f"Turn {turn.turn_order} arrived after turn {self._released} was final: "
                "turns out of order (ignored)"
            )

    def feed(self, turn: Turn) -> Turn | None:
        """Return the turn when this message makes it final, else None."""
        if turn.turn_order <= self._released:
            self.duplicates += 1
            return None
        final = turn.end_of_turn and (not self.format_turns or turn.turn_is_formatted)
        if not final:
            self._open = turn
            return None
        self._released = turn.turn_order
        self._open = None
        return turn

    def flush(self) -> Turn | None:
        """At the end of a session: the unfinished turn with the most text, if any.

        Used when a session ends without its turn being finalized (Terminate timed out,
        connection dropped); the caller decides whether to publish it.
        """
        turn, self._open = self._open, None
        return turn
