"""OpenAI Realtime transcription end to end: the daemon captures 16 kHz through real ALSA
(the FIFO-fed device), resamples to 24 kHz, streams to the OpenAI simulator with an
ephemeral client secret minted by the token service (KeyPool path) and reused, and
publishes every utterance to the test-owned mosquitto as an `edgecap.turn/1` turn, exactly
once, also through a drop in the middle of an utterance (its audio replayed)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from edgecap.doctor.context import DoctorOptions
from edgecap.doctor.loading import load_doctor_config
from edgecap.doctor.runner import run_doctor
from edgecap.sim.openai import OpenAIRealtimeSimulator, RealtimeFault
from tests.daemon_proc import DaemonProcess, write_config
from tests.harness import AlsaFifoSource, MosquittoBroker, MqttCollector, SpeechFixture
from tests.strict_json import strict_loads

pytestmark = pytest.mark.integration

TEAM = "nxkp-team-openai-e2e"
DEVICE = "openai-dev"
TRANSCRIPT = f"edgecap/{DEVICE}/transcript"


def config(
    tmp_path: Path,
    sim: OpenAIRealtimeSimulator,
    alsa: AlsaFifoSource,
    mqtt_port: int,
    openai: dict[str, Any],
    gate: str,
) -> Path:
    return write_config(
        tmp_path / "edgecap.toml",
        {"device_id": DEVICE, "state_dir": str(tmp_path / "state")},
        {
            "audio": {"device": alsa.device},
            "auth": {"token_service_url": sim.token_service_url},
            "streaming": {"provider": "openai"},
            "openai": {"url": sim.url, **openai},
            "session": {"gate": gate},
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        },
    )


async def run_utterances(
    tmp_path: Path,
    sim: OpenAIRealtimeSimulator,
    alsa: AlsaFifoSource,
    broker: MosquittoBroker,
    fixtures: list[SpeechFixture],
    openai: dict[str, Any],
    gate: str = "always",
) -> tuple[list[dict[str, Any]], DaemonProcess]:
    path = config(tmp_path, sim, alsa, broker.port, openai, gate)
    env = {**alsa.env, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": TEAM}
    with MqttCollector("127.0.0.1", broker.port, [TRANSCRIPT]) as sub:
        daemon = await DaemonProcess(path, env).start()
        try:
            if gate == "always":
                await sim.wait_for_updated(0)
            for f in fixtures:
                alsa.play_silence(0.5)
                alsa.play_wav(f.path)
                alsa.play_silence(1.5)
            texts = {f.text for f in fixtures}
            async with asyncio.timeout(40):
                while {strict_loads(m.payload)["text"] for m in sub.on_topic(TRANSCRIPT)} < texts:
                    await sub.await_count(TRANSCRIPT, len(sub.on_topic(TRANSCRIPT)) + 1, 40)
        finally:
            rc = await daemon.stop(signal.SIGTERM)
            assert rc == 0, daemon.stderr_lines[-5:]
        return [strict_loads(m.payload) for m in sub.on_topic(TRANSCRIPT)], daemon


async def test_utterances_arrive_as_turns_with_a_reused_ephemeral_secret(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    fixtures = speech_fixtures[:2]
    async with OpenAIRealtimeSimulator([f.text for f in fixtures], credential=TEAM) as sim:
        turns, daemon = await run_utterances(
            tmp_path,
            sim,
            alsa_source,
            mqtt_broker,
            fixtures,
            {"model": "gpt-4o-transcribe", "turn_detection": "server_vad"},
        )
        session = sim.sessions[0]
    assert [t["text"] for t in turns] == [f.text for f in fixtures]
    assert {t["provider"] for t in turns} == {"openai"}
    assert [t["turn_order"] for t in turns] == [0, 1]
    assert all(t["started_at"] and t["ended_at"] for t in turns)
    assert session.auth == "ephemeral"
    assert session.audio_ms_before_ready == 0  # no audio before session.updated
    assert session.config is not None
    assert [r.keypool for r in sim.secret_requests] == [True]  # minted once, by the service
    assert not any(TEAM in line for line in daemon.stderr_lines)


async def test_a_drop_mid_utterance_loses_nothing_and_duplicates_nothing(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    fixtures = speech_fixtures[:3]
    async with OpenAIRealtimeSimulator([f.text for f in fixtures], credential=TEAM) as sim:
        sim.schedule_fault(RealtimeFault.drop(utterance=2))  # while the second is spoken
        turns, _ = await run_utterances(
            tmp_path,
            sim,
            alsa_source,
            mqtt_broker,
            fixtures,
            {"model": "gpt-4o-transcribe", "turn_detection": "server_vad"},
        )
        sessions = len(sim.sessions)
        secrets = len(sim.secret_requests)
    assert sessions >= 2  # reconnected after the drop
    assert secrets == 1  # the same ephemeral secret opened the next session
    assert sorted(t["text"] for t in turns) == sorted(f.text for f in fixtures)
    assert len({t["id"] for t in turns}) == len(turns) == len(fixtures)  # once each


async def test_a_model_without_server_vad_is_committed_at_the_end_of_local_speech(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    fixtures = speech_fixtures[:1]
    async with OpenAIRealtimeSimulator([f.text for f in fixtures], credential=TEAM) as sim:
        turns, _ = await run_utterances(
            tmp_path,
            sim,
            alsa_source,
            mqtt_broker,
            fixtures,
            {"model": "gpt-live-transcribe"},  # manual turn detection: the voice gate commits
            gate="voice",
        )
        commits = [c for s in sim.sessions for c in s.commits]
    assert [t["text"] for t in turns] == [f.text for f in fixtures]
    assert len(commits) == 1


async def test_the_doctor_checks_the_openai_way_in(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
) -> None:
    """The token check mints an ephemeral secret through the token service; the streaming
    check opens an OpenAI session with it (session.update answered) and ends it."""
    async with OpenAIRealtimeSimulator(credential=TEAM) as sim:
        path = config(
            tmp_path, sim, alsa_source, mqtt_broker.port, {"model": "gpt-4o-transcribe"}, "always"
        )
        env = {**alsa_source.env, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": TEAM}
        alsa_source.play_silence(1.0)
        cfg = load_doctor_config(path, env, installed_credentials=tmp_path / "none")
        report = await run_doctor(cfg, DoctorOptions(timeout=3.0, record_seconds=0.3, environ={}))
        updated = sim.sessions[0].updated if sim.sessions else False
    token, streaming = report.get("token"), report.get("streaming")
    assert token is not None
    assert streaming is not None
    assert token.result == "pass", token.detail
    assert streaming.result == "pass", streaming.detail
    assert "gpt-4o-transcribe" in streaming.detail
    assert updated
    assert [r.keypool for r in sim.secret_requests] == [True]
