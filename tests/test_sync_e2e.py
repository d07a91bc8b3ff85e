"""The Sync provider end to end: the daemon captures through real ALSA (the FIFO-fed
device), its local detector cuts each spoken command into an utterance, uploads it to the
Sync API simulator while it is spoken, and publishes one `edgecap.turn/1` turn per command
to the test-owned mosquitto: exact text, in order, once each, also when the upload is cut
and the service refuses connections for a while (the utterances wait in the pending spool
and arrive after recovery). Also measures billed/speech and end of speech -> turn."""

from __future__ import annotations

import re
import signal
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from edgecap.doctor.context import DoctorOptions
from edgecap.doctor.loading import load_doctor_config
from edgecap.doctor.runner import run_doctor
from edgecap.sim.sync_api import SyncApiSimulator, parse_sync_fault
from tests.daemon_proc import DaemonProcess, write_config
from tests.harness import AlsaFifoSource, MosquittoBroker, MqttCollector, SpeechFixture
from tests.strict_json import strict_loads

pytestmark = pytest.mark.integration

KEY = "k-sync-e2e-secret"
TEAM = "nxkp-team-sync-e2e"
DEVICE = "sync-dev"
TRANSCRIPT = f"edgecap/{DEVICE}/transcript"
LATENCY = re.compile(r"turn (\d+) ms after the end of capture")


def config(
    tmp_path: Path, sim: SyncApiSimulator, alsa: AlsaFifoSource, mqtt_port: int, via_service: bool
) -> Path:
    auth: dict[str, Any] = (
        {"mode": "token_service", "token_service_url": sim.token_service_url}
        if via_service
        else {"mode": "api_key"}
    )
    sync: dict[str, Any] = {"retry_max_seconds": 2.0}
    if not via_service:
        sync["url"] = sim.url
    return write_config(
        tmp_path / "edgecap.toml",
        {"device_id": DEVICE, "state_dir": str(tmp_path / "state")},
        {
            "audio": {"device": alsa.device},
            "auth": auth,
            "streaming": {"provider": "assemblyai-sync"},
            "sync": sync,
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        },
    )


async def speak(
    tmp_path: Path,
    sim: SyncApiSimulator,
    alsa: AlsaFifoSource,
    broker: MosquittoBroker,
    fixtures: list[SpeechFixture],
    *,
    via_service: bool,
) -> tuple[list[dict[str, Any]], DaemonProcess]:
    path = config(tmp_path, sim, alsa, broker.port, via_service)
    secret = {"EDGECAP_TOKEN_SERVICE_CREDENTIAL": TEAM} if via_service else {}
    env = {**alsa.env, **secret, "EDGECAP_ASSEMBLYAI_API_KEY": KEY}
    arrived: list[float] = []
    with MqttCollector("127.0.0.1", broker.port, [TRANSCRIPT]) as sub:
        daemon = await DaemonProcess(path, env).start()
        try:
            await daemon.wait_log("edgecap started")
            for f in fixtures:
                alsa.play_silence(1.0)
                alsa.play_wav(f.path)
            alsa.play_silence(1.5)
            for n in range(1, len(fixtures) + 1):
                await sub.await_count(TRANSCRIPT, n, 40)
                arrived.append(time.time())
        finally:
            rc = await daemon.stop(signal.SIGTERM)
            assert rc == 0, daemon.stderr_lines[-5:]
        turns = [strict_loads(m.payload) for m in sub.on_topic(TRANSCRIPT)]
    for turn, at in zip(turns, arrived, strict=False):
        turn["_arrived"] = at  # when it reached the subscriber (this test's clock)
    return turns, daemon


async def test_commands_arrive_in_order_once_each_through_an_outage(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    fixtures = speech_fixtures[:3]
    async with SyncApiSimulator([f.text for f in fixtures], api_key=KEY) as sim:
        sim.schedule_fault(parse_sync_fault("drop"))  # the first upload is cut mid-way
        sim.schedule_fault(parse_sync_fault("refuse*2"))  # and the service stays away a while
        turns, daemon = await speak(
            tmp_path, sim, alsa_source, mqtt_broker, fixtures, via_service=False
        )
        requests = list(sim.requests)
    assert [t["text"] for t in turns] == [f.text for f in fixtures]  # exact, in order
    assert len({t["id"] for t in turns}) == len(turns) == 3  # once each
    assert {t["provider"] for t in turns} == {"assemblyai-sync"}
    assert all(t["words"] and t["started_at"] < t["ended_at"] for t in turns)
    assert requests[0].fault == "drop"  # the outage happened during an upload
    assert [r.text for r in requests if r.status == 200] == [f.text for f in fixtures]
    assert all(r.way_in == "api_key" and r.model == "universal-3-5-pro" for r in requests[1:])
    assert "pending" in daemon.log or "next try" in daemon.log
    assert KEY not in daemon.log
    assert not list((tmp_path / "state" / "sync-pending").iterdir())


async def test_through_the_token_service_with_figures(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    """The device credential (Bearer) to `{token service}/sync`; uploads live (chunked).
    Prints billed/speech and end of capture -> turn for the report (pytest -s)."""
    fixtures = speech_fixtures[:4]
    async with SyncApiSimulator([f.text for f in fixtures], credential=TEAM) as sim:
        turns, daemon = await speak(
            tmp_path, sim, alsa_source, mqtt_broker, fixtures, via_service=True
        )
        requests = list(sim.requests)
        billed = sim.billed_audio_seconds
    assert [t["text"] for t in turns] == [f.text for f in fixtures]
    assert [(r.way_in, r.path, r.chunked) for r in requests] == [
        ("service", "/v1/assemblyai/sync", True)
    ] * len(fixtures)
    assert TEAM not in daemon.log
    speech = sum(
        (f.duration_ms - f.leading_silence_ms - f.trailing_silence_ms) / 1000 for f in fixtures
    )
    captured = [int(m) for m in LATENCY.findall(daemon.log)]
    # end of speech = the end of the last word (the simulator aligns words to the voiced
    # audio; ended_at is its capture time) -> the turn at the MQTT subscriber
    spoken = [
        round((t["_arrived"] - datetime.fromisoformat(t["ended_at"]).timestamp()) * 1000)
        for t in turns
    ]
    print(
        f"\nsync figures: billed {billed:.2f} s for {speech:.2f} s of speech "
        f"({billed / speech:.2f}x); end of speech -> turn on MQTT median "
        f"{statistics.median(spoken)} ms {spoken}; end of the audio sent -> turn "
        f"handed to the spool median {statistics.median(captured)} ms"
    )
    assert billed / speech < 2.5


async def test_the_doctor_posts_a_short_clip_to_the_sync_api(
    tmp_path: Path, mqtt_broker: MosquittoBroker, alsa_source: AlsaFifoSource
) -> None:
    """The sync check replaces the token and streaming checks: one POST of 0.5 s through the
    token service, the way the daemon sends; a wrong credential fails with the hint."""
    async with SyncApiSimulator(credential=TEAM) as sim:
        path = config(tmp_path, sim, alsa_source, mqtt_broker.port, via_service=True)
        alsa_source.play_silence(1.0)
        options = DoctorOptions(timeout=3.0, record_seconds=0.3, environ={})
        env = {**alsa_source.env, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": TEAM}
        cfg = load_doctor_config(path, env, installed_credentials=tmp_path / "none")
        report = await run_doctor(cfg, options)
        env["EDGECAP_TOKEN_SERVICE_CREDENTIAL"] = "nxkp-wrong"
        cfg = load_doctor_config(path, env, installed_credentials=tmp_path / "none")
        refused = await run_doctor(cfg, options)
        requests = list(sim.requests)
    sync = report.get("sync")
    assert sync is not None
    assert sync.result == "pass", sync.detail
    assert report.get("token") is None
    assert report.get("streaming") is None
    assert [(r.way_in, r.audio_ms) for r in requests] == [("service", 500.0), ("refused", 0.0)]
    bad = refused.get("sync")
    assert bad is not None
    assert bad.result == "fail"
    assert "HTTP 401" in bad.detail
    assert "credential" in bad.fix
