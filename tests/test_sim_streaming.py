"""The AssemblyAI v3 streaming simulator over real loopback sockets, its sans-I/O
session rules, fault specs and the `edgecap simulate` command."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from edgecap.sim import FaultPlan, StreamingSimulator, parse_fault
from edgecap.sim.params import parse_session_params
from edgecap.sim.protocol import (
    RateCheck,
    SessionError,
    close_reason,
    parse_client_message,
)
from tests.harness import SpeechFixture, silence, tone
from tests.sim_helpers import API_KEY, burst, drain, recv_json, send_audio, ws_url

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ["Turn on the lights.", "Second utterance, please.", "Third one!"]


@pytest.fixture
async def sim() -> AsyncIterator[StreamingSimulator]:
    """A simulator without the pacing check (tests send audio faster than real time)."""
    async with StreamingSimulator(SCRIPT, api_key=API_KEY, max_rate=None) as simulator:
        simulator.wait_timeout = 5.0
        yield simulator


def token_for(sim: StreamingSimulator, **kwargs: int) -> str:
    return sim.mint_token(kwargs.pop("expires_in_seconds", 60), **kwargs)


# -- sans-I/O rules -------------------------------------------------------------


def test_rate_check_allows_real_time_and_rejects_bursts() -> None:
    steady = RateCheck(max_rate=1.25, slack_seconds=2.0)
    for i in range(20 * 60 * 20):  # 20 minutes of 50 ms frames at exactly real time
        steady.add(0.05, now=i * 0.05)

    burst_check = RateCheck(max_rate=1.25, slack_seconds=2.0)
    for i in range(53):  # five times real time: within 1.25 x elapsed + 2 s up to here
        burst_check.add(0.05, now=i * 0.01)
    with pytest.raises(SessionError) as excinfo:
        burst_check.add(0.05, now=0.53)  # 2.70 s of audio > 0.53 x 1.25 + 2
    assert excinfo.value.code == 3007
    assert excinfo.value.text.startswith("Audio Transmission Rate Exceeded: Received ")

    unchecked = RateCheck(max_rate=None)
    for _ in range(1000):
        unchecked.add(1.0, now=0.0)


@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        ("not json", "Invalid JSON: "),
        ('{"terminate_session": true}', "Invalid Message: "),
        ("[]", "Invalid Message: "),
        ('{"type": "Bogus"}', "Invalid Message Type: Bogus"),
    ],
)
def test_bad_client_messages_are_3006(text: str, prefix: str) -> None:
    with pytest.raises(SessionError) as excinfo:
        parse_client_message(text)
    assert excinfo.value.code == 3006
    assert excinfo.value.text.startswith(prefix)


def test_connection_parameters() -> None:
    params = parse_session_params(
        {
            "sample_rate": "16000",
            "format_turns": "true",
            "min_end_of_turn_silence_when_confident": "250",
            "max_turn_silence": "900",
            "end_of_turn_confidence_threshold": "0.7",
            "keyterms_prompt": '["edgecap", "kitchen"]',
            "some_future_param": "ignored",
        }
    )
    assert (params.format_turns, params.keyterms) == (True, ["edgecap", "kitchen"])
    assert params.endpointing.min_turn_silence_ms == 250
    assert params.endpointing.max_turn_silence_ms == 900
    assert params.endpointing.end_of_turn_confidence_threshold == 0.7
    for bad in (
        {},
        {"sample_rate": "16000", "inactivity_timeout": "4"},
        {"sample_rate": "16000", "encoding": "opus_raw"},
        {"sample_rate": "16000", "keyterms_prompt": json.dumps(["t"] * 101)},
    ):
        with pytest.raises(SessionError):
            parse_session_params(bad)


def test_close_reasons_fit_123_bytes() -> None:
    assert close_reason("short") == "short"
    assert close_reason("x" * 200) == "See Error message for details"


def test_fault_specs() -> None:
    assert parse_fault("close:1011@3s") == [FaultPlan.close(1011, after_audio_ms=3000)]
    assert parse_fault("close:3005:Session Cancelled: boom@wall=1.5s") == [
        FaultPlan.close(3005, "Session Cancelled: boom", after_seconds=1.5)
    ]
    assert parse_fault("drop@500ms") == [FaultPlan.drop(after_audio_ms=500)]
    assert parse_fault("stall@1s") == [FaultPlan.stall(after_audio_ms=1000)]
    assert parse_fault("handshake:503*3") == [FaultPlan.handshake(503)] * 3
    assert parse_fault("before-begin:4001") == [FaultPlan.close_before_begin(4001)]
    for bad in ("explode", "close@3s", "drop@soon", "handshake:abc"):
        with pytest.raises(ValueError, match="bad"):
            parse_fault(bad)


# -- connection and Begin -------------------------------------------------------


async def test_begin_shape(sim: StreamingSimulator) -> None:
    url = ws_url(sim, token_for(sim), speech_model="universal-streaming-english")
    async with connect(url) as ws:
        begin = await recv_json(ws)
        assert ws.response is not None
        assert ws.response.headers["Server"] == "edgecap-simulator"

    assert begin["type"] == "Begin"
    assert uuid.UUID(begin["id"])
    assert isinstance(begin["expires_at"], int)
    assert abs(begin["expires_at"] - (time.time() + 10800)) < 5
    assert begin["configuration"] == {
        "model": "universal-streaming-english",
        "mode": None,
        "api_version": "2025-05-12",
        "speaker_labels": None,
        "redact_pii": None,
        "filter_profanity": None,
        "domain": None,
        "voice_focus": None,
        "simulator": True,
    }
    record = await sim.wait_closed(sim.sessions[0])
    assert record.session_id == begin["id"]
    assert record.query["speech_model"] == "universal-streaming-english"
    assert (record.close_code, record.closed_by) == (1000, "client")


async def test_reported_model_knob_makes_begin_drift(sim: StreamingSimulator) -> None:
    sim.settings.reported_model = "universal-3-6-pro"
    async with connect(
        ws_url(sim, token_for(sim), speech_model="universal-streaming-english")
    ) as ws:
        begin = await recv_json(ws)
    assert begin["configuration"]["model"] == "universal-3-6-pro"


async def test_token_endpoint_mints_tokens_that_cap_the_session(sim: StreamingSimulator) -> None:
    async with httpx.AsyncClient() as client:
        wrong = await client.get(
            sim.token_url, params={"expires_in_seconds": 60}, headers={"Authorization": "nope"}
        )
        bearer = await client.get(
            sim.token_url,
            params={"expires_in_seconds": 60},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        out_of_range = [
            await client.get(sim.token_url, params=params, headers={"Authorization": API_KEY})
            for params in (
                {"expires_in_seconds": 0},
                {"expires_in_seconds": 601},
                {"expires_in_seconds": 60, "max_session_duration_seconds": 59},
                {},
            )
        ]
        good = await client.get(
            sim.token_url,
            params={"expires_in_seconds": 60, "max_session_duration_seconds": 120},
            headers={"Authorization": API_KEY},
        )

    assert (wrong.status_code, bearer.status_code) == (401, 401)
    assert "error" in wrong.json()
    assert [r.status_code for r in out_of_range] == [400] * 4
    assert all("error" in r.json() for r in out_of_range)
    assert good.status_code == 200
    assert good.headers["Server"] == "edgecap-simulator"
    body = good.json()
    assert body["expires_in_seconds"] == 60
    assert body["token"].startswith("sim-")
    async with connect(ws_url(sim, body["token"])) as ws:
        begin = await recv_json(ws)
    assert abs(begin["expires_at"] - (time.time() + 120)) < 5


async def test_api_key_or_token_in_the_authorization_header(sim: StreamingSimulator) -> None:
    async with connect(ws_url(sim), additional_headers={"Authorization": API_KEY}) as ws:
        assert (await recv_json(ws))["type"] == "Begin"
    async with connect(ws_url(sim), additional_headers={"Authorization": token_for(sim)}) as ws:
        assert (await recv_json(ws))["type"] == "Begin"
    assert [s.auth for s in sim.sessions] == ["api_key_header", "token"]


async def assert_unauthorized(url: str, reason: str, headers: dict[str, str] | None = None) -> None:
    async with connect(url, additional_headers=headers) as ws:
        messages = await drain(ws)
    assert messages == [
        {"type": "Error", "error_code": 1008, "error": f"Unauthorized Connection: {reason}"}
    ]
    assert (ws.close_code, ws.close_reason) == (1008, f"Unauthorized Connection: {reason}")


async def test_tokens_are_single_use(sim: StreamingSimulator) -> None:
    token = token_for(sim)
    async with connect(ws_url(sim, token)) as ws:
        assert (await recv_json(ws))["type"] == "Begin"
    await assert_unauthorized(ws_url(sim, token), "Token already used")
    assert sim.sessions[1].begin is None


async def test_unredeemed_token_expires() -> None:
    now = [1_000_000.0]
    async with StreamingSimulator(api_key=API_KEY, clock=lambda: now[0]) as sim:
        token = sim.mint_token(expires_in_seconds=30)
        now[0] += 31
        await assert_unauthorized(ws_url(sim, token), "Token expired")


async def test_missing_or_unknown_credentials(sim: StreamingSimulator) -> None:
    await assert_unauthorized(ws_url(sim), "Missing Authorization header")
    await assert_unauthorized(ws_url(sim, "sim-forged"), "Invalid token")
    await assert_unauthorized(
        ws_url(sim), "Invalid API key or token", headers={"Authorization": "wrong"}
    )


async def test_invalid_parameters_close_3006_before_begin(sim: StreamingSimulator) -> None:
    url = ws_url(sim, token_for(sim), keyterms_prompt=json.dumps(["term"] * 101))
    async with connect(url) as ws:
        [error] = await drain(ws)
    assert error["type"] == "Error"
    assert error["error_code"] == 3006
    assert ws.close_code == 3006


# -- audio checks ---------------------------------------------------------------


async def expect_error_close(ws: ClientConnection, code: int, prefix: str) -> None:
    messages = await drain(ws)
    assert messages[-1]["type"] == "Error", "the Error frame comes just before the close"
    assert messages[-1]["error_code"] == code
    assert messages[-1]["error"].startswith(prefix)
    assert ws.close_code == code
    assert ws.close_reason is not None
    assert ws.close_reason.startswith(prefix)


async def test_frame_shorter_than_50_ms_is_3007(sim: StreamingSimulator) -> None:
    async with connect(ws_url(sim, token_for(sim))) as ws:
        await recv_json(ws)
        await ws.send(bytes(1280))  # 40 ms
        await expect_error_close(ws, 3007, "Input duration violation: 40 ms. Expected between")


async def test_message_over_128_kb_is_1009(sim: StreamingSimulator) -> None:
    async with connect(ws_url(sim, token_for(sim))) as ws:
        await recv_json(ws)
        await ws.send(bytes(128 * 1024 + 2))
        await expect_error_close(ws, 1009, "Message Too Big")


async def test_audio_faster_than_real_time_is_3007() -> None:
    async with StreamingSimulator(api_key=API_KEY, max_rate=1.25, rate_slack_seconds=1.0) as sim:
        async with connect(ws_url(sim, sim.mint_token(60))) as ws:
            await recv_json(ws)
            for _ in range(2):
                await ws.send(bytes(32000))  # 1 s each, as fast as possible
            await expect_error_close(ws, 3007, "Audio Transmission Rate Exceeded: Received 2.0")
        assert sim.sessions[0].frames_received == 2


@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        ("{not json", "Invalid JSON: "),
        ('{"terminate_session": true}', "Invalid Message: "),
        ('{"type": "Flush"}', "Invalid Message Type: Flush"),
    ],
)
async def test_bad_text_messages_close_3006(
    sim: StreamingSimulator, text: str, prefix: str
) -> None:
    async with connect(ws_url(sim, token_for(sim))) as ws:
        await recv_json(ws)
        await ws.send(text)
        await expect_error_close(ws, 3006, prefix)
    assert sim.sessions[0].text_messages == [text]


# -- session end and timers -----------------------------------------------------


async def test_terminate_flushes_the_turn_then_termination_then_1000(
    sim: StreamingSimulator,
) -> None:
    async with connect(ws_url(sim, token_for(sim), format_turns=True)) as ws:
        await recv_json(ws)
        await send_audio(ws, silence(0.5) + tone(1.0, 300, amplitude=0.3))  # no trailing pause
        await ws.send(json.dumps({"type": "Terminate"}))
        messages = await drain(ws)

    finals = [m for m in messages if m["type"] == "Turn" and m["end_of_turn"]]
    assert [(m["turn_is_formatted"], m["transcript"]) for m in finals] == [
        (False, "turn on the lights"),
        (True, "Turn on the lights."),
    ]
    termination = messages[-1]
    assert termination == {
        "type": "Termination",
        "audio_duration_seconds": 2,
        "session_duration_seconds": termination["session_duration_seconds"],
    }
    assert isinstance(termination["session_duration_seconds"], int)
    assert (ws.close_code, ws.close_reason) == (1000, "")
    record = await sim.wait_closed(sim.sessions[0])
    assert record.terminate_received
    assert record.close_code == 1000
    assert record.session_duration_seconds == termination["session_duration_seconds"]
    assert record.audio_ms == 1500


async def test_inactivity_timeout_closes_3006_and_keepalive_resets_it() -> None:
    async with StreamingSimulator(api_key=API_KEY, inactivity_timeout_seconds=0.4) as sim:
        async with connect(ws_url(sim, sim.mint_token(60))) as ws:
            await recv_json(ws)
            for _ in range(3):  # client pacing: 0.6 s in all, each gap below the timeout
                await asyncio.sleep(0.2)
                await ws.send(json.dumps({"type": "KeepAlive"}))
            assert not sim.sessions[0].closed
            await expect_error_close(ws, 3006, "Inactivity Timeout")
        assert len(sim.sessions[0].text_messages) == 3


async def test_max_session_duration_closes_3008() -> None:
    async with (
        StreamingSimulator(api_key=API_KEY, max_session_seconds=0.3) as sim,
        connect(ws_url(sim, sim.mint_token(60))) as ws,
    ):
        begin = await recv_json(ws)
        await expect_error_close(ws, 3008, "Session Expired: Maximum session duration exceeded")
    assert begin["expires_at"] <= time.time() + 1


async def test_update_configuration_applies_without_reconnecting(
    sim: StreamingSimulator,
) -> None:
    async with connect(ws_url(sim, token_for(sim), min_turn_silence=5000)) as ws:
        await recv_json(ws)
        update = {"type": "UpdateConfiguration", "min_turn_silence": 200}
        await ws.send(json.dumps(update))
        await send_audio(ws, burst(1.0, 0.5))
        [final] = await sim.wait_for_final_turns(1)
    assert final["transcript"] == "turn on the lights"
    assert len(sim.sessions) == 1
    assert sim.sessions[0].update_configurations == [update]


async def test_script_continues_on_reconnect(sim: StreamingSimulator) -> None:
    for _ in range(2):
        async with connect(ws_url(sim, token_for(sim), format_turns=True)) as ws:
            await recv_json(ws)
            await send_audio(ws, burst(0.8, 0.6))
            await ws.send(json.dumps({"type": "Terminate"}))
            await drain(ws)
    formatted = sim.final_turns(formatted=True)
    assert [(m["turn_order"], m["transcript"]) for m in formatted] == [
        (0, SCRIPT[0]),
        (0, SCRIPT[1]),
    ]


async def test_speech_fixture_turns_carry_the_script(
    speech_fixtures: list[SpeechFixture],
) -> None:
    chosen = speech_fixtures[:2]
    async with (
        StreamingSimulator([f.text for f in chosen], api_key=API_KEY, max_rate=None) as sim,
        connect(ws_url(sim, sim.mint_token(60), format_turns=True)) as ws,
    ):
        await recv_json(ws)
        for fixture in chosen:
            await send_audio(ws, fixture.pcm + silence(0.8))
        await ws.send(json.dumps({"type": "ForceEndpoint"}))
        await ws.send(json.dumps({"type": "Terminate"}))
        messages = await drain(ws)
    formatted = [m for m in messages if m["type"] == "Turn" and m["turn_is_formatted"]]
    assert [m["transcript"] for m in formatted] == [f.text for f in chosen]
    assert [m["turn_order"] for m in formatted] == [0, 1]


# -- scripted faults ------------------------------------------------------------


async def test_scheduled_close_sends_error_first(sim: StreamingSimulator) -> None:
    sim.schedule_fault(FaultPlan.close(3005, after_audio_ms=200))
    async with connect(ws_url(sim, token_for(sim))) as ws:
        await recv_json(ws)
        await send_audio(ws, silence(0.2))
        await expect_error_close(ws, 3005, "Session Cancelled: An error occurred")
    assert sim.sessions[0].audio_ms == 200
    async with connect(ws_url(sim, token_for(sim))) as ws:  # the plan was used up
        assert (await recv_json(ws))["type"] == "Begin"


async def test_wall_time_fault(sim: StreamingSimulator) -> None:
    sim.schedule_fault(FaultPlan.close(1011, "Internal Server Error", after_seconds=0.2))
    async with connect(ws_url(sim, token_for(sim))) as ws:
        await recv_json(ws)
        await expect_error_close(ws, 1011, "Internal Server Error")


async def test_drop_gives_1006_without_close_frame(sim: StreamingSimulator) -> None:
    sim.schedule_fault(FaultPlan.drop(after_audio_ms=100))
    async with connect(ws_url(sim, token_for(sim))) as ws:
        await recv_json(ws)
        await send_audio(ws, silence(0.1))
        with pytest.raises(ConnectionClosedError) as excinfo:
            await recv_json(ws)
    assert excinfo.value.rcvd is None
    assert ws.close_code == 1006
    record = await sim.wait_closed(sim.sessions[0])
    assert (record.close_code, record.closed_by) == (1006, "network")


async def test_utterance_cut_by_a_drop_is_heard_again_after_reconnect(
    sim: StreamingSimulator,
) -> None:
    sim.schedule_fault(FaultPlan.drop(after_audio_ms=1000))
    async with connect(ws_url(sim, token_for(sim))) as ws:
        await recv_json(ws)
        await send_audio(ws, tone(1.0, 300, amplitude=0.3))  # mid-utterance
        messages = await drain(ws)
    assert any(m["type"] == "Turn" for m in messages), "the utterance had begun"
    assert ws.close_code == 1006

    async with connect(ws_url(sim, token_for(sim), format_turns=True)) as ws:
        await recv_json(ws)
        await send_audio(ws, burst(1.0, 0.6))  # the client replays the utterance
        [_, formatted] = await sim.wait_for_final_turns(2)
    assert formatted["transcript"] == SCRIPT[0]


async def test_stall_stops_answering_but_keeps_tcp_open(sim: StreamingSimulator) -> None:
    sim.schedule_fault(FaultPlan.stall(after_audio_ms=50))
    async with connect(ws_url(sim, token_for(sim))) as ws:
        await recv_json(ws)
        await send_audio(ws, silence(0.05))
        await sim.wait_until(lambda: sim.sessions[0].stalled, "stall")
        pong = await ws.ping()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pong), 0.3)
        assert ws.close_code is None
        await sim.stop()  # the simulator cuts stalled connections when it stops
        with pytest.raises(ConnectionClosedError):
            await ws.recv()


async def test_handshake_rejection(sim: StreamingSimulator) -> None:
    sim.schedule_fault(FaultPlan.handshake(401))
    with pytest.raises(InvalidStatus) as excinfo:
        async with connect(ws_url(sim, token_for(sim))):
            pass
    response = excinfo.value.response
    assert response.status_code == 401
    assert json.loads(response.body)["error"] == "Unauthorized"
    assert (sim.handshake_attempts, sim.handshake_rejections, len(sim.sessions)) == (1, 1, 0)


async def test_close_before_begin_v2_style(sim: StreamingSimulator) -> None:
    sim.schedule_fault(FaultPlan.close_before_begin(4001))
    async with connect(ws_url(sim, token_for(sim))) as ws:
        messages = await drain(ws)
    assert messages == [{"type": "Error", "error_code": 4001, "error": "Not authorized"}]
    assert (ws.close_code, ws.close_reason) == (4001, "Not authorized")


async def test_default_fault_applies_to_every_session(sim: StreamingSimulator) -> None:
    sim.default_fault = FaultPlan.handshake(503)
    for _ in range(2):
        with pytest.raises(InvalidStatus):
            async with connect(ws_url(sim, token_for(sim))):
                pass
    assert sim.handshake_rejections == 2


# -- synthetic turns (benchmarks) -----------------------------------------------


async def test_emit_final_turns_sends_a_burst_of_timed_finals(sim: StreamingSimulator) -> None:
    with pytest.raises(RuntimeError, match="no live session"):
        await sim.emit_final_turns(1)
    async with connect(ws_url(sim, token_for(sim), format_turns=True)) as ws:
        await recv_json(ws)
        await send_audio(ws, silence(1.0))
        await sim.wait_until(lambda: sim.sessions[0].audio_ms == 1000, "1 s of audio")
        before = time.monotonic()
        sent = await sim.emit_final_turns(3, interval=0.01, text="Bench turn, please.")
        burst_messages = [await recv_json(ws) for _ in range(6)]
        after = time.monotonic()
        await send_audio(ws, burst(1.0, 0.6))  # real speech afterwards: the next turn_order
        await ws.send(json.dumps({"type": "Terminate"}))
        rest = await drain(ws)

    assert [order for order, _ in sent] == [0, 1, 2]
    times = [t for _, t in sent]
    assert before <= times[0] < times[1] < times[2] <= after
    assert times[2] - times[0] >= 0.019  # two intervals of 10 ms
    assert [(m["turn_order"], m["turn_is_formatted"]) for m in burst_messages] == [
        (0, False),
        (0, True),
        (1, False),
        (1, True),
        (2, False),
        (2, True),
    ]
    assert all(m["type"] == "Turn" and m["end_of_turn"] for m in burst_messages)
    formatted = burst_messages[1]
    assert formatted["transcript"] == "Bench turn, please."
    assert burst_messages[0]["transcript"] == "bench turn please"
    assert [w["text"] for w in formatted["words"]] == ["Bench", "turn,", "please."]
    assert 400 <= formatted["words"][0]["start"] < formatted["words"][-1]["end"] <= 1000
    speech = [m for m in rest if m["type"] == "Turn" and m["end_of_turn"]]
    assert [(m["turn_order"], m["transcript"]) for m in speech][-1] == (3, SCRIPT[0])


async def test_emit_final_turns_refuses_while_a_speech_turn_is_open(
    sim: StreamingSimulator,
) -> None:
    async with connect(ws_url(sim, token_for(sim))) as ws:
        await recv_json(ws)
        await send_audio(ws, tone(1.0, 300, amplitude=0.3))  # speech, no pause: turn open
        await sim.wait_until(lambda: sim.sessions[0].audio_ms == 1000, "1 s of audio")
        with pytest.raises(RuntimeError, match="speech turn is open"):
            await sim.emit_final_turns(1)


# -- the `edgecap simulate` command ---------------------------------------------


async def test_simulate_command(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    script = tmp_path / "script.txt"
    script.write_text("Hello from the command line.\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edgecap",
        "simulate",
        "--ready-file",
        str(ready),
        "--script",
        str(script),
        "--credential",
        "team-secret",
        "--fault",
        "handshake:503",
        "--fault",
        "handshake:429",
        "--speakers",
        "A,C",
        "--revised-speakers",
        "none",
        "--no-rate-check",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(10):
            lines = [(await proc.stdout.readline()).decode() for _ in range(3)]
        assert all(line.startswith("SIMULATOR ") for line in lines), lines
        urls = json.loads(ready.read_text())
        assert set(urls) == {"streaming_url", "proxy_url", "token_service_url", "api_token_url"}
        assert urls["proxy_url"].endswith("/v1/assemblyai/v3/ws")
        assert urls["proxy_url"] in lines[1]
        async with httpx.AsyncClient() as client:
            minted = await client.get(
                urls["token_service_url"] + "/v3/token",
                params={"expires_in_seconds": 60},
                headers={"Authorization": "Bearer team-secret"},
            )
        token = minted.json()["token"]
        proxy = f"{urls['proxy_url']}?sample_rate=16000&speaker_labels=true"
        bearer = {"Authorization": "Bearer team-secret"}
        for url, headers, status in [
            (f"{urls['streaming_url']}?sample_rate=16000&token={token}", None, 503),
            (proxy, bearer, 429),  # the scheduled faults, one per upgrade
        ]:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url, additional_headers=headers):
                    pass
            assert refused.value.response.status_code == status
        async with connect(f"{urls['streaming_url']}?sample_rate=16000&token={token}") as ws:
            assert (await recv_json(ws))["configuration"]["simulator"] is True
        async with connect(proxy, additional_headers=bearer) as ws:
            assert (await recv_json(ws))["configuration"]["speaker_labels"] is True
            await send_audio(ws, burst(1.0, 0.6) + burst(1.0, 0.6))
            await ws.send(json.dumps({"type": "Terminate"}))
            messages = await drain(ws)
        finals = [m for m in messages if m["type"] == "Turn" and m["end_of_turn"]]
        assert [m["speaker_label"] for m in finals] == ["A", "C"]
        assert messages[-1]["type"] == "Termination", "--revised-speakers none: no revision"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            _, stderr = await proc.communicate()
    assert proc.returncode == 0
    assert b"simulator: session #0 begin" in stderr
