"""Turn generation for the streaming simulator (sans-I/O).

A :class:`TurnGenerator` is fed the binary audio frames of one session and
returns the ``Turn`` messages (plain dicts) a Universal-Streaming server would
send. It does no recognition: each detected stretch of speech becomes the next
utterance of a :class:`Script` that is shared by all sessions of a simulator,
so a reconnecting client continues the script where the last session stopped.

Behaviour modelled on the v3 protocol notes (Universal-Streaming models):

* partial turns reveal lowercase, unpunctuated words progressively while
  speech continues; only the last word has ``word_is_final: false`` and
  ``transcript`` holds only the finalized words;
* end of turn: a simulated end-of-turn confidence is compared with the
  session's ``end_of_turn_confidence_threshold``; at or above it the turn ends
  after ``min_turn_silence`` ms of silence, below it after ``max_turn_silence``;
* the final is sent unformatted and, with ``format_turns``, once more
  formatted (same ``turn_order``, ``transcript`` = the script text exactly);
* word ``start``/``end`` are integer ms from the start of the session's audio,
  spread over the voiced part of the turn (trailing silence excluded).
"""

from __future__ import annotations

import random
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from edgecap.sim.segmenter import Encoding, EnergySegmenter, Window

DEFAULT_EOT_THRESHOLD = 0.4
DEFAULT_MIN_TURN_SILENCE_MS = 400
DEFAULT_MAX_TURN_SILENCE_MS = 1280
MIN_SPEECH_MS = 80.0

_NOT_WORD = re.compile(r"[^\w'\-]+")

Message = dict[str, Any]


class Script:
    """Utterance texts handed out in order; generated text once exhausted."""

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self._queue: deque[str] = deque(t for t in texts if t.strip())
        self.handed_out = 0

    def take(self) -> str:
        """The next utterance (``unscripted speech N`` when the script is used up)."""
        self.handed_out += 1
        if self._queue:
            return self._queue.popleft()
        return f"unscripted speech {self.handed_out}"

    def give_back(self, text: str) -> None:
        """Return an utterance that was never finalized; it is handed out next."""
        self._queue.appendleft(text)
        self.handed_out -= 1

    def extend(self, texts: Iterable[str]) -> None:
        """Append utterances to the end of the script."""
        self._queue.extend(t for t in texts if t.strip())

    @property
    def remaining(self) -> list[str]:
        """Utterances not yet handed out."""
        return list(self._queue)


@dataclass
class Endpointing:
    """The session's turn-detection settings (query parameters or updates)."""

    end_of_turn_confidence_threshold: float = DEFAULT_EOT_THRESHOLD
    min_turn_silence_ms: float = DEFAULT_MIN_TURN_SILENCE_MS
    max_turn_silence_ms: float = DEFAULT_MAX_TURN_SILENCE_MS


def split_words(text: str) -> list[tuple[str, str]]:
    """Pairs of (formatted word, lowercase unpunctuated word) for a text."""
    pairs: list[tuple[str, str]] = []
    for token in text.split():
        plain = _NOT_WORD.sub("", token).strip("'-").lower()
        if plain:
            pairs.append((token, plain))
    return pairs


def spread_words(weights: list[int], intervals: list[tuple[float, float]]) -> list[tuple[int, int]]:
    """Spread words (weighted by length) over voiced intervals; integer ms spans.

    The voiced time of all intervals is shared out in proportion to the
    weights; each word runs from the stream time where its share starts to
    where it ends, so every word lies inside the speech span.
    """
    total_voiced = sum(end - start for start, end in intervals)
    total_weight = sum(weights)
    if not intervals or total_weight <= 0:
        return []

    def at(voiced_ms: float, *, starting: bool) -> float:
        # A word starting exactly where an interval ends starts in the next one.
        for start, end in intervals:
            length = end - start
            if voiced_ms < length or (voiced_ms == length and not starting):
                return start + voiced_ms
            voiced_ms -= length
        return intervals[-1][1]

    spans: list[tuple[int, int]] = []
    acc = 0
    for weight in weights:
        first = at(total_voiced * acc / total_weight, starting=True)
        acc += weight
        last = at(total_voiced * acc / total_weight, starting=False)
        start_ms = round(first)
        spans.append((start_ms, max(start_ms, round(last))))
    return spans


@dataclass
class _Turn:
    start_ms: float
    intervals: list[list[float]] = field(default_factory=list)
    voiced_ms: float = 0.0
    text: str | None = None
    words: list[tuple[str, str]] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    revealed: int = 0

    @property
    def last_voiced_ms(self) -> float:
        return self.intervals[-1][1] if self.intervals else self.start_ms


class TurnGenerator:
    """Per-session turn state machine: audio in, ``Turn`` message dicts out."""

    def __init__(
        self,
        script: Script,
        *,
        sample_rate: int,
        encoding: Encoding = "pcm_s16le",
        format_turns: bool = False,
        endpointing: Endpointing | None = None,
        eot_confidence: float = 0.6,
        threshold_dbfs: float = -40.0,
        ms_per_word: float = 320.0,
        hangover_ms: float = 150.0,
        rng: random.Random | None = None,
    ) -> None:
        self.script = script
        self.format_turns = format_turns
        self.endpointing = endpointing or Endpointing()
        self.eot_confidence = eot_confidence
        self.ms_per_word = ms_per_word
        self.hangover_ms = hangover_ms
        self.next_turn_order = 0
        self._segmenter = EnergySegmenter(sample_rate, encoding, threshold_dbfs)
        self._rng = rng or random.Random(0)
        self._turn: _Turn | None = None

    @property
    def position_ms(self) -> float:
        """Duration of audio fed so far (the stream offset of the next frame)."""
        return self._segmenter.position_ms

    @property
    def in_turn(self) -> bool:
        """True while speech has been detected and the turn is not final."""
        return self._turn is not None

    def required_silence_ms(self) -> float:
        """Silence that ends the current turn under the current settings."""
        cfg = self.endpointing
        if self.eot_confidence >= cfg.end_of_turn_confidence_threshold:
            return cfg.min_turn_silence_ms
        return cfg.max_turn_silence_ms

    def feed(self, audio: bytes) -> list[Message]:
        """Add one audio frame; return the Turn messages it causes."""
        out: list[Message] = []
        for window in self._segmenter.feed(audio):
            out.extend(self._on_window(window))
        return out

    def force_endpoint(self) -> list[Message]:
        """Finalize the current turn now (``ForceEndpoint`` or ``Terminate``)."""
        turn = self._turn
        if turn is None:
            return []
        self._turn = None
        if turn.voiced_ms < MIN_SPEECH_MS:
            self._release(turn)
            return []
        return self._finals(turn)

    def abandon(self) -> None:
        """The session ended mid-turn: give its utterance back to the script."""
        if self._turn is not None:
            self._release(self._turn)
            self._turn = None

    def _on_window(self, window: Window) -> list[Message]:
        turn = self._turn
        if window.voiced:
            if turn is None:
                turn = self._turn = _Turn(start_ms=window.start_ms)
            if turn.intervals and window.start_ms - turn.intervals[-1][1] <= self.hangover_ms:
                turn.intervals[-1][1] = window.end_ms
            else:
                turn.intervals.append([window.start_ms, window.end_ms])
            turn.voiced_ms += window.end_ms - window.start_ms
            return self._partial(turn)
        if turn is None:
            return []
        if window.end_ms - turn.last_voiced_ms >= self.required_silence_ms():
            return self.force_endpoint()
        return []

    def _assign_text(self, turn: _Turn) -> None:
        if turn.text is None:
            turn.text = self.script.take()
            turn.words = split_words(turn.text) or [(turn.text, turn.text.lower())]
            turn.confidences = [round(self._rng.uniform(0.9, 0.99), 6) for _ in turn.words]

    def _release(self, turn: _Turn) -> None:
        if turn.text is not None:
            self.script.give_back(turn.text)

    def _partial(self, turn: _Turn) -> list[Message]:
        span = turn.last_voiced_ms - turn.start_ms
        if span < self.ms_per_word:
            return []
        self._assign_text(turn)
        count = min(len(turn.words) - 1, int(span // self.ms_per_word))
        if count <= turn.revealed:
            return []
        turn.revealed = count
        plain = [p for _, p in turn.words[:count]]
        spans = spread_words([len(w) for w in plain], self._intervals(turn))
        words = [
            _word(text, span_ms, conf, final=i < count - 1)
            for i, (text, span_ms, conf) in enumerate(
                zip(plain, spans, turn.confidences, strict=False)
            )
        ]
        return [
            _turn_message(
                self.next_turn_order,
                words,
                end_of_turn=False,
                formatted=False,
                transcript=" ".join(plain[:-1]),
                eot_confidence=round(min(0.3, 0.04 * count), 6),
                utterance="",
            )
        ]

    def _finals(self, turn: _Turn) -> list[Message]:
        self._assign_text(turn)
        assert turn.text is not None
        plain = [p for _, p in turn.words]
        spans = spread_words([len(w) for w in plain], self._intervals(turn))
        order = self.next_turn_order
        self.next_turn_order += 1
        eot = round(self.eot_confidence, 6)
        out = [
            _turn_message(
                order,
                [
                    _word(p, s, c, final=True)
                    for p, s, c in zip(plain, spans, turn.confidences, strict=True)
                ],
                end_of_turn=True,
                formatted=False,
                transcript=" ".join(plain),
                eot_confidence=eot,
                utterance=turn.text,
            )
        ]
        if self.format_turns:
            formatted = [f for f, _ in turn.words]
            out.append(
                _turn_message(
                    order,
                    [
                        _word(f, s, c, final=True)
                        for f, s, c in zip(formatted, spans, turn.confidences, strict=True)
                    ],
                    end_of_turn=True,
                    formatted=True,
                    transcript=turn.text,
                    eot_confidence=eot,
                    utterance=turn.text,
                )
            )
        return out

    @staticmethod
    def _intervals(turn: _Turn) -> list[tuple[float, float]]:
        return [(start, end) for start, end in turn.intervals]


def _word(text: str, span: tuple[int, int], confidence: float, *, final: bool) -> Message:
    return {
        "start": span[0],
        "end": span[1],
        "text": text,
        "confidence": confidence,
        "word_is_final": final,
    }


def _turn_message(
    order: int,
    words: list[Message],
    *,
    end_of_turn: bool,
    formatted: bool,
    transcript: str,
    eot_confidence: float,
    utterance: str,
) -> Message:
    return {
        "type": "Turn",
        "turn_order": order,
        "turn_is_formatted": formatted,
        "end_of_turn": end_of_turn,
        "transcript": transcript,
        "end_of_turn_confidence": eot_confidence,
        "words": words,
        "utterance": utterance,
    }
