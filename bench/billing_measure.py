"""What a billing-phase contender delivered (no I/O): words lost, and per sentence the time
from the end of its speech to its turn on MQTT."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from bench.billing_programs import Utterance
from bench.stats import percentile


@dataclass(frozen=True)
class Arrival:
    at_s: float  # when the turn arrived, from the start of the program
    session_id: str
    text: str


@dataclass
class Delivery:
    words: int = 0
    words_lost: int = 0
    latencies: list[float] = field(default_factory=list)
    """Per sentence delivered: its turn's arrival minus the end of its speech (s)."""
    new_session_latencies: list[float] = field(default_factory=list)
    """The same for sentences whose turn came from a session the sentence before did not use
    (a follow-up that paid a reconnect)."""

    @property
    def median_s(self) -> float | None:
        return percentile(self.latencies, 50) if self.latencies else None

    @property
    def p95_s(self) -> float | None:
        return percentile(self.latencies, 95) if self.latencies else None


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def delivered(utterances: tuple[Utterance, ...], arrivals: list[Arrival]) -> Delivery:
    """Align the words of what arrived with the words spoken, in order (a sentence split
    over two turns, or two sentences in one turn, still align); a sentence is delivered by
    the turn that carried its last word that arrived."""
    want: list[tuple[str, int]] = [(w, i) for i, u in enumerate(utterances) for w in _words(u.text)]
    got: list[tuple[str, int]] = [(w, k) for k, a in enumerate(arrivals) for w in _words(a.text)]
    matcher = difflib.SequenceMatcher(a=[w for w, _ in want], b=[w for w, _ in got], autojunk=False)
    carrier: dict[int, int] = {}  # utterance -> arrival holding its last matched word
    matched = 0
    for block in matcher.get_matching_blocks():
        for j in range(block.size):
            matched += 1
            carrier[want[block.a + j][1]] = got[block.b + j][1]
    out = Delivery(words=len(want), words_lost=len(want) - matched)
    previous_session: str | None = None
    for i, u in enumerate(utterances):
        k = carrier.get(i)
        if k is None:
            continue
        a = arrivals[k]
        latency = a.at_s - u.end_s
        out.latencies.append(latency)
        if previous_session is not None and a.session_id != previous_session:
            out.new_session_latencies.append(latency)
        previous_session = a.session_id
    return out
