"""Speaker revisions of one session's published turns (no I/O).

With `speaker_labels` the server may send a `SpeakerRevision` (at the latest just before
`Termination`) that relabels turns it sent earlier. The session keeps what it published
(`published`) and turns the message into the turns to publish again (`apply`): the same
`id`, the new labels, `revision` one higher, in the order of the message. Turns that carry
no speaker label at all (speaker labels off) are not kept, so a session without speaker
labels holds nothing here.
"""

from __future__ import annotations

from edgecap.providers.turn import SpeakerRevision
from edgecap.turns.transcript import TranscriptTurn, revise_turn


def _labelled(turn: TranscriptTurn) -> bool:
    return turn.speaker is not None or any("speaker" in w for w in turn.words)


class SessionTurns:
    """The labelled turns published in one session, by `turn_order`."""

    def __init__(self) -> None:
        self._turns: dict[int, TranscriptTurn] = {}
        self.unmatched = 0
        """Revision entries for turns this session did not publish (or without labels)."""

    def __len__(self) -> int:
        return len(self._turns)

    def published(self, turn: TranscriptTurn) -> None:
        """`turn` was published (any revision): later revisions start from it."""
        if _labelled(turn):
            self._turns[turn.turn_order] = turn

    def apply(self, message: SpeakerRevision) -> list[TranscriptTurn]:
        """The turns `message` changes, revised, to be published (and remembered as
        published); entries that change nothing give nothing."""
        revised: list[TranscriptTurn] = []
        for entry in message.revisions:
            turn = self._turns.get(entry.turn_order)
            if turn is None:
                self.unmatched += 1
                continue
            new = revise_turn(turn, entry.speaker_label, entry.words)
            if new is not None:
                self._turns[entry.turn_order] = new
                revised.append(new)
        return revised


class RecentSessions:
    """The labelled turns of the last `keep` sessions (a rotated session's revision arrives
    while the next one already streams)."""

    def __init__(self, keep: int = 2) -> None:
        self._keep = keep
        self._sessions: dict[str, SessionTurns] = {}

    def _of(self, session_id: str) -> SessionTurns:
        turns = self._sessions.get(session_id)
        if turns is None:
            turns = self._sessions[session_id] = SessionTurns()
            while len(self._sessions) > self._keep:
                del self._sessions[next(iter(self._sessions))]
        return turns

    def published(self, turn: TranscriptTurn) -> None:
        self._of(turn.session_id).published(turn)

    def apply(self, session_id: str, message: SpeakerRevision) -> list[TranscriptTurn]:
        """The turns of `session_id` whose speakers `message` changes, revised."""
        return self._of(session_id).apply(message)
