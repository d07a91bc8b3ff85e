"""End to end on real parts: speech through ALSA (file plugin + FIFO) -> the daemon ->
the v3 streaming simulator (tokens from the token-service simulator) -> mosquitto -> an
MQTT subscriber. Fails if a turn is lost, duplicated, reordered or has the wrong text."""

from __future__ import annotations

import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

from edgecap.sim.streaming import StreamingSimulator
from edgecap.sim.tokens import TokenServiceSimulator
from tests.daemon_proc import DaemonProcess, write_config
from tests.harness import AlsaFifoSource, MosquittoBroker, MqttCollector, SpeechFixture
from tests.harness.mqtt import read_retained

pytestmark = pytest.mark.integration

CREDENTIAL = "team-credential-e2e-7f3a9c"
DEVICE = "e2e-dev"


def parse_ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def test_speech_through_alsa_arrives_as_turns_on_mqtt(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    fixtures = speech_fixtures[:4]
    async with (
        StreamingSimulator(script=[f.text for f in fixtures]) as sim,
        TokenServiceSimulator(sim, credential=CREDENTIAL) as tokens,
    ):
        config = write_config(
            tmp_path / "edgecap.toml",
            {"device_id": DEVICE, "state_dir": str(tmp_path / "state")},
            {
                "audio": {"device": alsa_source.device},
                "auth": {"token_service_url": tokens.base_url},
                "streaming": {"url": sim.url},
                "mqtt": {"host": "127.0.0.1", "port": mqtt_broker.port},
            },
        )
        topic = f"edgecap/{DEVICE}/transcript"
        with MqttCollector("127.0.0.1", mqtt_broker.port, [f"edgecap/{DEVICE}/#"]) as sub:
            daemon = await DaemonProcess(
                config, {**alsa_source.env, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": CREDENTIAL}
            ).start()
            try:
                await sub.await_for(
                    lambda m: m.topic.endswith("/availability") and m.text == "online", 15
                )
                handles = []
                for f in fixtures:
                    alsa_source.play_silence(1.0)
                    handles.append(alsa_source.play_wav(f.path))
                alsa_source.play_silence(2.0)
                # the default voice gate opens the session when the first sentence starts
                session = await sim.wait_for_session(0)
                total = sum(h.duration_s for h in handles) + len(fixtures) + 2
                turns = await sub.await_for(
                    lambda m: m.topic == topic, timeout=total + 15, count=len(fixtures)
                )
                code = await daemon.stop(signal.SIGTERM)
            finally:
                await daemon.ensure_stopped()
            assert code == 0, daemon.log
            # anything that arrived after the wait (a duplicate) counts too
            turns = sub.on_topic(topic)

        payloads = [t.json() for t in turns]
        assert [p["text"] for p in payloads] == [f.text for f in fixtures], daemon.log
        assert len({p["id"] for p in payloads}) == len(payloads)
        # with the shipped settings a session ends about a second after the talk, so a
        # pause of a second or more between sentences may start a new session: within
        # each session the turns count from 0
        by_id = {s.session_id: s for s in sim.sessions}
        orders: dict[str, list[int]] = {}
        for p in payloads:
            orders.setdefault(p["session_id"], []).append(p["turn_order"])
        assert all(o == list(range(len(o))) for o in orders.values()), orders
        assert payloads[0]["session_id"] == session.session_id
        for p, f, h in zip(payloads, fixtures, handles, strict=True):
            assert p["schema"] == "edgecap.turn/1"
            assert p["device_id"] == DEVICE
            assert p["session_id"] in by_id
            assert p["id"] == f"{p['session_id']}:{p['turn_order']}"
            assert p["words"][0]["text"] == f.first_word
            assert [w["text"] for w in p["words"]] == f.text.split()
            assert all(set(w) == {"text", "start_ms", "end_ms", "confidence"} for w in p["words"])
            assert 0 < p["confidence"] <= 1
            assert 0 <= p["end_of_turn_confidence"] <= 1
            assert p["language_code"] is None
            # the words were spoken while the fixture played (capture-time stamps)
            assert h.started_wall is not None
            assert h.finished_wall is not None
            started, ended = parse_ts(p["started_at"]), parse_ts(p["ended_at"])
            assert h.started_wall - 0.3 <= started < ended <= h.finished_wall + 0.3
        assert max(parse_ts(p["ended_at"]) for p in payloads) < time.time()
        # each session opened on a voice onset, and the pre-roll put audio before the
        # first word: the server heard each sentence from its very beginning
        for p in payloads:
            if p["turn_order"] == 0:
                assert p["words"][0]["start_ms"] >= 200, p["words"][0]

        # clean ends: Terminate sent, Termination received, each session closed normally
        await sim.wait_until(lambda: all(s.closed for s in sim.sessions), "sessions closed")
        for sess in sim.sessions:
            assert sess.terminate_received
            assert sess.close_code == 1000
            assert sess.error is None  # no 3007 from the rate or duration checks
            assert all(size % 1600 == 0 for size in sess.frame_sizes)
        # one fresh single-use token per session, plus at most one prefetched spare
        used = [sess.token for sess in sim.sessions]
        assert len(set(used)) == len(used) == len(orders)
        assert len(tokens.requests) <= len(sim.sessions) + 1
        assert (
            read_retained("127.0.0.1", mqtt_broker.port, f"edgecap/{DEVICE}/availability", 5)
            == b"offline"
        )
        assert CREDENTIAL not in daemon.log
