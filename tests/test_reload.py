"""SIGHUP re-reads the config: an invalid file is rejected and the daemon keeps running on
the old one; an endpointing change reaches the live session as UpdateConfiguration."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from edgecap.sim.streaming import StreamingSimulator
from edgecap.sim.tokens import TokenServiceSimulator
from tests.daemon_proc import DaemonProcess, stack_config
from tests.harness import AlsaFifoSource, MosquittoBroker, MqttCollector, SpeechFixture

pytestmark = pytest.mark.integration

CREDENTIAL = "team-credential-reload-91c"


async def test_sighup_rejects_a_bad_file_and_updates_endpointing_live(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    fixture = speech_fixtures[1]
    async with (
        StreamingSimulator(script=[fixture.text]) as sim,
        TokenServiceSimulator(sim, credential=CREDENTIAL) as tokens,
    ):

        def config(**endpointing: object) -> Path:
            return stack_config(
                tmp_path,
                device_id="reload-dev",
                alsa_device=alsa_source.device,
                token_service_url=tokens.base_url,
                streaming_url=sim.url,
                mqtt_port=mqtt_broker.port,
                sections={"endpointing": endpointing},
            )

        path = config(min_turn_silence=400, max_turn_silence=1280)
        env = {**alsa_source.env, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": CREDENTIAL}
        with MqttCollector("127.0.0.1", mqtt_broker.port, ["edgecap/reload-dev/transcript"]) as sub:
            daemon = await DaemonProcess(path, env).start()
            try:
                session = await sim.wait_for_session(0)
                await sim.wait_until(lambda: session.begin is not None, "Begin")
                assert daemon.proc is not None

                # 1. an invalid file (a typo'd key): rejected, still running, old config kept
                path.write_text(path.read_text().replace("max_turn_silence", "max_turn_silnce"))
                daemon.proc.send_signal(signal.SIGHUP)
                async with asyncio.timeout(10):
                    line = await daemon.wait_log("reload rejected")
                assert "previous config" in line
                assert any("max_turn_silnce" in ln for ln in daemon.stderr_lines)
                assert daemon.proc.returncode is None
                assert session.update_configurations == []

                # 2. a valid endpointing change: sent on the same session, no reconnect
                config(min_turn_silence=600, max_turn_silence=2000)
                daemon.proc.send_signal(signal.SIGHUP)
                async with asyncio.timeout(10):
                    await sim.wait_until(lambda: bool(session.update_configurations))
                update = session.update_configurations[0]
                assert update["min_turn_silence"] == 600
                assert update["max_turn_silence"] == 2000
                assert len(sim.sessions) == 1
                assert not session.closed

                # and the session still transcribes
                alsa_source.play_silence(0.5)
                alsa_source.play_wav(fixture.path)
                alsa_source.play_silence(2.5)
                turns = await sub.await_for(lambda m: True, 20)
                assert turns[0].json()["text"] == fixture.text
                code = await daemon.stop(signal.SIGTERM)
            finally:
                await daemon.ensure_stopped()
        assert code == 0, daemon.log
