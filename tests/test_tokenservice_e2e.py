"""edgecap-tokens end to end: the real service process on loopback, a device added with
its CLI, and the real daemon (ALSA through the FIFO device, the test-owned mosquitto)
transcribing against the streaming simulator with tokens minted through it (and, in the
second test, through its WebSocket proxy). Bad credentials never reach the provider, a
revocation takes effect at once, and no secret appears in any log."""

from __future__ import annotations

import contextlib
import json
import signal
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from edgecap.sim.streaming import StreamingSimulator
from tests.daemon_proc import DaemonProcess, stack_config
from tests.harness import AlsaFifoSource, MosquittoBroker, MqttCollector, SpeechFixture
from tests.tokens_proc import TokenServiceProcess

pytestmark = pytest.mark.integration

API_KEY = "sim-api-key-held-by-the-token-service"
DEVICE = "tokens-dev"
TRANSCRIPT = f"edgecap/{DEVICE}/transcript"
STATUS = f"edgecap/{DEVICE}/status"


def daemon_config(
    tmp_path: Path, service: TokenServiceProcess, url: str, alsa: AlsaFifoSource, mqtt: int
) -> Path:
    mode = "proxy" if "/v1/assemblyai/v3/ws" in url else "token_service"
    return stack_config(
        tmp_path,
        device_id=DEVICE,
        alsa_device=alsa.device,
        token_service_url=f"{service.base_url}/v1/assemblyai",
        streaming_url=url,
        mqtt_port=mqtt,
        sections={"auth": {"mode": mode}},
    )


def secrets_absent(lines: list[str], secrets: list[str]) -> list[str]:
    return [line for line in lines if any(s in line for s in secrets)]


async def bad_requests(base: str, good: str) -> list[int]:
    """50 requests that must all be refused before the provider: no credential, wrong
    ones, the right one with the wrong scheme, and WebSocket upgrades with bad ones."""
    forms: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer ect_not-a-device"},
        {"Authorization": good},  # no Bearer scheme
        {"Authorization": f"Bearer {good}x"},
        {"Authorization": f"Basic {good}"},
    ]
    statuses = []
    async with httpx.AsyncClient() as client:
        for i in range(45):
            response = await client.get(
                f"{base}/v1/assemblyai/v3/token",
                params={"expires_in_seconds": 60},
                headers=forms[i % len(forms)],
            )
            assert set(response.json()) == {"error", "code"}
            statuses.append(response.status_code)
    ws = base.replace("http", "ws") + "/v1/assemblyai/v3/ws?sample_rate=16000"
    codes = []
    for i in range(5):
        try:
            if i % 2:
                async with connect(ws, subprotocols=["keypool-token.ect_wrong"]):  # type: ignore[list-item]
                    pass
            else:
                async with connect(ws, additional_headers={"Authorization": "Bearer nope"}):
                    pass
        except InvalidStatus as exc:
            statuses.append(exc.response.status_code)
            codes.append(json.loads(exc.response.body)["code"])
    assert codes == ["unauthorized"] * 5
    return statuses


async def test_the_daemon_transcribes_with_tokens_from_edgecap_tokens(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    fixture = speech_fixtures[0]
    async with StreamingSimulator(script=[fixture.text], api_key=API_KEY) as sim:
        service = TokenServiceProcess(
            tmp_path, api_key=API_KEY, token_url=sim.token_url, streaming_url=sim.url
        )
        credential = service.add_device("kitchen")
        await service.start()
        config = daemon_config(tmp_path, service, sim.url, alsa_source, mqtt_broker.port)
        env = {**alsa_source.env, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": credential}
        try:
            with MqttCollector("127.0.0.1", mqtt_broker.port, [TRANSCRIPT]) as sub:
                daemon = await DaemonProcess(config, env).start()
                try:
                    session = await sim.wait_for_begin(0)
                    alsa_source.play_silence(0.3)
                    alsa_source.play_wav(fixture.path)
                    alsa_source.play_silence(2.0)
                    turns = await sub.await_for(lambda m: True, 20)
                finally:
                    assert await daemon.stop(signal.SIGTERM) == 0, daemon.stderr_lines[-5:]
            minted = list(sim.minted_tokens)  # each one minted with the API key
            attempts = sim.handshake_attempts
            statuses = await bad_requests(service.base_url, credential)
            assert sim.minted_tokens == minted  # 50 refusals, none reached the provider
            assert sim.handshake_attempts == attempts
            assert statuses == [401] * 50

            assert service.cli("device", "revoke", "kitchen").returncode == 0
            async with httpx.AsyncClient() as client:
                refused = await client.get(
                    f"{service.base_url}/v1/assemblyai/v3/token?expires_in_seconds=60",
                    headers={"Authorization": f"Bearer {credential}"},
                )
            listing = service.cli("device", "list", "--json")
        finally:
            assert await service.stop() == 0, service.log
    assert turns[0].json()["text"] == fixture.text
    assert session.auth == "token"
    assert session.token in minted
    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthorized"
    row = json.loads(listing.stdout)
    assert (row["name"], row["state"]) == ("kitchen", "revoked")
    assert row["tokens_today"] == len(minted) >= 1
    audit = [json.loads(line) for line in service.stderr_lines if line.startswith("{")]
    mints = [e for e in audit if e.get("route") == "assemblyai_token" and e["outcome"] == "ok"]
    assert {e["device"] for e in mints} == {"kitchen"}
    secrets = [API_KEY, credential, *minted]
    assert secrets_absent(service.stderr_lines + daemon.stderr_lines, secrets) == []


async def test_the_daemon_streams_through_the_proxy_until_its_device_is_revoked(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    fixture = speech_fixtures[1]
    async with StreamingSimulator(script=[fixture.text], api_key=API_KEY) as sim:
        service = TokenServiceProcess(
            tmp_path,
            api_key=API_KEY,
            token_url=sim.token_url,
            streaming_url=sim.url,
            top={"session_check_seconds": 0.5},
        )
        credential = service.add_device("hall")
        await service.start()
        url = service.base_url.replace("http", "ws") + "/v1/assemblyai/v3/ws"
        config = daemon_config(tmp_path, service, url, alsa_source, mqtt_broker.port)
        env = {**alsa_source.env, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": credential}
        try:
            with MqttCollector("127.0.0.1", mqtt_broker.port, [TRANSCRIPT, STATUS]) as sub:
                daemon = await DaemonProcess(config, env).start()
                try:
                    session = await sim.wait_for_begin(0)
                    alsa_source.play_silence(0.3)
                    alsa_source.play_wav(fixture.path)
                    alsa_source.play_silence(2.0)
                    turns = await sub.await_for(lambda m: m.topic == TRANSCRIPT, 20)
                    assert service.cli("device", "revoke", "hall").returncode == 0
                    failed = await sub.await_for(
                        lambda m: m.topic == STATUS and m.json()["state"] == "auth_failed", 20
                    )
                finally:
                    assert await daemon.stop(signal.SIGTERM) == 0, daemon.stderr_lines[-5:]
            async with httpx.AsyncClient() as client:
                metrics = (await client.get(f"{service.base_url}/metrics")).text
            listing = json.loads(service.cli("device", "list", "--json").stdout)
        finally:
            assert await service.stop() == 0, service.log
    assert turns[0].json()["text"] == fixture.text
    assert session.auth == "api_key_header"  # the proxy holds the key, the device does not
    assert sim.minted_tokens == []
    assert failed[0].json()["last_error"]["class"] == "auth"
    assert len(sim.sessions) == 1  # after the revocation nothing reached the provider
    audit = [json.loads(line) for line in service.stderr_lines if line.startswith("{")]
    ended = [e for e in audit if e.get("route") == "assemblyai_ws" and e["outcome"] == "revoked"]
    assert ended
    assert ended[0]["billed_seconds"] > 0
    assert ended[0]["reason"] == "device credential revoked or denied"
    assert listing["metered_seconds_today"] == pytest.approx(ended[0]["billed_seconds"], abs=0.2)
    assert 'edgecap_tokens_billed_seconds_total{device="hall",kind="metered"}' in metrics
    assert secrets_absent(service.stderr_lines + daemon.stderr_lines, [API_KEY, credential]) == []


async def test_sigterm_drains_an_open_proxy_session_with_terminate(tmp_path: Path) -> None:
    async with StreamingSimulator(script=[], api_key=API_KEY) as sim:
        service = TokenServiceProcess(
            tmp_path, api_key=API_KEY, token_url=sim.token_url, streaming_url=sim.url
        )
        credential = service.add_device("drain")
        await service.start()
        url = service.base_url.replace("http", "ws") + "/v1/assemblyai/v3/ws?sample_rate=16000"
        offered = f"keypool-token.{credential}"
        async with connect(url, subprotocols=[offered]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == offered  # echoed
            begin = json.loads(await ws.recv())
            assert begin["type"] == "Begin"
            assert service.proc is not None
            service.proc.send_signal(signal.SIGTERM)
            received = []
            with contextlib.suppress(ConnectionClosedError):  # 1012 is not a normal close
                async for message in ws:
                    received.append(json.loads(message))
            code = ws.close_code
        assert await service.stop() == 0, service.log
    assert [m["type"] for m in received] == ["Termination"]  # Terminate went upstream
    assert code == 1012
    assert sim.sessions[0].auth == "api_key_header"


async def refused_upgrade(url: str, credential: str) -> tuple[int, dict[str, str], str | None]:
    """(status, JSON body, Retry-After) of an upgrade the proxy refuses."""
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url, additional_headers={"Authorization": f"Bearer {credential}"}):
            pass
    response = caught.value.response
    return response.status_code, json.loads(response.body), response.headers.get("Retry-After")


async def test_the_proxy_enforces_concurrent_sessions_and_ends_a_session_at_its_budget(
    tmp_path: Path,
) -> None:
    async with StreamingSimulator(script=[], api_key=API_KEY) as sim:
        service = TokenServiceProcess(
            tmp_path,
            api_key=API_KEY,
            token_url=sim.token_url,
            streaming_url=sim.url,
            sections={"limits.device": {"concurrent_sessions": 1, "daily_billed_seconds": 2}},
        )
        credential = service.add_device("budget")
        await service.start()
        url = service.base_url.replace("http", "ws") + "/v1/assemblyai/v3/ws?sample_rate=16000"
        try:
            headers = {"Authorization": f"Bearer {credential}"}
            async with connect(url, additional_headers=headers) as ws:
                assert json.loads(await ws.recv())["type"] == "Begin"
                second = await refused_upgrade(url, credential)
                received = []
                with contextlib.suppress(ConnectionClosedError):
                    async for message in ws:
                        received.append(json.loads(message))
                closed = (ws.close_code, ws.close_reason)
            after = await refused_upgrade(url, credential)
        finally:
            assert await service.stop() == 0, service.log
    assert second[:2] == (429, {"error": second[1]["error"], "code": "too_many_sessions"})
    assert [m["type"] for m in received] == ["Termination"]  # Terminate went upstream first
    assert closed == (1008, "daily billed-time budget exhausted")
    assert after[0] == 429
    assert after[1]["code"] == "budget_exhausted"
    assert after[2] is not None
    assert 0 < int(after[2]) <= 86_400
    assert len(sim.sessions) == 1  # the refused ones never reached the provider
