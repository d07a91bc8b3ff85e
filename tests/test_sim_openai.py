"""The OpenAI Realtime transcription simulator over real loopback sockets: sessions with
server VAD and with client commits, the errors a client must explain, and WebSocket faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from edgecap.sim.openai import OpenAIRealtimeSimulator, RealtimeFault
from tests.harness import SpeechFixture
from tests.sim_openai_helpers import (
    API_KEY,
    append,
    bearer,
    configure,
    of_type,
    open_session,
    quiet,
    recv_event,
    recv_until,
    session_update,
    speech,
    upsample_16k_to_24k,
)

pytestmark = pytest.mark.integration

SCRIPT = ["Turn on the kitchen lights please.", "What is the weather like tomorrow?", "Third."]
COMPLETED = "conversation.item.input_audio_transcription.completed"


@pytest.fixture
async def sim() -> AsyncIterator[OpenAIRealtimeSimulator]:
    async with OpenAIRealtimeSimulator(SCRIPT, api_key=API_KEY) as simulator:
        simulator.wait_timeout = 5.0
        yield simulator


def two_utterances(fixtures: list[SpeechFixture]) -> bytes:
    """The first two speech fixtures at 24 kHz, each followed by 0.8 s of silence."""
    return b"".join(upsample_16k_to_24k(f.pcm) + quiet(0.8) for f in fixtures[:2])


async def test_server_vad_transcribes_two_utterances_of_speech(
    sim: OpenAIRealtimeSimulator, speech_fixtures: list[SpeechFixture]
) -> None:
    async with open_session(sim) as ws:
        created, updated = await configure(ws, session_update(language="en", prompt="home"))
        assert created["session"]["type"] == "transcription"
        assert created["session"]["object"] == "realtime.transcription_session"
        assert created["session"]["id"].startswith("sess_")
        input_config = updated["session"]["audio"]["input"]
        assert input_config["transcription"] == {
            "model": "gpt-4o-transcribe",
            "language": "en",
            "prompt": "home",
        }
        assert input_config["turn_detection"]["silence_duration_ms"] == 500
        await append(ws, two_utterances(speech_fixtures))
        events = await recv_until(ws, of_type(COMPLETED), count=2)
    kinds = [e["type"] for e in events]
    first_item = events[0]["item_id"]
    assert kinds[:4] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
    ]
    completed = [e for e in events if e["type"] == COMPLETED]
    assert [c["transcript"] for c in completed] == SCRIPT[:2]
    committed = [e for e in events if e["type"] == "input_audio_buffer.committed"]
    assert committed[0]["previous_item_id"] is None
    assert committed[1]["previous_item_id"] == first_item == completed[0]["item_id"]
    deltas = [e["delta"] for e in events if e.get("item_id") == first_item and "delta" in e]
    assert len(deltas) > 1
    assert "".join(deltas) == SCRIPT[0]
    assert completed[0]["content_index"] == 0
    record = sim.sessions[0]
    assert record.auth == "api_key"
    assert record.kind == "transcription"
    assert record.audio_ms_before_ready == 0
    assert record.client_errors == []
    items = record.items
    assert [i.transcript for i in items] == SCRIPT[:2]
    assert all(i.by == "server_vad" and i.status == "completed" for i in items)
    first = speech_fixtures[0]
    # the first utterance's span: the fixture (its silences included) and 500 ms of silence
    assert items[0].audio_start_ms <= first.leading_silence_ms
    assert items[0].audio_end_ms == pytest.approx(
        first.duration_ms - first.trailing_silence_ms + 500, abs=30
    )
    sent_update = record.session_updates[0]["session"]["audio"]["input"]
    assert sent_update["transcription"]["language"] == "en"


async def test_manual_commits_with_a_live_model(sim: OpenAIRealtimeSimulator) -> None:
    async with open_session(sim) as ws:
        _, updated = await configure(ws, session_update("gpt-live-transcribe", turn_detection=None))
        assert updated["session"]["audio"]["input"]["turn_detection"] is None
        await append(ws, speech(1.0) + quiet(0.7))
        live = await recv_until(ws, of_type("conversation.item.input_audio_transcription.delta"), 3)
        assert "".join(e["delta"] for e in live) == "Turn on the", "words while speech goes on"
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        events = await recv_until(ws, of_type(COMPLETED))
        assert events[0]["type"] == "input_audio_buffer.committed"
        assert events[0]["item_id"] == live[0]["item_id"]
        assert events[-1]["transcript"] == SCRIPT[0]
        assert "".join(e["delta"] for e in live + events if "delta" in e) == SCRIPT[0]
        assert not any(e["type"].startswith("input_audio_buffer.speech") for e in live + events)
        await ws.send(json.dumps({"type": "input_audio_buffer.commit", "event_id": "c2"}))
        error = await recv_until(ws, of_type("error"))
    assert error[-1]["error"]["code"] == "input_audio_buffer_commit_empty"
    assert error[-1]["error"]["event_id"] == "c2"
    assert "buffer too small. Expected at least 100ms" in error[-1]["error"]["message"]
    record = sim.sessions[0]
    assert [(c.item_id is not None, c.error_code) for c in record.commits] == [
        (True, None),
        (False, "input_audio_buffer_commit_empty"),
    ]
    assert record.items[0].by == "client"
    assert record.items[0].audio_end_ms == 1700


async def test_a_wrong_rate_is_an_error_and_the_session_stays_open(
    sim: OpenAIRealtimeSimulator,
) -> None:
    async with open_session(sim) as ws:
        _, error = await configure(ws, session_update(rate=16000))
        assert error["type"] == "error"
        assert error["error"]["type"] == "invalid_request_error"
        assert error["error"]["param"] == "session.audio.input.format.rate"
        assert "Expected a value >= 24000, but got 16000" in error["error"]["message"]
        await ws.send(json.dumps(session_update("whisper-1")))
        updated = await recv_event(ws)
        assert updated["type"] == "session.updated"
    assert sim.sessions[0].updates_accepted == 1
    assert sim.sessions[0].config is not None
    assert sim.sessions[0].config.model == "whisper-1"


async def test_server_vad_is_refused_for_a_realtime_only_model(
    sim: OpenAIRealtimeSimulator,
) -> None:
    async with open_session(sim) as ws:
        _, error = await configure(ws, session_update("gpt-realtime-whisper"))
    message = error["error"]["message"]
    assert message == "Turn detection is not supported for this transcription model."
    assert not sim.sessions[0].ready


async def test_a_transcription_model_in_the_url_is_refused_at_connect(
    sim: OpenAIRealtimeSimulator,
) -> None:
    async with open_session(sim, url=sim.realtime_url + "?model=gpt-4o-transcribe") as ws:
        error = await recv_event(ws)
        with pytest.raises(ConnectionClosed):
            await recv_event(ws)
    assert error["type"] == "error"
    assert error["error"]["code"] == "invalid_model"
    assert error["error"]["message"].startswith(
        "Model gpt-4o-transcribe is a transcription model and cannot be used as the realtime"
        " session model."
    )
    record = sim.sessions[0]
    assert (record.kind, record.created, record.close_code) == ("refused", None, 1008)


async def test_a_conversation_session_refuses_the_transcription_update(
    sim: OpenAIRealtimeSimulator,
) -> None:
    async with open_session(sim, url=sim.realtime_url + "?model=gpt-realtime") as ws:
        created = await recv_event(ws)
        assert created["session"]["type"] == "realtime"
        await ws.send(json.dumps(session_update()))
        error = await recv_event(ws)
    assert error["error"]["message"] == (
        "Passing a transcription session update event to a realtime session is not allowed."
    )
    assert sim.sessions[0].kind == "conversation"
    assert sim.sessions[0].url_model == "gpt-realtime"


async def test_audio_before_session_updated_is_recorded_as_a_client_error(
    sim: OpenAIRealtimeSimulator,
) -> None:
    async with open_session(sim) as ws:
        await recv_event(ws)
        await append(ws, speech(0.5))
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "%%%"}))
        error = await recv_event(ws)
        assert error["error"]["param"] == "audio"
    record = sim.sessions[0]
    assert record.audio_ms_before_ready == pytest.approx(500)
    assert record.audio_ms == 0
    assert record.items == []
    assert record.client_errors == [
        "input_audio_buffer.append before session.updated (audio not transcribed)"
    ]
    assert sim.script.remaining == SCRIPT, "no utterance was taken"


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, None), (bearer("sk-wrong"), "invalid_api_key"), ({"Authorization": API_KEY}, None)],
)
async def test_a_missing_or_wrong_key_is_401(
    sim: OpenAIRealtimeSimulator, headers: dict[str, str], code: str | None
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(sim.url, additional_headers=headers):
            pass
    response = refused.value.response
    assert response.status_code == 401
    assert json.loads(response.body)["error"]["code"] == code
    assert sim.sessions == []
    assert [(h.status, h.outcome) for h in sim.handshakes] == [(401, "unauthorized")]


async def test_a_403_on_demand(sim: OpenAIRealtimeSimulator) -> None:
    sim.schedule_fault(RealtimeFault.handshake(403))
    with pytest.raises(InvalidStatus) as refused:
        async with open_session(sim):
            pass
    assert refused.value.response.status_code == 403
    assert "simulated 403" in json.loads(refused.value.response.body)["error"]["message"]
    async with open_session(sim) as ws:  # the plan was for one upgrade
        assert (await recv_event(ws))["type"] == "session.created"


async def test_a_drop_mid_utterance_leaves_the_text_for_the_replay(
    sim: OpenAIRealtimeSimulator,
) -> None:
    sim.schedule_fault(RealtimeFault.drop(utterance=1))
    audio = speech(1.0) + quiet(0.7)
    async with open_session(sim) as ws:
        await configure(ws, session_update())
        with pytest.raises(ConnectionClosed) as dropped:  # noqa: PT012 - either may see it
            await append(ws, audio)
            await recv_until(ws, of_type(COMPLETED))
    assert dropped.value.rcvd is None, "no close frame: the TCP connection was cut"
    first = await sim.wait_closed(sim.sessions[0])
    assert first.events("input_audio_buffer.speech_started")
    assert first.items == []
    assert first.closed_by == "network"
    async with open_session(sim) as ws:  # the client replays the same audio
        await configure(ws, session_update())
        await append(ws, audio)
        events = await recv_until(ws, of_type(COMPLETED))
    assert events[-1]["transcript"] == SCRIPT[0]


async def test_a_failed_item_then_the_next_one_completes(sim: OpenAIRealtimeSimulator) -> None:
    sim.schedule_fault(RealtimeFault.fail_item())
    async with open_session(sim) as ws:
        await configure(ws, session_update())
        await append(ws, speech(0.6) + quiet(0.7))
        failed = await recv_until(ws, of_type("conversation.item.input_audio_transcription.failed"))
        await append(ws, speech(0.6) + quiet(0.7))
        events = await recv_until(ws, of_type(COMPLETED))
    item_id = failed[-1]["item_id"]
    assert failed[-1]["error"]["message"] == "Input audio transcription failed (simulated)."
    assert not any(e["type"] == COMPLETED for e in failed)
    assert events[-1]["transcript"] == SCRIPT[0], "the failed item's text is handed out again"
    record = sim.sessions[0]
    assert [(i.item_id == item_id, i.status) for i in record.items] == [
        (True, "failed"),
        (False, "completed"),
    ]


async def test_an_error_event_then_close(sim: OpenAIRealtimeSimulator) -> None:
    sim.schedule_fault(RealtimeFault.error(1011, after_audio_ms=300))
    async with open_session(sim) as ws:
        await configure(ws, session_update())
        await append(ws, speech(0.3))  # the third append reaches the trigger
        events = await recv_until(ws, of_type("error"))
        with pytest.raises(ConnectionClosed) as closed:
            await recv_event(ws)
    assert events[-1]["error"]["type"] == "server_error"
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1011


async def test_the_session_cap_ends_with_session_expired(sim: OpenAIRealtimeSimulator) -> None:
    sim.settings.max_session_seconds = 0.3
    async with open_session(sim) as ws:
        error = await recv_until(ws, of_type("error"))  # session.created, then the cap
        with pytest.raises(ConnectionClosed) as closed:
            await recv_event(ws)
    assert error[-1]["error"]["code"] == "session_expired"
    assert error[-1]["error"]["message"] == "Your session hit the maximum duration of 0.3 seconds."
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001


async def test_no_session_created_on_demand(sim: OpenAIRealtimeSimulator) -> None:
    sim.schedule_fault(RealtimeFault.no_created())
    async with open_session(sim) as ws:
        await sim.wait_for_session(0)
        await ws.close()
    record = await sim.wait_closed(sim.sessions[0])
    assert record.created is None
    assert record.closed_by == "client"


async def test_a_stall_stops_answering_and_a_hang_never_upgrades(
    sim: OpenAIRealtimeSimulator,
) -> None:
    sim.schedule_fault(RealtimeFault.stall(after_audio_ms=200))
    async with open_session(sim) as ws:
        await configure(ws, session_update())
        await append(ws, speech(0.3))
        record = sim.sessions[0]
        await sim.wait_until(lambda: record.stalled, "the stall")
        assert record.items == []
        assert not record.closed, "the server keeps the TCP connection open"
        ws.transport.abort()  # a client watchdog gives up on the silent server
    sim.schedule_fault(RealtimeFault.handshake_hang())
    attempt = asyncio.ensure_future(open_session(sim).__aenter__())
    await sim.wait_until(lambda: len(sim.handshakes) == 2, "the second upgrade")
    assert sim.handshakes[1].outcome == "hang"
    assert sim.handshakes[1].status is None
    assert not attempt.done()
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
