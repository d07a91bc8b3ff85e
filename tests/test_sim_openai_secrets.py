"""The OpenAI Realtime simulator's client secrets over real HTTP and WebSocket: minting,
reuse until expiry, the KeyPool-style path, failures on demand, and `edgecap simulate
--provider openai`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from edgecap.sim.openai import OpenAIRealtimeSimulator
from tests.sim_openai_helpers import (
    API_KEY,
    CREDENTIAL,
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
)

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPLETED = "conversation.item.input_audio_transcription.completed"
TRANSCRIPTION_SESSION = {
    "type": "transcription",
    "audio": {
        "input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": {"model": "gpt-live-transcribe", "language": "en"},
            "turn_detection": None,
        }
    },
}


class Clock:
    """A clock the test moves (secret expiry without waiting)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sim(clock: Clock) -> AsyncIterator[OpenAIRealtimeSimulator]:
    script = ["First.", "Second.", "Third."]
    async with OpenAIRealtimeSimulator(
        script, api_key=API_KEY, credential=CREDENTIAL, clock=clock
    ) as simulator:
        simulator.wait_timeout = 5.0
        yield simulator


async def mint(url: str, key: str, seconds: int = 60, **body: Any) -> httpx.Response:
    payload = {"expires_after": {"anchor": "created_at", "seconds": seconds}, **body}
    async with httpx.AsyncClient() as client:
        return await client.post(url, json=payload, headers=bearer(key))


async def test_a_secret_opens_several_sessions_until_it_expires(
    sim: OpenAIRealtimeSimulator, clock: Clock
) -> None:
    minted = await mint(sim.client_secrets_url, API_KEY, 60, session=TRANSCRIPTION_SESSION)
    assert minted.status_code == 200
    answer = minted.json()
    secret = answer["value"]
    assert secret.startswith("ek_")
    assert answer["expires_at"] == int(clock.now) + 60
    assert answer["session"]["audio"]["input"]["transcription"]["model"] == "gpt-live-transcribe"
    for _ in range(2):  # reusable, unlike AssemblyAI's single-use tokens
        async with open_session(sim, secret) as ws:
            created = await recv_event(ws)
            # minted for a transcription session: configured from the start
            transcription = created["session"]["audio"]["input"]["transcription"]
            assert transcription["model"] == "gpt-live-transcribe"
            await append(ws, speech(0.5) + quiet(0.2))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            events = await recv_until(ws, of_type(COMPLETED))
        assert events[-1]["transcript"] in ("First.", "Second.")
    assert [r.auth for r in sim.sessions] == ["ephemeral", "ephemeral"]
    assert [r.secret for r in sim.sessions] == [secret, secret]
    assert sim.minted_secrets[0].uses == [0, 1]
    assert sim.sessions[0].client_errors == [], "a preconfigured session may take audio at once"
    clock.now += 61
    with pytest.raises(InvalidStatus) as refused:
        async with open_session(sim, secret):
            pass
    assert refused.value.response.status_code == 401
    assert "expired" in json.loads(refused.value.response.body)["error"]["message"]
    assert len(sim.sessions) == 2


async def test_the_api_key_mints_and_bad_requests_are_400(sim: OpenAIRealtimeSimulator) -> None:
    wrong = await mint(sim.client_secrets_url, "sk-wrong")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    short = await mint(sim.client_secrets_url, API_KEY, seconds=5)
    assert short.status_code == 400
    assert short.json()["error"]["param"] == "expires_after.seconds"
    bad_rate = await mint(
        sim.client_secrets_url,
        API_KEY,
        session={
            "type": "transcription",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}},
        },
    )
    assert bad_rate.status_code == 400
    assert bad_rate.json()["error"]["code"] == "integer_below_min_value"
    assert bad_rate.json()["error"]["param"] == "session.audio.input.format.rate"
    records = await sim.wait_for_secret_requests(3)
    assert [(r.status, r.credential_ok, r.value) for r in records] == [
        (401, False, None),
        (400, True, None),
        (400, True, None),
    ]
    assert sim.minted_secrets == []


async def test_the_keypool_path_takes_the_team_credential(sim: OpenAIRealtimeSimulator) -> None:
    assert sim.token_service_url.endswith("/v1/openai")
    url = sim.token_service_url + "/v1/realtime/client_secrets"
    assert url == sim.keypool_client_secrets_url
    refused = await mint(url, API_KEY)  # the OpenAI key is not the team credential
    assert (refused.status_code, refused.json()) == (401, {"error": "invalid team token"})
    minted = await mint(url, CREDENTIAL, session=TRANSCRIPTION_SESSION)
    assert minted.status_code == 200
    secret = minted.json()["value"]
    async with open_session(sim, secret) as ws:
        created, updated = await configure(
            ws, session_update("gpt-live-transcribe", turn_detection=None)
        )
        assert updated["type"] == "session.updated"
    record = sim.secret_requests[-1]
    assert (record.keypool, record.value, record.status) == (True, secret, 200)
    assert sim.minted_secrets[0].via == "keypool"
    assert sim.sessions[0].auth == "ephemeral"
    assert created["session"]["type"] == "transcription"


@pytest.mark.parametrize(
    ("mode", "keypool_body", "openai_code"),
    [
        ("403", {"error": "this team token may not use openai"}, None),
        ("429", {"error": "rate limited"}, "rate_limit_exceeded"),
        ("500", {"error": "internal error"}, None),
    ],
)
async def test_secrets_failures_on_demand(
    sim: OpenAIRealtimeSimulator,
    mode: Any,
    keypool_body: dict[str, str],
    openai_code: str | None,
) -> None:
    sim.secrets_mode = mode
    via_keypool = await mint(sim.keypool_client_secrets_url, CREDENTIAL)
    direct = await mint(sim.client_secrets_url, API_KEY)
    for response in (via_keypool, direct):
        assert response.status_code == int(mode)
        assert ("Retry-After" in response.headers) == (mode == "429")
    assert via_keypool.json() == keypool_body
    assert direct.json()["error"]["code"] == openai_code
    assert sim.minted_secrets == []


async def test_a_hanging_secrets_endpoint_never_answers(sim: OpenAIRealtimeSimulator) -> None:
    sim.secrets_mode = "hang"
    hanging = asyncio.ensure_future(mint(sim.keypool_client_secrets_url, CREDENTIAL))
    await sim.wait_for_secret_requests_started(1)
    sim.secrets_mode = "ok"  # later requests are answered; the first one still hangs
    answered = await mint(sim.keypool_client_secrets_url, CREDENTIAL)
    assert answered.status_code == 200
    assert not hanging.done()
    assert [r.mode for r in sim.secret_requests] == ["ok"]
    hanging.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hanging


async def test_simulate_command_with_the_openai_provider(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    script = tmp_path / "script.txt"
    script.write_text("Hello from the command line.\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edgecap",
        "simulate",
        "--provider",
        "openai",
        "--ready-file",
        str(ready),
        "--script",
        str(script),
        "--api-key",
        API_KEY,
        "--credential",
        CREDENTIAL,
        "--fault",
        "handshake:403",
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
        assert set(urls) == {
            "realtime_url",
            "api_base_url",
            "client_secrets_url",
            "token_service_url",
        }
        assert urls["realtime_url"].endswith("/v1/realtime?intent=transcription")
        assert urls["realtime_url"] in lines[0]
        minted = await mint(urls["token_service_url"] + "/v1/realtime/client_secrets", CREDENTIAL)
        secret = minted.json()["value"]
        with pytest.raises(InvalidStatus) as refused:  # the scheduled fault
            async with open_session_at(urls["realtime_url"], secret):
                pass
        assert refused.value.response.status_code == 403
        async with open_session_at(urls["realtime_url"], secret) as ws:
            await configure(ws, session_update())
            await append(ws, speech(0.6) + quiet(0.7))
            events = await recv_until(ws, of_type(COMPLETED))
        assert events[-1]["transcript"] == "Hello from the command line."
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            _, stderr = await proc.communicate()
    assert proc.returncode == 0
    assert b"simulator: openai session #0 created" in stderr


def open_session_at(url: str, key: str) -> Any:
    return connect(url, additional_headers=bearer(key))


async def test_simulate_rejects_a_fault_spec_of_the_other_provider() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edgecap",
        "simulate",
        "--provider",
        "openai",
        "--fault",
        "close:1011@3s",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    async with asyncio.timeout(10):
        _, stderr = await proc.communicate()
    assert proc.returncode == 2
    assert b"--provider openai: bad fault spec 'close:1011@3s'" in stderr
