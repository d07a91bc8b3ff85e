"""The simulator as "AssemblyAI v3, complete" needs it, over real loopback sockets: the
KeyPool-compatible proxy path (team credential as a Bearer header or a subprotocol, 401,
scripted refusals), the raw API key header, the recorded query parameters and
UpdateConfiguration, speaker labels with SpeakerRevision, language fields and a forced
model echo."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from edgecap.sim import FaultPlan, StreamingSimulator
from tests.sim_helpers import API_KEY, burst, drain, proxy_ws_url, recv_json, send_audio, ws_url

pytestmark = pytest.mark.integration

CREDENTIAL = "nxkp-test-team-credential"
BEARER = {"Authorization": f"Bearer {CREDENTIAL}"}
SCRIPT = ["Turn on the lights.", "Second utterance, please.", "Third one!"]


@pytest.fixture
async def sim() -> AsyncIterator[StreamingSimulator]:
    """A simulator without the pacing check (tests send audio faster than real time)."""
    async with StreamingSimulator(
        SCRIPT, api_key=API_KEY, credential=CREDENTIAL, max_rate=None
    ) as simulator:
        simulator.wait_timeout = 5.0
        yield simulator


async def refused(url: str, **kwargs: Any) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as excinfo:
        async with connect(url, **kwargs):
            pass
    return excinfo.value


async def speak_and_terminate(ws: ClientConnection, turns: int) -> list[dict[str, Any]]:
    """Begin, `turns` utterances each ended by a pause, Terminate; every message after Begin."""
    assert (await recv_json(ws))["type"] == "Begin"
    for _ in range(turns):
        await send_audio(ws, burst(1.0, 0.6))
    await ws.send(json.dumps({"type": "Terminate"}))
    return await drain(ws)


# -- the proxy path -------------------------------------------------------------


async def test_proxy_accepts_the_team_credential_as_a_bearer_header(
    sim: StreamingSimulator,
) -> None:
    async with connect(
        proxy_ws_url(sim, speech_model="universal-3-6-pro"), additional_headers=BEARER
    ) as ws:
        begin = await recv_json(ws)
        assert ws.subprotocol is None
    assert begin["type"] == "Begin"
    assert begin["configuration"]["model"] == "universal-3-6-pro"
    record = await sim.wait_closed(sim.sessions[0])
    assert (record.path, record.auth, record.token) == (
        "/v1/assemblyai/v3/ws",
        "proxy_header",
        None,
    )
    assert (record.offered_subprotocols, record.subprotocol) == ([], None)
    assert record.close_code == 1000
    assert abs(begin["expires_at"] - (record.connected_at + 10800)) < 5  # no token caps it
    [shake] = sim.handshakes
    assert (shake.proxy, shake.auth, shake.status, shake.outcome) == (
        True,
        "proxy_header",
        101,
        "accepted",
    )


async def test_proxy_accepts_the_credential_as_a_subprotocol_and_echoes_it(
    sim: StreamingSimulator,
) -> None:
    offered = [Subprotocol("edgecap.v1"), Subprotocol(f"keypool-token.{CREDENTIAL}")]
    async with connect(proxy_ws_url(sim), subprotocols=offered) as ws:
        assert (await recv_json(ws))["type"] == "Begin"
        assert ws.response is not None
        assert ws.response.headers["Sec-WebSocket-Protocol"] == f"keypool-token.{CREDENTIAL}"
        assert ws.subprotocol == f"keypool-token.{CREDENTIAL}"
    record = sim.sessions[0]
    assert record.auth == "proxy_subprotocol"
    assert record.offered_subprotocols == offered
    assert record.subprotocol == f"keypool-token.{CREDENTIAL}"
    assert "authorization" not in record.headers


@pytest.mark.parametrize(
    "how",
    [
        {},
        {"additional_headers": {"Authorization": "Bearer wrong"}},
        {"additional_headers": {"Authorization": CREDENTIAL}},  # no Bearer
        {"additional_headers": {"Authorization": API_KEY}},  # the upstream key is not it
        {"subprotocols": ["keypool-token.wrong"]},
        {"subprotocols": [CREDENTIAL]},  # without the keypool-token. prefix
    ],
)
async def test_proxy_refuses_a_missing_or_wrong_credential_with_401(
    sim: StreamingSimulator, how: dict[str, Any]
) -> None:
    sim.schedule_fault(FaultPlan.handshake(503))
    error = await refused(proxy_ws_url(sim), **how)
    assert error.response.status_code == 401
    assert json.loads(error.response.body) == {"error": "invalid team token"}
    assert sim.sessions == []
    [shake] = sim.handshakes
    assert (shake.status, shake.outcome, shake.auth) == (401, "credential", None)
    assert sim.pending_faults == [FaultPlan.handshake(503)], "a 401 takes no scripted plan"


async def test_a_token_is_no_credential_on_the_proxy_path(sim: StreamingSimulator) -> None:
    error = await refused(proxy_ws_url(sim, token=sim.mint_token(60)))
    assert error.response.status_code == 401


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (403, "this team token may not use assemblyai"),
        (429, "rate limited"),
        (502, "upstream failure"),
        (503, "no upstream key available"),
    ],
)
async def test_scripted_proxy_refusals(sim: StreamingSimulator, status: int, text: str) -> None:
    sim.schedule_fault(FaultPlan.handshake(status))
    error = await refused(proxy_ws_url(sim), additional_headers=BEARER)
    assert error.response.status_code == status
    assert json.loads(error.response.body) == {"error": text, "simulator": True}
    assert error.response.headers.get("Retry-After") == ("1" if status == 429 else None)
    assert [(h.status, h.outcome, h.auth) for h in sim.handshakes] == [
        (status, "fault", "proxy_header")
    ]
    async with connect(proxy_ws_url(sim), additional_headers=BEARER) as ws:  # plan used up
        assert (await recv_json(ws))["type"] == "Begin"
    assert sim.handshake_rejections == 1


async def test_refusal_for_every_proxy_upgrade_from_the_default_plan(
    sim: StreamingSimulator,
) -> None:
    sim.default_fault = FaultPlan.handshake(503)
    for _ in range(2):
        error = await refused(
            proxy_ws_url(sim), subprotocols=[Subprotocol(f"keypool-token.{CREDENTIAL}")]
        )
        assert error.response.status_code == 503
    assert sim.handshake_rejections == 2


# -- the direct path: raw API key ------------------------------------------------


async def test_raw_api_key_header_opens_v3_ws(sim: StreamingSimulator) -> None:
    async with connect(ws_url(sim), additional_headers={"Authorization": API_KEY}) as ws:
        begin = await recv_json(ws)
    assert begin["type"] == "Begin"
    assert (sim.sessions[0].auth, sim.sessions[0].path) == ("api_key_header", "/v3/ws")


@pytest.mark.parametrize("value", [f"Bearer {API_KEY}", f"Bearer {CREDENTIAL}"])
async def test_bearer_on_v3_ws_is_an_unauthorized_close_before_begin(
    sim: StreamingSimulator, value: str
) -> None:
    async with connect(ws_url(sim), additional_headers={"Authorization": value}) as ws:
        messages = await drain(ws)
    reason = "Unauthorized Connection: Invalid API key or token"
    assert messages == [{"type": "Error", "error_code": 1008, "error": reason}]
    assert (ws.close_code, ws.close_reason) == (1008, reason)
    assert sim.sessions[0].auth is None
    assert sim.sessions[0].begin is None


# -- parameters and UpdateConfiguration -------------------------------------------


async def test_query_parameters_are_recorded_and_echoed(sim: StreamingSimulator) -> None:
    url = proxy_ws_url(
        sim,
        speech_model="universal-3-6-pro",
        keyterms_prompt=json.dumps(["edgecap", "Raspberry Pi"]),
        prompt="A kitchen with a voice-controlled light.",
        language_detection=True,
        language_code="en",
        language_codes=json.dumps(["en", "de"]),
        mode="max_accuracy",
        vad_threshold=0.35,
        voice_focus="far-field",
        speaker_labels=True,
        max_speakers=2,
        min_turn_silence=300,
    )
    async with connect(url, additional_headers=BEARER) as ws:
        begin = await recv_json(ws)
    params = sim.sessions[0].params
    assert params is not None
    assert params.keyterms == ["edgecap", "Raspberry Pi"]
    assert params.prompt == "A kitchen with a voice-controlled light."
    assert (params.language_detection, params.language_code, params.language_codes) == (
        True,
        "en",
        ["en", "de"],
    )
    assert (params.mode, params.vad_threshold, params.voice_focus) == (
        "max_accuracy",
        0.35,
        "far-field",
    )
    assert (params.speaker_labels, params.max_speakers) == (True, 2)
    assert params.endpointing.min_turn_silence_ms == 300
    assert begin["configuration"] == {
        "model": "universal-3-6-pro",
        "mode": "max_accuracy",
        "api_version": "2025-05-12",
        "speaker_labels": True,
        "redact_pii": None,
        "filter_profanity": None,
        "domain": None,
        "voice_focus": "far-field",
        "simulator": True,
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("keyterms_prompt", json.dumps([f"term {i}" for i in range(101)])),
        ("mode", "fastest"),
        ("voice_focus", "mid-field"),
        ("max_speakers", "11"),
        ("vad_threshold", "1.5"),
        ("language_codes", json.dumps(["en"] * 11)),
        ("speaker_labels", "maybe"),
    ],
)
async def test_invalid_parameters_are_an_error_and_3006_before_begin(
    sim: StreamingSimulator, name: str, value: str
) -> None:
    async with connect(proxy_ws_url(sim, **{name: value}), additional_headers=BEARER) as ws:
        [error] = await drain(ws)
    assert error["type"] == "Error"
    assert error["error_code"] == 3006
    assert error["error"].startswith(f"Invalid Message: {name} ")
    assert ws.close_code == 3006


async def test_update_configuration_is_recorded_in_order_and_keyterms_follow_it(
    sim: StreamingSimulator,
) -> None:
    updates = [
        {
            "type": "UpdateConfiguration",
            "keyterms_prompt": ["kitchen", "hallway"],
            "prompt": "Rooms.",
        },
        {"type": "UpdateConfiguration", "max_turn_silence": 900, "mode": "min_latency"},
        {"type": "UpdateConfiguration", "keyterms_prompt": [], "prompt": ""},
        {"type": "UpdateConfiguration", "keyterms_prompt": ["garage"]},
    ]
    url = ws_url(sim, sim.mint_token(60), keyterms_prompt=json.dumps(["edgecap"]))
    async with connect(url) as ws:
        await recv_json(ws)
        record = sim.sessions[0]
        assert record.keyterms == ["edgecap"]
        for update in updates[:3]:
            await ws.send(json.dumps(update))
        await sim.wait_until(lambda: len(record.update_configurations) == 3, "3 updates")
        assert record.keyterms == []
        await ws.send(json.dumps(updates[3]))
        await ws.send(json.dumps({"type": "Terminate"}))
        await drain(ws)
    assert record.update_configurations == updates
    assert record.keyterms == ["garage"]
    assert record.params is not None
    assert record.connect_params is not None
    assert (record.params.prompt, record.params.mode) == (None, "min_latency")
    assert record.params.endpointing.max_turn_silence_ms == 900
    assert record.connect_params.keyterms == ["edgecap"]
    assert record.connect_params.endpointing.max_turn_silence_ms == 1280
    assert record.close_code == 1000


async def test_update_with_more_than_100_keyterms_closes_3006(sim: StreamingSimulator) -> None:
    async with connect(ws_url(sim, sim.mint_token(60))) as ws:
        await recv_json(ws)
        too_many = {"type": "UpdateConfiguration", "keyterms_prompt": ["t"] * 101}
        await ws.send(json.dumps(too_many))
        [error] = await drain(ws)
    assert (error["error_code"], ws.close_code) == (3006, 3006)
    assert error["error"] == "Invalid Message: keyterms_prompt has 101 entries; at most 100 allowed"
    assert sim.sessions[0].keyterms == []


# -- speakers, language, model ---------------------------------------------------


async def test_speaker_labels_and_the_speaker_revision_before_termination(
    sim: StreamingSimulator,
) -> None:
    url = proxy_ws_url(sim, speaker_labels=True, format_turns=True)
    async with connect(url, additional_headers=BEARER) as ws:
        messages = await speak_and_terminate(ws, turns=2)

    turns = [m for m in messages if m["type"] == "Turn"]
    assert all("speaker_label" in m for m in turns)
    finals = [m for m in turns if m["end_of_turn"]]
    assert [(m["turn_order"], m["turn_is_formatted"], m["speaker_label"]) for m in finals] == [
        (0, False, "A"),
        (0, True, "A"),
        (1, False, "B"),
        (1, True, "B"),
    ]
    assert all(w["speaker"] == m["speaker_label"] for m in finals for w in m["words"])
    for partial in (m for m in turns if not m["end_of_turn"]):
        assert all(("speaker" in w) == w["word_is_final"] for w in partial["words"])
    assert "language_code" not in finals[0]

    revision, termination = messages[-2:]
    assert termination["type"] == "Termination"
    assert revision["type"] == "SpeakerRevision"
    assert [(r["turn_order"], r["speaker_label"]) for r in revision["revisions"]] == [
        (0, "B"),
        (1, "A"),
    ]
    first = revision["revisions"][0]
    assert [w["text"] for w in first["words"]] == [w["text"] for w in finals[1]["words"]]
    assert [(w["start"], w["end"]) for w in first["words"]] == [
        (w["start"], w["end"]) for w in finals[1]["words"]
    ]
    assert {w["speaker"] for w in first["words"]} == {"B"}
    assert sim.sessions[0].speaker_revisions == [revision]


async def test_speaker_scripts_are_test_settable(sim: StreamingSimulator) -> None:
    sim.settings.speakers = ("PENDING", "B")
    sim.settings.revised_speakers = ("A", "B")  # turn 0 resolved, turn 1 unchanged
    async with connect(ws_url(sim, sim.mint_token(60), speaker_labels=True)) as ws:
        messages = await speak_and_terminate(ws, turns=2)
    finals = [m for m in messages if m["type"] == "Turn" and m["end_of_turn"]]
    assert [m["speaker_label"] for m in finals] == ["PENDING", "B"]
    [revision] = [m for m in messages if m["type"] == "SpeakerRevision"]
    assert revision["revisions"][0]["turn_order"] == 0
    assert [(r["turn_order"], r["speaker_label"]) for r in revision["revisions"]] == [(0, "A")]

    sim.settings.revised_speakers = None  # nothing revised: no message at all
    async with connect(ws_url(sim, sim.mint_token(60), speaker_labels=True)) as ws:
        messages = await speak_and_terminate(ws, turns=1)
    assert [m["type"] for m in messages][-1] == "Termination"
    assert not any(m["type"] == "SpeakerRevision" for m in messages)


async def test_no_speaker_fields_without_speaker_labels(sim: StreamingSimulator) -> None:
    async with connect(ws_url(sim, sim.mint_token(60))) as ws:
        messages = await speak_and_terminate(ws, turns=1)
    turns = [m for m in messages if m["type"] == "Turn"]
    assert turns
    assert not any("speaker_label" in m for m in turns)
    assert not any("speaker" in w for m in turns for w in m["words"])
    assert [m["type"] for m in messages if m["type"] != "Turn"] == ["Termination"]


async def test_language_detection_puts_language_fields_on_final_turns(
    sim: StreamingSimulator,
) -> None:
    url = ws_url(
        sim, sim.mint_token(60), language_detection=True, language_codes=json.dumps(["de", "en"])
    )
    async with connect(url) as ws:
        messages = await speak_and_terminate(ws, turns=1)
    turns = [m for m in messages if m["type"] == "Turn"]
    finals = [m for m in turns if m["end_of_turn"]]
    assert [(m["language_code"], m["language_confidence"]) for m in finals] == [("de", 0.93)]
    assert not any("language_code" in m for m in turns if not m["end_of_turn"])

    sim.settings.detected_language, sim.settings.language_confidence = "fr", 0.71
    async with connect(ws_url(sim, sim.mint_token(60), language_detection=True)) as ws:
        messages = await speak_and_terminate(ws, turns=1)
    [final] = [m for m in messages if m["type"] == "Turn" and m["end_of_turn"]]
    assert (final["language_code"], final["language_confidence"]) == ("fr", 0.71)


async def test_forced_model_echo_on_the_proxy_path(sim: StreamingSimulator) -> None:
    sim.settings.reported_model = "universal-streaming-english"
    url = proxy_ws_url(sim, speech_model="universal-3-6-pro")
    async with connect(url, additional_headers=BEARER) as ws:
        begin = await recv_json(ws)
    assert begin["configuration"]["model"] == "universal-streaming-english"
    assert sim.sessions[0].query["speech_model"] == "universal-3-6-pro"
