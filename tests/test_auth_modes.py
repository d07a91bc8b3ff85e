"""Every way in, end to end: the daemon (real ALSA through the FIFO device, the test-owned
mosquitto) transcribes through the simulator with a token from the token service, through
the KeyPool-compatible proxy (Bearer header and subprotocol), and with an API key (minting
tokens, or the key itself in the upgrade's header); keyterms are in the connection and a
reload changes them live; speaker labels reach the published turns and a SpeakerRevision
republishes them with the same id."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from edgecap.sim.streaming import StreamingSimulator
from edgecap.sim.tokens import TokenServiceSimulator
from tests.daemon_proc import DaemonProcess, stack_config
from tests.harness import AlsaFifoSource, MosquittoBroker, MqttCollector, SpeechFixture

pytestmark = pytest.mark.integration

CREDENTIAL = "nxkp-team-credential-auth-modes"
API_KEY = "sim-api-key"
DEVICE = "auth-dev"
TRANSCRIPT = f"edgecap/{DEVICE}/transcript"

MODES: dict[str, tuple[dict[str, Any], str]] = {
    # name: ([auth] keys, how the simulator saw the session authenticate)
    "token_service": ({"mode": "token_service"}, "token"),
    "proxy_header": ({"mode": "proxy", "proxy_auth": "header"}, "proxy_header"),
    "proxy_subprotocol": ({"mode": "proxy", "proxy_auth": "subprotocol"}, "proxy_subprotocol"),
    "api_key_token": ({"mode": "api_key", "api_key_auth": "token"}, "token"),
    "api_key_header": ({"mode": "api_key", "api_key_auth": "header"}, "api_key_header"),
}


def write_config(
    tmp_path: Path,
    sim: StreamingSimulator,
    tokens: TokenServiceSimulator,
    alsa: AlsaFifoSource,
    mqtt_port: int,
    auth: dict[str, Any],
    streaming: dict[str, Any],
) -> Path:
    mode = auth.get("mode")
    url = sim.proxy_url if mode == "proxy" else sim.url
    auth = dict(auth)
    if mode == "api_key":
        auth["api_token_url"] = sim.token_url
    path = stack_config(
        tmp_path,
        device_id=DEVICE,
        alsa_device=alsa.device,
        token_service_url=tokens.base_url,
        streaming_url=url,
        mqtt_port=mqtt_port,
        sections={"auth": auth, "streaming": streaming},
    )
    if mode != "token_service":  # no token service in these modes: do not name one
        text = path.read_text().replace(f'token_service_url = "{tokens.base_url}"\n', "")
        path.write_text(text)
    return path


def environment(alsa: AlsaFifoSource, mode: str) -> dict[str, str]:
    secret = {"EDGECAP_ASSEMBLYAI_API_KEY": API_KEY} if mode == "api_key" else {}
    if mode != "api_key":
        secret = {"EDGECAP_TOKEN_SERVICE_CREDENTIAL": CREDENTIAL}
    return {**alsa.env, **secret}


@pytest.mark.parametrize("name", list(MODES))
async def test_the_daemon_transcribes_through_every_way_in_with_keyterms(
    name: str,
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    auth, seen_as = MODES[name]
    fixture = speech_fixtures[0]
    async with (
        StreamingSimulator(script=[fixture.text], api_key=API_KEY, credential=CREDENTIAL) as sim,
        TokenServiceSimulator(sim, credential=CREDENTIAL) as tokens,
    ):
        streaming = {"keyterms": ["Zigbee", "edgecap"]}
        path = write_config(tmp_path, sim, tokens, alsa_source, mqtt_broker.port, auth, streaming)
        with MqttCollector("127.0.0.1", mqtt_broker.port, [TRANSCRIPT]) as sub:
            daemon = await DaemonProcess(path, environment(alsa_source, auth["mode"])).start()
            try:
                session = await sim.wait_for_begin(0)
                alsa_source.play_silence(0.3)
                alsa_source.play_wav(fixture.path)
                alsa_source.play_silence(2.0)
                turns = await sub.await_for(lambda m: True, 20)
            finally:
                rc = await daemon.stop(signal.SIGTERM)
                assert rc == 0, daemon.stderr_lines[-5:]
    assert turns[0].json()["text"] == fixture.text
    assert session.auth == seen_as
    assert list(session.connect_params.keyterms) == ["Zigbee", "edgecap"]
    if auth["mode"] == "proxy":
        assert tokens.requests_started == 0  # nothing minted: the proxy holds the key
        assert "token" not in session.query
    if name == "proxy_subprotocol":
        assert session.subprotocol == f"keypool-token.{CREDENTIAL}"  # offered and echoed
    if name == "api_key_header":
        assert "token" not in session.query
    secret = API_KEY if auth["mode"] == "api_key" else CREDENTIAL
    assert not any(secret in line for line in daemon.stderr_lines)  # never in the log


async def test_a_reload_changes_keyterms_on_the_live_session_without_reconnecting(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    fixture = speech_fixtures[1]
    async with (
        StreamingSimulator(script=[fixture.text], credential=CREDENTIAL) as sim,
        TokenServiceSimulator(sim, credential=CREDENTIAL) as tokens,
    ):
        auth = {"mode": "token_service"}

        def config(keyterms: list[str]) -> Path:
            streaming = {"keyterms": keyterms}
            return write_config(
                tmp_path, sim, tokens, alsa_source, mqtt_broker.port, auth, streaming
            )

        path = config(["alpha"])
        with MqttCollector("127.0.0.1", mqtt_broker.port, [TRANSCRIPT]) as sub:
            daemon = await DaemonProcess(path, environment(alsa_source, "token_service")).start()
            try:
                session = await sim.wait_for_begin(0)
                assert list(session.connect_params.keyterms) == ["alpha"]
                assert daemon.proc is not None
                config(["beta", "Grünfeld"])
                daemon.proc.send_signal(signal.SIGHUP)
                async with asyncio.timeout(10):
                    await sim.wait_until(lambda: bool(session.update_configurations), "update")
                assert session.update_configurations[0]["keyterms_prompt"] == ["beta", "Grünfeld"]
                assert list(session.keyterms) == ["beta", "Grünfeld"]
                line = await asyncio.wait_for(daemon.wait_log("keyterms_prompt applied"), 5)
                assert "no reconnect" in line
                alsa_source.play_silence(0.3)
                alsa_source.play_wav(fixture.path)
                alsa_source.play_silence(2.0)
                turns = await sub.await_for(lambda m: True, 20)
            finally:
                rc = await daemon.stop(signal.SIGTERM)
                assert rc == 0, daemon.stderr_lines[-5:]
    assert turns[0].json()["text"] == fixture.text
    assert len(sim.sessions) == 1  # the same session throughout
    # the next session would start with the new terms
    assert list(session.connect_params.keyterms) == ["alpha"]


async def test_speaker_labels_are_published_and_a_revision_republishes_the_turn(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    fixtures = speech_fixtures[:2]
    async with (
        StreamingSimulator(script=[f.text for f in fixtures], credential=CREDENTIAL) as sim,
        TokenServiceSimulator(sim, credential=CREDENTIAL) as tokens,
    ):
        sim.settings.speakers = ("A", "B")
        sim.settings.revised_speakers = ("B", "A")  # both labels swapped at the end
        streaming = {"speaker_labels": True, "max_speakers": 2}
        auth = {"mode": "token_service"}
        path = write_config(tmp_path, sim, tokens, alsa_source, mqtt_broker.port, auth, streaming)
        with MqttCollector("127.0.0.1", mqtt_broker.port, [TRANSCRIPT]) as sub:
            daemon = await DaemonProcess(path, environment(alsa_source, "token_service")).start()
            try:
                session = await sim.wait_for_begin(0)
                for f in fixtures:
                    alsa_source.play_silence(0.3)
                    alsa_source.play_wav(f.path)
                    alsa_source.play_silence(1.5)
                first = await sub.await_for(lambda m: True, 30, 2)
            finally:
                assert await daemon.stop(signal.SIGTERM) == 0  # Terminate: the revision
            revised = await sub.await_for(lambda m: m.json().get("revision", 0) > 0, 10, 2)
    assert session.connect_params.speaker_labels is True
    assert session.connect_params.max_speakers == 2
    originals = [m.json() for m in first]
    assert [t["speaker"] for t in originals] == ["A", "B"]
    assert [t["text"] for t in originals] == [f.text for f in fixtures]
    again = {m.json()["id"]: m.json() for m in revised}
    assert set(again) == {t["id"] for t in originals}  # the same turns, the same ids
    assert [again[t["id"]]["speaker"] for t in originals] == ["B", "A"]
    assert all(t["revision"] == 1 for t in again.values())
    assert any("speaker labels revised on 2 turn(s)" in ln for ln in daemon.stderr_lines)


async def test_a_server_running_another_model_is_a_warning_and_a_status_detail(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
) -> None:
    """Unknown or misspelled parameters are ignored by the server without a word, so the
    model in Begin is compared with the one asked for."""
    async with (
        StreamingSimulator(credential=CREDENTIAL) as sim,
        TokenServiceSimulator(sim, credential=CREDENTIAL) as tokens,
    ):
        sim.settings.reported_model = "universal-streaming-multilingual"
        auth = {"mode": "token_service"}
        path = write_config(tmp_path, sim, tokens, alsa_source, mqtt_broker.port, auth, {})
        status_topic = f"edgecap/{DEVICE}/status"
        with MqttCollector("127.0.0.1", mqtt_broker.port, [status_topic]) as sub:
            daemon = await DaemonProcess(path, environment(alsa_source, "token_service")).start()
            try:
                streaming = await sub.await_for(lambda m: m.json()["state"] == "streaming", 20)
                line = await asyncio.wait_for(daemon.wait_log("speech model"), 5)
            finally:
                rc = await daemon.stop(signal.SIGTERM)
                assert rc == 0, daemon.stderr_lines[-5:]
    assert "WARNING" in line
    assert "'universal-streaming-multilingual'" in line
    assert "'universal-streaming-english' was requested" in line
    detail = streaming[0].json()["detail"]
    assert "universal-streaming-multilingual" in detail
    assert "streaming.speech_model" in detail
