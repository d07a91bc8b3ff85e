"""The input audio buffer of one simulated transcription session (sans-I/O).

Audio is cut into 10 ms windows by :class:`~edgecap.sim.segmenter.EnergySegmenter`; a
stretch of voiced windows of at least ``min_speech_ms`` is an *utterance* and takes the
next line of the shared :class:`~edgecap.sim.turns.Script` (so the i-th detected utterance
gets the i-th script text, across sessions: an utterance whose item never completes gives
its text back).

* With ``server_vad``: the utterance start is :class:`SpeechStarted` (``audio_start_ms``
  includes ``prefix_padding_ms``); ``silence_duration_ms`` of silence after it is
  :class:`SpeechStopped` (``audio_end_ms`` includes that silence) and a :class:`Commit`
  of the item.
* Without turn detection nothing is committed until :meth:`InputBuffer.commit`; the item
  then holds every utterance since the last commit (their texts joined by a space; none:
  an empty transcript). Less than 100 ms buffered is the real server's
  ``input_audio_buffer_commit_empty`` error.
* ``live_deltas`` (the realtime-only models): while an utterance goes on its words come as
  :class:`LiveDelta` s (one word per ``ms_per_word`` of speech, the last word held back);
  the rest come with the commit. Otherwise every delta comes with the commit.

Times are ms from the start of the audio the buffer received in this session.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from edgecap.sim.openai.config import TurnDetection
from edgecap.sim.openai.protocol import MIN_COMMIT_MS, empty_commit
from edgecap.sim.segmenter import Encoding, EnergySegmenter, Window
from edgecap.sim.turns import Script

CommitBy = Literal["server_vad", "client"]
_WORD = re.compile(r"\S+")
_CHUNK = re.compile(r"\s*\S+")


@dataclass(frozen=True)
class SpeechStarted:
    item_id: str
    audio_start_ms: int


@dataclass(frozen=True)
class SpeechStopped:
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True)
class LiveDelta:
    item_id: str
    delta: str


@dataclass(frozen=True)
class Commit:
    """A committed item: its texts (one per utterance) and the deltas still to send."""

    item_id: str
    previous_item_id: str | None
    audio_start_ms: int
    audio_end_ms: int
    texts: tuple[str, ...]
    deltas: tuple[str, ...]
    by: CommitBy

    @property
    def transcript(self) -> str:
        return " ".join(self.texts)


Happening = SpeechStarted | SpeechStopped | LiveDelta | Commit


@dataclass
class _Utterance:
    start_ms: float
    last_voiced_ms: float
    voiced_ms: float = 0.0
    text: str | None = None  # set once announced


@dataclass
class _Item:
    item_id: str
    audio_start_ms: float
    texts: list[str] = field(default_factory=list)
    sent_chars: int = 0  # transcript characters already sent as live deltas


def deltas_of(text: str) -> list[str]:
    """``text`` in word-sized pieces whose concatenation is exactly ``text``."""
    chunks = _CHUNK.findall(text)
    rest = text[len("".join(chunks)) :]
    if rest:
        chunks.append(rest)
    return chunks


def release(script: Script, texts: Sequence[str]) -> None:
    """Give ``texts`` back to the script, in order (they are handed out next)."""
    for text in reversed(texts):
        script.give_back(text)


class InputBuffer:
    """Audio in, :data:`Happening` s out; one per session (rebuilt on a format change)."""

    def __init__(
        self,
        script: Script,
        new_item_id: Callable[[], str],
        *,
        sample_rate: int,
        encoding: Encoding = "pcm_s16le",
        vad: TurnDetection | None,
        live_deltas: bool,
        threshold_dbfs: float = -40.0,
        ms_per_word: float = 320.0,
        min_speech_ms: float = 80.0,
        manual_gap_ms: float = 500.0,
    ) -> None:
        self.script = script
        self.vad = vad  # may be changed by a session.update
        self.live_deltas = live_deltas
        self.ms_per_word = ms_per_word
        self.min_speech_ms = min_speech_ms
        self.manual_gap_ms = manual_gap_ms
        self.utterances_started = 0
        self.last_item_id: str | None = None
        self._new_item_id = new_item_id
        self._segmenter = EnergySegmenter(sample_rate, encoding, threshold_dbfs)
        self._buffer_start_ms = 0.0
        self._open: _Utterance | None = None
        self._item: _Item | None = None

    @property
    def position_ms(self) -> float:
        """Duration of all audio received."""
        return self._segmenter.position_ms

    @property
    def buffered_ms(self) -> float:
        """Audio received since the last commit or clear."""
        return self.position_ms - self._buffer_start_ms

    @property
    def in_speech(self) -> bool:
        """An announced utterance is going on."""
        return self._open is not None and self._open.text is not None

    def feed(self, audio: bytes) -> list[Happening]:
        """Add audio; return what it caused."""
        out: list[Happening] = []
        for window in self._segmenter.feed(audio):
            out.extend(self._on_window(window))
        return out

    def commit(self) -> Commit:
        """The client's ``input_audio_buffer.commit``; :class:`RealtimeError` when less than
        100 ms is buffered."""
        if self.buffered_ms < MIN_COMMIT_MS:
            raise empty_commit(self.buffered_ms)
        self._open = None  # an announced utterance is in the item already; a blip is dropped
        return self._commit(self.position_ms, "client")

    def clear(self) -> None:
        """The client's ``input_audio_buffer.clear``: the uncommitted audio is forgotten."""
        self.abandon()
        self._buffer_start_ms = self.position_ms

    def abandon(self) -> None:
        """The session is over (or the buffer cleared): uncommitted texts go back."""
        if self._item is not None:
            release(self.script, self._item.texts)
        self._item = None
        self._open = None

    def _on_window(self, window: Window) -> list[Happening]:
        speech = self._open
        if window.voiced:
            if speech is None:
                speech = self._open = _Utterance(window.start_ms, window.end_ms)
            speech.voiced_ms += window.end_ms - window.start_ms
            speech.last_voiced_ms = window.end_ms
            if speech.text is None:
                return self._announce(speech) if speech.voiced_ms >= self.min_speech_ms else []
            return self._live(speech)
        if speech is None:
            return []
        gap = self.vad.silence_duration_ms if self.vad is not None else self.manual_gap_ms
        if window.end_ms - speech.last_voiced_ms < gap:
            return []
        self._open = None
        if speech.text is None or self.vad is None:
            return []  # a blip; or, without VAD, the utterance waits in the item for a commit
        assert self._item is not None
        stopped = SpeechStopped(self._item.item_id, round(window.end_ms))
        return [stopped, self._commit(window.end_ms, "server_vad")]

    def _announce(self, speech: _Utterance) -> list[Happening]:
        padding = self.vad.prefix_padding_ms if self.vad is not None else 0
        start = max(self._buffer_start_ms, speech.start_ms - padding)
        item = self._item
        if item is None:
            item = self._item = _Item(self._new_item_id(), start)
        speech.text = self.script.take()
        item.texts.append(speech.text)
        self.utterances_started += 1
        out: list[Happening] = []
        if self.vad is not None:
            out.append(SpeechStarted(item.item_id, round(start)))
        return out + self._live(speech)

    def _live(self, speech: _Utterance) -> list[Happening]:
        item = self._item
        if not self.live_deltas or item is None or speech.text is None:
            return []
        words = list(_WORD.finditer(speech.text))
        shown = min(
            len(words) - 1, int((speech.last_voiced_ms - speech.start_ms) // self.ms_per_word)
        )
        before = " ".join(item.texts[:-1])
        if shown <= 0:
            return []
        target = (before + " " if before else "") + speech.text[: words[shown - 1].end()]
        if len(target) <= item.sent_chars:
            return []
        pieces = deltas_of(target[item.sent_chars :])
        item.sent_chars = len(target)
        return [LiveDelta(item.item_id, piece) for piece in pieces]

    def _commit(self, end_ms: float, by: CommitBy) -> Commit:
        item = self._item or _Item(self._new_item_id(), self._buffer_start_ms)
        start = item.audio_start_ms if by == "server_vad" else self._buffer_start_ms
        transcript = " ".join(item.texts)
        commit = Commit(
            item_id=item.item_id,
            previous_item_id=self.last_item_id,
            audio_start_ms=round(start),
            audio_end_ms=round(end_ms),
            texts=tuple(item.texts),
            deltas=tuple(deltas_of(transcript[item.sent_chars :])),
            by=by,
        )
        self.last_item_id = item.item_id
        self._item = None
        self._buffer_start_ms = end_ms
        return commit
