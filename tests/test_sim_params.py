"""The simulator's sans-I/O parts for "AssemblyAI v3, complete": connection parameters and
UpdateConfiguration, the proxy credential check, speaker labels with their revision, and
the language fields."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgecap.sim import FaultPlan, StreamingSettings
from edgecap.sim.credentials import proxy_auth
from edgecap.sim.params import apply_update, begin_configuration, parse_session_params
from edgecap.sim.protocol import SessionError
from edgecap.sim.settings import turn_extras
from edgecap.sim.speakers import TurnAnnotator, TurnExtras

pytestmark = pytest.mark.unit


def turn(order: int, *, final: bool, formatted: bool = False) -> dict[str, Any]:
    texts = ["Hello", "there."] if formatted else ["hello", "there"]
    words = [
        {"start": 100, "end": 300, "text": texts[0], "confidence": 0.9, "word_is_final": True},
        {"start": 300, "end": 500, "text": texts[1], "confidence": 0.9, "word_is_final": final},
    ]
    return {
        "type": "Turn",
        "turn_order": order,
        "turn_is_formatted": formatted,
        "end_of_turn": final,
        "transcript": "hello there" if final else "hello",
        "end_of_turn_confidence": 0.5,
        "words": words,
        "utterance": "",
    }


def test_parameters_default_to_not_given() -> None:
    params = parse_session_params({"sample_rate": "16000"})
    assert (params.keyterms, params.prompt, params.mode, params.speaker_labels) == (
        [],
        None,
        None,
        None,
    )
    assert begin_configuration(params, "universal-3-6-pro", "2025-05-12") == {
        "model": "universal-3-6-pro",
        "mode": None,
        "api_version": "2025-05-12",
        "speaker_labels": None,
        "redact_pii": None,
        "filter_profanity": None,
        "domain": None,
        "voice_focus": None,
        "simulator": True,
    }


def test_update_replaces_clears_and_leaves_connect_only_fields_alone() -> None:
    params = parse_session_params(
        {
            "sample_rate": "16000",
            "keyterms_prompt": '["a", "b"]',
            "prompt": "p",
            "language_codes": '["en"]',
            "speaker_labels": "true",
        }
    )
    apply_update(params, {"keyterms_prompt": '["c"]', "language_codes": []})
    assert (params.keyterms, params.language_codes) == (["c"], [])
    apply_update(params, {"keyterms_prompt": [], "prompt": "", "speaker_labels": False})
    assert (params.keyterms, params.prompt, params.speaker_labels) == ([], None, True)
    apply_update(params, {"format_turns": True, "min_end_of_turn_silence_when_confident": 250})
    assert (params.format_turns, params.endpointing.min_turn_silence_ms) == (True, 250)


@pytest.mark.parametrize(
    "update",
    [
        {"keyterms_prompt": "not json"},
        {"keyterms_prompt": [1, 2]},
        {"prompt": 7},
        {"mode": "turbo"},
        {"vad_threshold": True},
        {"max_turn_silence": 20000},
    ],
)
def test_bad_update_fields_are_3006(update: dict[str, Any]) -> None:
    params = parse_session_params({"sample_rate": "16000"})
    with pytest.raises(SessionError) as excinfo:
        apply_update(params, update)
    assert excinfo.value.code == 3006


def test_exactly_100_keyterms_are_allowed() -> None:
    query = {"sample_rate": "16000", "keyterms_prompt": json.dumps(["t"] * 100)}
    assert len(parse_session_params(query).keyterms) == 100


@pytest.mark.parametrize(
    ("authorization", "offered", "expected"),
    [
        ("Bearer cred", [], ("proxy_header", None)),
        ("bearer  cred ", [], ("proxy_header", None)),
        (None, ["x", "keypool-token.cred"], ("proxy_subprotocol", "keypool-token.cred")),
        ("Bearer wrong", ["keypool-token.cred"], ("proxy_subprotocol", "keypool-token.cred")),
        ("cred", [], None),
        ("Bearer cre", [], None),
        (None, ["keypool-token.credx", "cred"], None),
        (None, [], None),
    ],
)
def test_proxy_auth(
    authorization: str | None, offered: list[str], expected: tuple[str, str | None] | None
) -> None:
    assert proxy_auth("cred", authorization, offered) == expected


def test_proxy_refusal_bodies_use_keypool_texts() -> None:
    plan = FaultPlan.handshake(403)
    assert plan.handshake_body(proxy=True)["error"] == "this team token may not use assemblyai"
    assert plan.handshake_body()["error"] == "Forbidden"
    assert FaultPlan.handshake(418).handshake_body(proxy=True)["error"] == "Simulated failure"


def test_annotator_labels_turns_and_final_words() -> None:
    annotator = TurnAnnotator(TurnExtras(speaker_labels=True, speakers=("A", "B", "C")))
    partial = annotator.annotate(turn(0, final=False))
    assert partial["speaker_label"] == "A"
    assert ["speaker" in w for w in partial["words"]] == [True, False]
    assert [annotator.annotate(turn(i, final=True))["speaker_label"] for i in range(4)] == [
        "A",
        "B",
        "C",
        "A",
    ]
    assert annotator.annotate({"type": "Begin"}) == {"type": "Begin"}


def test_max_speakers_merges_extra_speakers_into_the_first() -> None:
    extras = TurnExtras(speaker_labels=True, speakers=("PENDING", "A", "B", "C"), max_speakers=2)
    annotator = TurnAnnotator(extras)
    assert [annotator.label(i) for i in range(4)] == ["PENDING", "A", "B", "A"]


def test_revision_lists_only_changed_turns_with_their_last_final() -> None:
    annotator = TurnAnnotator(TurnExtras(speaker_labels=True, speakers=("A", "B")))
    for order in range(3):
        annotator.annotate(turn(order, final=True))
        annotator.annotate(turn(order, final=True, formatted=True))
    revision = annotator.revision(("A",))  # turn 1 changes, 0 and 2 stay
    assert revision is not None
    [entry] = revision["revisions"]
    assert (entry["turn_order"], entry["speaker_label"]) == (1, "A")
    assert [(w["text"], w["start"], w["end"], w["speaker"]) for w in entry["words"]] == [
        ("Hello", 100, 300, "A"),
        ("there.", 300, 500, "A"),
    ]
    assert annotator.revision(("A", "B")) is None  # nothing changed
    assert annotator.revision(None) is None
    off = TurnAnnotator(TurnExtras(speaker_labels=False))
    off.annotate(turn(0, final=True))
    assert off.revision(("B",)) is None


def test_language_of_final_turns() -> None:
    settings = StreamingSettings()
    params = parse_session_params({"sample_rate": "16000", "language_detection": "true"})
    assert turn_extras(params, settings).language == "en"
    params.language_code = "es"
    assert turn_extras(params, settings).language == "es"
    params.language_codes = ["pt", "en"]
    assert turn_extras(params, settings).language == "pt"
    settings.detected_language = "ja"
    assert turn_extras(params, settings).language == "ja"
    params.language_detection = False
    assert turn_extras(params, settings).language is None

    annotator = TurnAnnotator(TurnExtras(language="pt", language_confidence=0.8))
    final = annotator.annotate(turn(0, final=True))
    assert (final["language_code"], final["language_confidence"]) == ("pt", 0.8)
    assert "speaker_label" not in final
    assert "language_code" not in annotator.annotate(turn(1, final=False))
