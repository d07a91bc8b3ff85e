"""Control over MQTT end to end: the real daemon on the FIFO microphone, mosquitto and the
simulators. The privacy mute (no token, no session, no audio while on; survives a
restart; a bad payload changes nothing), the gate switched at run time, keyterms and
endpointing sent to the live session as UpdateConfiguration, a bad value refused with a
reply naming it, and the settings kept across a restart; speech the provider does not
transcribe is reported as an event."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from edgecap.sim.records import SessionRecord
from tests.daemon_proc import DaemonProcess, simulated_stack
from tests.harness import (
    AlsaFifoSource,
    Message,
    MosquittoBroker,
    MqttCollector,
    SpeechFixture,
    read_retained,
)
from tests.harness import publish as mqtt_publish

pytestmark = pytest.mark.integration

DEVICE = "ctl"
T = f"edgecap/{DEVICE}"
CREDENTIAL = "team-credential-control-18"
WAIT = 20.0


def state_is(state: str) -> Any:
    return lambda m: m.topic == f"{T}/status" and m.json()["state"] == state


def on(topic: str, payload: bytes | None = None) -> Any:
    return lambda m: m.topic == topic and (payload is None or m.payload == payload)


def result(m: Message) -> bool:
    return m.topic == f"{T}/set/result"


def live(sim_sessions: list[SessionRecord]) -> list[SessionRecord]:
    return [s for s in sim_sessions if s.begin is not None and not s.closed]


async def test_mute_and_runtime_settings_over_mqtt(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    a, b = speech_fixtures[0], speech_fixtures[1]
    port = mqtt_broker.port

    async def send(topic: str, payload: bytes | str) -> None:
        await asyncio.to_thread(mqtt_publish, "127.0.0.1", port, topic, payload)

    async with simulated_stack(
        tmp_path,
        device_id=DEVICE,
        credential=CREDENTIAL,
        alsa=alsa_source,
        mqtt_port=port,
        script=[b.text],
        sections={"session": {"gate": "voice", "idle_close_seconds": 2.0}},
    ) as (sim, tokens, config, env):
        with MqttCollector("127.0.0.1", port, [f"{T}/#"]) as sub:
            daemon = await DaemonProcess(config, env).start()
            try:
                await sub.await_for(state_is("listening"), WAIT)
                await sub.await_for(on(f"{T}/mute", b"OFF"), WAIT)

                # 1. mute ON: an utterance goes nowhere (no token, no session, no audio)
                sub.clear()
                await send(f"{T}/mute/set", "ON")
                await sub.await_for(on(f"{T}/mute", b"ON"), WAIT)
                await sub.await_for(state_is("muted"), WAIT)
                await alsa_source.play_wav(a.path).await_done(WAIT)
                await alsa_source.play_silence(1.0).await_done(WAIT)
                assert tokens.requests == []
                assert sim.sessions == []

                # 2. a bad payload changes nothing; the daemon carries on
                await send(f"{T}/mute/set", "banana")
                await daemon.wait_log("mute command ignored")
                assert daemon.proc is not None
                assert daemon.proc.returncode is None
                assert not any(on(f"{T}/mute", b"OFF")(m) for m in sub.messages)

                # 3. mute OFF: the next utterance is transcribed
                await send(f"{T}/mute/set", "OFF")
                await sub.await_for(state_is("listening"), WAIT)
                alsa_source.play_wav(b.path)
                alsa_source.play_silence(2.5)
                turns = await sub.await_for(on(f"{T}/transcript"), WAIT)
                assert turns[0].json()["text"] == b.text
                assert len(sim.sessions) == 1
                assert sim.sessions[0].audio_ms < (b.duration_ms + 4000)  # none of `a`

                # 3b. speech the provider does not transcribe: an event, counted in the stats
                first = sim.sessions[0]
                await sim.wait_until(lambda: first.closed, "the idle session closed")
                sim.settings.speech_threshold_dbfs = 0.0  # a provider that hears nothing
                alsa_source.play_wav(a.path)
                alsa_source.play_silence(1.0)
                event = (await sub.await_for(on(f"{T}/event"), WAIT))[0].json()
                assert event["event"] == "speech_without_transcript"
                assert event["session_id"] == sim.sessions[1].session_id
                assert 0.3 <= event["speech_seconds"] <= a.duration_ms / 1000 + 1
                await sub.await_for(
                    lambda m: (
                        m.topic == f"{T}/stats" and m.json()["speech_without_transcript"] == 1
                    ),
                    WAIT,
                )
                sim.settings.speech_threshold_dbfs = -40.0

                # 4. the gate switched to `always` over MQTT: a session stays open
                sub.clear()
                await send(f"{T}/set", '{"gate": "always"}')
                reply = (await sub.await_for(result, WAIT))[0].json()
                assert reply["ok"] is True
                assert reply["applied"] == {"gate": "now"}
                await sim.wait_until(lambda: len(live(sim.sessions)) == 1, "a session open")
                session = live(sim.sessions)[0]
                opened = len(sim.sessions)

                # 5. keyterms and endpointing reach it live (UpdateConfiguration)
                sub.clear()
                change = {
                    "keyterms": ["edgecap", "Kubernetes"],
                    "min_turn_silence": 600,
                    "max_turn_silence": 2000,
                }
                await send(f"{T}/set", json.dumps(change))
                reply = (await sub.await_for(result, WAIT))[0].json()
                assert reply["ok"] is True, reply
                assert set(reply["applied"].values()) == {"live"}
                await sim.wait_until(lambda: bool(session.update_configurations), "update")
                update = session.update_configurations[0]
                assert update["keyterms_prompt"] == ["edgecap", "Kubernetes"]
                assert (update["min_turn_silence"], update["max_turn_silence"]) == (600, 2000)
                assert len(sim.sessions) == opened
                assert not session.closed

                # 6. a bad value: refused, naming it; nothing changes
                sub.clear()
                await send(f"{T}/set", '{"max_turn_silence": 20}')
                reply = (await sub.await_for(result, WAIT))[0].json()
                assert reply["ok"] is False
                assert (reply["key"], reply["value"]) == ("max_turn_silence", 20)
                assert "endpointing.max_turn_silence" in reply["error"]
                settings = await asyncio.to_thread(
                    read_retained, "127.0.0.1", port, f"{T}/settings"
                )
                assert settings is not None
                assert json.loads(settings)["max_turn_silence"] == 2000
                assert len(session.update_configurations) == 1

                # 7. mute ON ends the open session at once; then a restart
                await send(f"{T}/mute/set", "ON")
                await sim.wait_until(lambda: session.closed, "the session closed")
                assert session.terminate_received
                assert await daemon.stop(signal.SIGTERM) == 0, daemon.log
            finally:
                await daemon.ensure_stopped()

            # 8. after the restart: still muted; the settings made over MQTT still apply
            sub.clear()
            sessions_before = len(sim.sessions)
            daemon = await DaemonProcess(config, env).start()
            try:
                await sub.await_for(state_is("muted"), WAIT)
                assert len(sim.sessions) == sessions_before
                await send(f"{T}/mute/set", "OFF")
                new = await sim.wait_for_session(sessions_before)  # `always`: opens at once
                await sim.wait_until(lambda: new.begin is not None, "Begin")
                assert new.connect_params is not None
                assert new.connect_params.keyterms == ["edgecap", "Kubernetes"]
                assert new.connect_params.endpointing.min_turn_silence_ms == 600
                assert new.connect_params.endpointing.max_turn_silence_ms == 2000
                assert "keyterms" not in config.read_text()  # the file stays the user's
                assert await daemon.stop(signal.SIGTERM) == 0, daemon.log
            finally:
                await daemon.ensure_stopped()
