"""The billing phase's programs (no I/O but reading the speech fixtures): what a device hears,
as one PCM stream with the spans of its sentences.

- `commands`: isolated voice commands 30-60 s apart (someone talking to a device now and
  then): each pays its own session with a voice gate;
- `conversation`: sentences 1-5 s apart for two minutes (a dictation, a conversation):
  a short idle close reconnects between sentences, a long one keeps the session;
- `ten_percent`: the 10 %-speech program of earlier runs (bursts of sentences one second
  apart spread over the minutes).

Gaps are drawn from a seeded generator, so every run and every contender hears the same.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from edgecap.sim.microphone import silence
from tests.harness.audio import SpeechFixture, load_manifest

RATE_BYTES = 32000  # 16 kHz PCM16 mono: bytes per second


@dataclass(frozen=True)
class Utterance:
    text: str
    start_s: float  # first voiced sample, from the start of the program
    end_s: float  # last voiced sample

    @property
    def speech_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class BillingProgram:
    name: str
    description: str
    pcm: bytes
    utterances: tuple[Utterance, ...]
    bursts: int = 0
    lead_s: float = 0.0  # the silence before the first sentence

    @property
    def seconds(self) -> float:
        return len(self.pcm) / RATE_BYTES

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(u.text for u in self.utterances)

    @property
    def speech_s(self) -> float:
        return sum(u.speech_s for u in self.utterances)


class _Builder:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.at = 0.0
        self.utterances: list[Utterance] = []

    def quiet(self, seconds: float) -> None:
        chunk = silence(seconds)
        self.chunks.append(chunk)
        self.at += len(chunk) / RATE_BYTES

    def say(self, f: SpeechFixture) -> None:
        start = self.at + f.leading_silence_ms / 1000
        end = self.at + (f.duration_ms - f.trailing_silence_ms) / 1000
        self.utterances.append(Utterance(f.text, start, end))
        self.chunks.append(f.pcm)
        self.at += len(f.pcm) / RATE_BYTES

    def program(self, name: str, description: str, **kw: float) -> BillingProgram:
        return BillingProgram(
            name, description, b"".join(self.chunks), tuple(self.utterances), **kw
        )


def commands(count: int = 5, seed: int = 7) -> BillingProgram:
    """`count` voice commands 30-60 s apart, 3 s after the start, 8 s of quiet after."""
    rng = random.Random(seed)  # noqa: S311 - a repeatable program, not a secret
    fixtures = load_manifest()
    b = _Builder()
    b.quiet(3.0)
    for i in range(count):
        if i:
            b.quiet(rng.uniform(30.0, 60.0))
        b.say(fixtures[i % len(fixtures)])
    b.quiet(8.0)
    return b.program(
        "commands",
        f"{count} isolated commands 30-60 s apart",
        bursts=count,
        lead_s=3.0,
    )


def conversation(minutes: float = 2.0, seed: int = 11) -> BillingProgram:
    """Sentences 1-5 s apart for `minutes`, 3 s after the start, 8 s of quiet after."""
    rng = random.Random(seed)  # noqa: S311 - a repeatable program, not a secret
    fixtures = load_manifest()
    b = _Builder()
    b.quiet(3.0)
    i = 0
    while b.at < 3.0 + minutes * 60:
        if i:
            b.quiet(rng.uniform(1.0, 5.0))
        b.say(fixtures[i % len(fixtures)])
        i += 1
    b.quiet(8.0)
    return b.program(
        "conversation", f"sentences 1-5 s apart for {minutes:g} minutes", bursts=1, lead_s=3.0
    )


def ten_percent(minutes: float, burst_s: float = 15.0, pause_s: float = 1.0) -> BillingProgram:
    """`minutes` of audio with 10 % speech, in bursts of about `burst_s` of speech (sentences
    `pause_s` apart) spread evenly over it."""
    fixtures = load_manifest()
    total_s = minutes * 60
    bursts = max(1, round(total_s * 0.1 / burst_s))
    per_burst = total_s * 0.1 / bursts
    plan: list[list[SpeechFixture]] = []
    i = 0
    for _ in range(bursts):
        burst: list[SpeechFixture] = []
        said = 0.0
        while said < per_burst:
            f = fixtures[i % len(fixtures)]
            i += 1
            burst.append(f)
            said += (f.duration_ms - f.leading_silence_ms - f.trailing_silence_ms) / 1000
        plan.append(burst)
    spoken = sum(len(f.pcm) / RATE_BYTES + pause_s for burst in plan for f in burst)
    gap = max(0.0, total_s - spoken) / (bursts + 1)
    b = _Builder()
    for burst in plan:
        b.quiet(gap)
        for k, f in enumerate(burst):
            if k:
                b.quiet(pause_s)
            b.say(f)
    b.quiet(gap)
    return b.program(
        "10 % speech",
        f"{minutes:g} minutes, 10 % speech in {bursts} bursts of sentences {pause_s:g} s apart",
        bursts=bursts,
        lead_s=gap,
    )
