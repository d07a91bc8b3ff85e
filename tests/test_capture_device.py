"""A missing microphone: reported in one clear line, retried inside the process, no session
(and no billing) until audio flows, then transcription starts by itself."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from edgecap.sim.streaming import StreamingSimulator
from edgecap.sim.tokens import TokenServiceSimulator
from tests.daemon_proc import DaemonProcess, write_config
from tests.harness import AlsaFifoSource, MosquittoBroker, MqttCollector, SpeechFixture

pytestmark = pytest.mark.integration

CREDENTIAL = "team-credential-capture"


async def test_missing_microphone_is_retried_and_recovers_without_restart(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    fixture = speech_fixtures[0]
    plug = tmp_path / "microphone-plugged-in"  # does not exist yet: the device is missing
    async with (
        StreamingSimulator(script=[fixture.text]) as sim,
        TokenServiceSimulator(sim, credential=CREDENTIAL) as tokens,
    ):
        config = write_config(
            tmp_path / "edgecap.toml",
            {"device_id": "mic-test", "state_dir": str(tmp_path / "state")},
            {
                "audio": {
                    "device": alsa_source.device,
                    "reopen_min_seconds": 0.2,
                    "reopen_max_seconds": 0.5,
                },
                "auth": {"token_service_url": tokens.base_url},
                "streaming": {"url": sim.url},
                "session": {"gate": "always"},  # a session as soon as the microphone works
                "mqtt": {"host": "127.0.0.1", "port": mqtt_broker.port},
            },
        )
        env = {
            **alsa_source.env,
            alsa_source.infile_var: str(plug),
            "EDGECAP_TOKEN_SERVICE_CREDENTIAL": CREDENTIAL,
        }
        with MqttCollector("127.0.0.1", mqtt_broker.port, ["edgecap/mic-test/#"]) as sub:
            daemon = await DaemonProcess(config, env).start()
            try:
                line = await asyncio.wait_for(daemon.wait_log("not found"), 15)
                assert "audio device 'testcap' not found" in line
                assert "retrying in" in line
                assert "arecord -L" in line  # says what to do
                second = len(daemon.stderr_lines)
                await asyncio.wait_for(daemon.wait_log("not found", after=second), 15)
                # still running, no session opened and no token spent without audio
                assert daemon.proc is not None
                assert daemon.proc.returncode is None
                assert sim.sessions == []
                assert tokens.requests == []

                plug.symlink_to(alsa_source.fifo_path)  # the microphone appears
                await asyncio.wait_for(daemon.wait_log("opened"), 15)
                await sim.wait_for_session(0)
                alsa_source.play_silence(0.5)
                alsa_source.play_wav(fixture.path)
                alsa_source.play_silence(1.5)
                try:
                    turns = await sub.await_for(lambda m: m.topic.endswith("/transcript"), 20)
                except TimeoutError:
                    print(daemon.log)
                    raise
                assert turns[0].json()["text"] == fixture.text, daemon.log
                code = await daemon.stop(signal.SIGTERM)
            finally:
                await daemon.ensure_stopped()
        assert code == 0, daemon.log
