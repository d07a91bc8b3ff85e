"""The simulator's sans-I/O turn generator, fed synthetic and synthetic-speech PCM."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from edgecap.sim.turns import Endpointing, Script, TurnGenerator, split_words
from tests.harness import SpeechFixture, silence, tone
from tests.sim_helpers import burst, frames

pytestmark = pytest.mark.unit

Message = dict[str, Any]


def feed(gen: TurnGenerator, pcm: bytes, frame_bytes: int = 1600) -> list[tuple[float, Message]]:
    """Feed 50 ms frames; each message with the stream position when it came out."""
    out: list[tuple[float, Message]] = []
    for frame in frames(pcm, frame_bytes):
        out.extend((gen.position_ms, message) for message in gen.feed(frame))
    return out


def finals(timed: list[tuple[float, Message]]) -> list[Message]:
    return [m for _, m in timed if m["end_of_turn"]]


def partials(timed: list[tuple[float, Message]]) -> list[Message]:
    return [m for _, m in timed if not m["end_of_turn"]]


def make(script: Script | list[str], **kwargs: Any) -> TurnGenerator:
    if isinstance(script, list):
        script = Script(script)
    return TurnGenerator(script, sample_rate=16000, **kwargs)


def test_partials_grow_then_unformatted_and_formatted_finals() -> None:
    text = "Hello, Dr. Smith! Is it 5 o'clock?"
    gen = make([text], format_turns=True)

    timed = feed(gen, burst(2.2, 0.8))

    growing = partials(timed)
    assert len(growing) >= 3
    counts = [len(m["words"]) for m in growing]
    assert counts == sorted(set(counts)), "each partial reveals more words"
    assert max(counts) < len(split_words(text)), "never the full count before the end"
    for message in growing:
        assert (message["turn_is_formatted"], message["utterance"]) == (False, "")
        assert [w["word_is_final"] for w in message["words"]][-1] is False
        assert all(w["word_is_final"] for w in message["words"][:-1])
        assert message["transcript"] == " ".join(w["text"] for w in message["words"][:-1])
    unformatted, formatted = finals(timed)
    assert unformatted["turn_order"] == formatted["turn_order"] == 0
    assert unformatted["turn_is_formatted"] is False
    assert unformatted["transcript"] == "hello dr smith is it 5 o'clock"
    assert formatted["turn_is_formatted"] is True
    assert formatted["transcript"] == text
    assert [w["text"] for w in formatted["words"]] == text.split()
    assert unformatted["utterance"] == formatted["utterance"] == text
    assert all(w["word_is_final"] for w in formatted["words"] + unformatted["words"])
    required = {"type", "turn_order", "turn_is_formatted", "end_of_turn", "transcript"}
    assert required | {"end_of_turn_confidence", "words"} <= formatted.keys()


def test_long_speech_never_reveals_every_word_before_the_end() -> None:
    gen = make(["three short words"])
    timed = feed(gen, burst(3.0, 1.0))  # long enough for ~9 words at the reveal pace
    assert max(len(m["words"]) for m in partials(timed)) == 2
    assert [len(m["words"]) for m in finals(timed)] == [3]


def test_without_format_turns_a_single_unformatted_final() -> None:
    gen = make(["Good morning."])
    assert [(m["transcript"], m["turn_is_formatted"]) for m in finals(feed(gen, burst(1, 1)))] == [
        ("good morning", False)
    ]


def test_script_continues_across_sessions_then_runs_out() -> None:
    script = Script(["first line", "second line", "third line"])
    first_session = make(script, format_turns=True)
    timed = feed(first_session, burst(0.8, 0.6) + burst(0.8, 0.6))
    formatted = [m for m in finals(timed) if m["turn_is_formatted"]]
    assert [(m["turn_order"], m["transcript"]) for m in formatted] == [
        (0, "first line"),
        (1, "second line"),
    ]

    reconnected = make(script, format_turns=True)
    timed = feed(reconnected, burst(0.8, 0.6) + burst(0.8, 0.6))
    formatted = [m for m in finals(timed) if m["turn_is_formatted"]]
    assert [(m["turn_order"], m["transcript"]) for m in formatted] == [
        (0, "third line"),
        (1, "unscripted speech 4"),
    ]


def final_delay_after_speech(gen: TurnGenerator, speech_s: float) -> float:
    """Silence (ms) that had been fed when the final came out."""
    timed = feed(gen, tone(speech_s, 300, amplitude=0.3) + silence(3.0))
    [(position, _)] = [(p, m) for p, m in timed if m["end_of_turn"]]
    return position - speech_s * 1000


def test_confident_turn_ends_after_min_turn_silence() -> None:
    settings = Endpointing(0.4, min_turn_silence_ms=300, max_turn_silence_ms=1500)
    gen = make(["x y z"], endpointing=settings, eot_confidence=0.6)
    assert 300 <= final_delay_after_speech(gen, 1.0) <= 350


def test_unconfident_turn_waits_for_max_turn_silence() -> None:
    settings = Endpointing(0.9, min_turn_silence_ms=300, max_turn_silence_ms=1500)
    gen = make(["x y z"], endpointing=settings, eot_confidence=0.6)
    assert 1500 <= final_delay_after_speech(gen, 1.0) <= 1550


def test_updated_endpointing_applies_to_the_running_turn() -> None:
    gen = make(["x y z"], endpointing=Endpointing(0.4, 2000, 3000))
    assert finals(feed(gen, burst(1.0, 0.6))) == []
    gen.endpointing.min_turn_silence_ms = 200
    assert len(finals(feed(gen, silence(0.1)))) == 1


def test_short_pauses_between_words_do_not_split_a_turn() -> None:
    gen = make(["one turn only", "a second turn"])
    pcm = burst(0.5, 0.2) + burst(0.5, 0.25) + burst(0.5, 1.0)
    assert [m["transcript"] for m in finals(feed(gen, pcm))] == ["one turn only"]


def test_word_times_lie_inside_the_speech_span() -> None:
    gen = make(["alpha beta gamma delta epsilon"], format_turns=True)
    pcm = silence(0.5) + burst(1.2, 0.1) + burst(0.8, 1.0)  # speech 500..2600 ms

    for final in finals(feed(gen, pcm)):
        spans = [(w["start"], w["end"]) for w in final["words"]]
        assert all(isinstance(v, int) for span in spans for v in span)
        assert spans[0][0] >= 500
        assert spans[-1][1] <= 2600
        assert spans[-1][1] >= 2550, "the words cover the speech up to its end"
        assert all(s <= e for s, e in spans)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
        assert all(0.9 <= w["confidence"] <= 0.99 for w in final["words"])
        assert final["end_of_turn_confidence"] == 0.6


@pytest.mark.parametrize(
    ("gap_s", "expected"),
    [(0.1, [(0, 550), (550, 1100)]), (0.3, [(0, 500), (800, 1300)])],
    ids=["short-gap-is-speech", "longer-gap-is-silence"],
)
def test_pauses_beyond_the_hangover_are_left_out_of_word_times(
    gap_s: float, expected: list[tuple[int, int]]
) -> None:
    gen = make(["aaaa bbbb"])
    pcm = burst(0.5, gap_s) + burst(0.5, 1.0)

    [final] = finals(feed(gen, pcm))

    assert [(w["start"], w["end"]) for w in final["words"]] == expected


def test_force_endpoint_finalizes_at_once_and_only_once() -> None:
    gen = make(["right now"], format_turns=True)
    assert finals(feed(gen, tone(0.6, 300, amplitude=0.3))) == []

    forced = gen.force_endpoint()

    assert [(m["turn_order"], m["turn_is_formatted"]) for m in forced] == [(0, False), (0, True)]
    assert gen.force_endpoint() == []
    assert gen.in_turn is False


def test_abandoned_turn_gives_its_text_back_to_the_script() -> None:
    script = Script(["interrupted line", "next line"])
    dropped = make(script)
    assert partials(feed(dropped, tone(1.0, 300, amplitude=0.3)))  # text was handed out
    dropped.abandon()

    retry = make(script, format_turns=True)
    texts = [
        m["transcript"] for m in finals(feed(retry, burst(1.0, 1.0))) if m["turn_is_formatted"]
    ]
    assert texts == ["interrupted line"]


def test_quiet_noise_and_short_clicks_make_no_turn() -> None:
    script = Script(["never used"])
    gen = make(script)
    quiet = tone(2.0, 300, amplitude=0.003)  # about -53 dBFS
    click = tone(0.03, 300, amplitude=0.5) + silence(2.0)

    assert feed(gen, quiet + click) == []
    assert script.remaining == ["never used"]


def test_mulaw_audio_is_decoded() -> None:
    loud = bytes([0x00, 0x80]) * 4000  # +-32124 square wave, 1 s at 8 kHz
    quiet = b"\xff" * 8000  # mu-law zero, 1 s
    gen = TurnGenerator(Script(["mu law works"]), sample_rate=8000, encoding="pcm_mulaw")

    [final] = finals(feed(gen, quiet + loud + quiet, frame_bytes=400))

    assert final["transcript"] == "mu law works"
    assert final["words"][0]["start"] >= 1000
    assert final["words"][-1]["end"] <= 2000


def test_synthetic_speech_fixtures_give_one_turn_each(
    speech_fixtures: list[SpeechFixture],
) -> None:
    if not speech_fixtures:
        pytest.skip("no speech fixtures")
    gen = make([f.text for f in speech_fixtures], format_turns=True)
    offset = 0.0
    for fixture in speech_fixtures:
        timed = feed(gen, fixture.pcm + silence(1.0))
        [formatted] = [m for m in finals(timed) if m["turn_is_formatted"]]
        assert formatted["transcript"] == fixture.text
        speech_start = offset + fixture.leading_silence_ms
        speech_end = offset + fixture.duration_ms - fixture.trailing_silence_ms
        assert formatted["words"][0]["start"] >= speech_start - 10
        assert formatted["words"][-1]["end"] <= speech_end + 10
        offset = gen.position_ms
