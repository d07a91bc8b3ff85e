"""The MQTT service against a real mosquitto: retained messages survive a broker that lost
them, Home Assistant's birth brings the discovery back, a full spool reports its evictions,
MQTT 5, and the opt-in topics. Turns are produced in-process (no audio needed here)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from edgecap.app.wiring import mqtt_service_settings
from edgecap.config import LoadedConfig, load_config
from edgecap.mqtt.service import MqttService
from edgecap.providers.assemblyai.messages import Turn, Word
from edgecap.turns.transcript import TranscriptTurn
from tests.daemon_proc import write_config
from tests.harness import MosquittoBroker, MqttCollector, mosquitto_pub, read_retained
from tests.strict_json import strict_loads

pytestmark = pytest.mark.integration

DEVICE = "mqtt-dev"
LOCAL = "127.0.0.1"
T = f"edgecap/{DEVICE}"
DISCOVERY = f"homeassistant/device/edgecap_{DEVICE}/config"


def loaded(
    tmp_path: Path, port: int, spool: dict[str, Any] | None = None, **mqtt: Any
) -> LoadedConfig:
    path = write_config(
        tmp_path / "edgecap.toml",
        {"device_id": DEVICE, "state_dir": str(tmp_path / "state")},
        {
            "auth": {"token_service_url": "http://127.0.0.1:9/v1"},
            "mqtt": {
                "host": LOCAL,
                "port": port,
                "reconnect_min_seconds": 1,
                "reconnect_max_seconds": 1,
                **mqtt,
            },
            "spool": spool or {},
        },
    )
    return load_config(path, {"EDGECAP_TOKEN_SERVICE_CREDENTIAL": "cred-abcdef"})


def make_turn(n: int, text: str | None = None) -> TranscriptTurn:
    return TranscriptTurn(
        id=f"sess:{n}",
        device_id=DEVICE,
        session_id="sess",
        turn_order=n,
        text=text or f"turn number {n}",
        confidence=0.9,
        end_of_turn_confidence=0.7,
        words=(),
        language_code=None,
        started_at=1_790_000_000.0 + n,
        ended_at=1_790_000_000.5 + n,
        speech_model="universal-streaming-english",
        formatted=True,
    )


async def connected(service: MqttService) -> None:
    """Wait for the connection (a threading.Event set on paho's thread)."""
    assert await asyncio.to_thread(service.publisher.connected.wait, 10), "not connected"


async def delivered(service: MqttService) -> None:
    """Wait until every turn handed to the broker was acknowledged, then check the spool."""
    done = asyncio.Event()
    service.outbox.on_drained(done.set)
    await asyncio.wait_for(done.wait(), 10)
    assert service.outbox.depth == 0


@pytest.fixture
async def service_factory(tmp_path: Path) -> AsyncIterator[Callable[..., MqttService]]:
    started: list[MqttService] = []

    def factory(port: int, **kwargs: Any) -> MqttService:
        service = MqttService(mqtt_service_settings(loaded(tmp_path, port, **kwargs)))
        service.start()
        started.append(service)
        return service

    yield factory
    for service in started:
        await service.stop()


async def test_retained_messages_come_back_after_the_broker_lost_them(
    mqtt_broker: MosquittoBroker, service_factory: Callable[..., MqttService]
) -> None:
    with MqttCollector(LOCAL, mqtt_broker.port, f"{T}/availability") as sub:
        service = service_factory(mqtt_broker.port, discovery=True)
        await sub.await_for(lambda m: m.text == "online", 10)
    assert read_retained(LOCAL, mqtt_broker.port, DISCOVERY) is not None
    stats = read_retained(LOCAL, mqtt_broker.port, f"{T}/stats")
    assert stats is not None
    assert strict_loads(stats)["schema"] == "edgecap.stats/1"

    # A broker crash without its persistence file: every retained message is gone, so
    # whatever a new subscriber gets was published again by edgecap after reconnecting.
    mqtt_broker.kill()
    mqtt_broker.persistence_file.unlink(missing_ok=True)
    mqtt_broker.start()
    with MqttCollector(LOCAL, mqtt_broker.port, [f"{T}/#", DISCOVERY]) as sub:
        await sub.await_for(lambda m: m.topic == f"{T}/availability" and m.text == "online", 10)
        await sub.await_for(lambda m: m.topic == DISCOVERY, 10)
        stats_again = await sub.await_for(lambda m: m.topic == f"{T}/stats", 10)
    assert service.publisher.connects == 2
    assert stats_again[-1].json()["schema"] == "edgecap.stats/1"
    assert read_retained(LOCAL, mqtt_broker.port, f"{T}/availability") == b"online"


async def test_retained_updates_in_quick_succession_are_sent_once_each(
    mqtt_broker: MosquittoBroker, service_factory: Callable[..., MqttService]
) -> None:
    """Several copies of one retained topic in flight at once (stats published twice within
    milliseconds) must not make each acknowledgement trigger another copy forever."""
    service = service_factory(mqtt_broker.port)
    await connected(service)
    topic = f"{T}/burst"
    with MqttCollector(LOCAL, mqtt_broker.port, topic) as sub:
        for n in range(20):
            service.publisher.publish(topic, str(n).encode(), qos=1, retain=True)
        await sub.await_for(lambda m: m.text == "19", 10)
        # every acknowledgement has arrived once the marker published after them arrives
        service.publisher.publish(topic, b"end", qos=1, retain=True)
        await sub.await_for(lambda m: m.text == "end", 10)
        received = len(sub.on_topic(topic))
    # 21 payloads, plus a re-send of the newest or two when acknowledgements cross on a
    # loaded machine; a loop would send copies without end
    assert received <= 24
    assert read_retained(LOCAL, mqtt_broker.port, topic) == b"end"


async def test_discovery_is_sent_again_when_home_assistant_comes_online(
    mqtt_broker: MosquittoBroker, service_factory: Callable[..., MqttService]
) -> None:
    with MqttCollector(LOCAL, mqtt_broker.port, DISCOVERY) as sub:
        service_factory(mqtt_broker.port, discovery=True)
        first = await sub.await_for(lambda m: True, 10)
        config = first[0].json()
        assert config["device"]["identifiers"] == [f"edgecap_{DEVICE}"]
        assert config["components"]["turn"]["platform"] == "event"
        mosquitto_pub(LOCAL, mqtt_broker.port, "homeassistant/status", "offline")
        mosquitto_pub(LOCAL, mqtt_broker.port, "homeassistant/status", "online")
        again = await sub.await_for(lambda m: True, 10, count=2)
        assert again[1].json() == config


async def test_no_discovery_unless_enabled(
    mqtt_broker: MosquittoBroker, service_factory: Callable[..., MqttService]
) -> None:
    with MqttCollector(LOCAL, mqtt_broker.port, f"{T}/availability") as sub:
        service = service_factory(mqtt_broker.port)
        await sub.await_for(lambda m: m.text == "online", 10)
    service.publish_turn(make_turn(0))
    await delivered(service)
    assert read_retained(LOCAL, mqtt_broker.port, DISCOVERY) is None


async def test_full_spool_evicts_oldest_and_reports_it_in_stats(
    tmp_path: Path,
    service_factory: Callable[..., MqttService],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = MosquittoBroker(tmp_path, start=False)  # the broker is down while turns come
    try:
        service = service_factory(broker.port, spool={"max_turns": 3})
        for n in range(5):
            service.publish_turn(make_turn(n))
        assert service.outbox.depth == 3
        assert service.delivery_counters().spool_evictions == 2
        assert "evicted 1 undelivered turn(s) because the spool is full" in caplog.text
        broker.start()
        with MqttCollector(LOCAL, broker.port, f"{T}/#") as sub:
            await connected(service)
            got = await sub.await_for(lambda m: m.topic == f"{T}/transcript", 10, count=3)
            assert [m.json()["id"] for m in got] == ["sess:2", "sess:3", "sess:4"]
            await delivered(service)
            service.publish_stats()
            stats = await sub.await_for(
                lambda m: m.topic == f"{T}/stats" and m.json()["delivered"] == 3, 10
            )
        assert stats[-1].json()["spool_evictions"] == 2
        assert stats[-1].json()["spool_depth"] == 0
    finally:
        broker.stop()


async def test_mqtt_5_delivers_and_acknowledges(
    mqtt_broker: MosquittoBroker, service_factory: Callable[..., MqttService]
) -> None:
    with MqttCollector(LOCAL, mqtt_broker.port, f"{T}/transcript") as sub:
        service = service_factory(mqtt_broker.port, protocol="5")
        service.publish_turn(make_turn(7, "hello over mqtt five"))
        got = await sub.await_for(lambda m: True, 10)
    assert got[0].json()["text"] == "hello over mqtt five"
    await delivered(service)


async def test_partials_and_hermes_only_when_enabled(
    mqtt_broker: MosquittoBroker, service_factory: Callable[..., MqttService]
) -> None:
    partial = Turn(
        turn_order=0,
        end_of_turn=False,
        turn_is_formatted=False,
        transcript="turn",
        end_of_turn_confidence=0.1,
        words=(Word("turn", 0, 90, 0.9, True), Word("on", 90, 150, 0.4, False)),
    )
    topics = [f"{T}/partial", f"{T}/transcript", "hermes/asr/textCaptured"]
    with MqttCollector(LOCAL, mqtt_broker.port, topics) as sub:
        plain = service_factory(mqtt_broker.port)
        await connected(plain)
        plain.publish_partial("sess", partial)
        plain.publish_turn(make_turn(0))
        await sub.await_for(lambda m: m.topic.endswith("/transcript"), 10)
        await plain.stop()
        assert [m.topic for m in sub.messages] == [f"{T}/transcript"]

        sub.clear()
        both = service_factory(mqtt_broker.port, partials=True, hermes=True)
        await connected(both)
        both.publish_partial("sess", partial)
        both.publish_turn(make_turn(1, "Turn on the lights."))
        await sub.await_for(lambda m: True, 10, count=3)
    by_topic = {m.topic: m.json() for m in sub.messages}
    assert by_topic[f"{T}/partial"]["text"] == "turn on"
    assert by_topic["hermes/asr/textCaptured"]["text"] == "Turn on the lights."
    assert by_topic["hermes/asr/textCaptured"]["siteId"] == DEVICE
    assert by_topic[f"{T}/transcript"]["id"] == "sess:1"


def labelled_turn(n: int, speaker: str, revision: int = 0) -> TranscriptTurn:
    return replace(make_turn(n, f"turn number {n}"), speaker=speaker, revision=revision)


async def test_a_speaker_revision_follows_its_turn_with_the_same_id_and_not_on_hermes(
    mqtt_broker: MosquittoBroker, service_factory: Callable[..., MqttService]
) -> None:
    topics = [f"{T}/transcript", "hermes/asr/textCaptured"]
    with MqttCollector(LOCAL, mqtt_broker.port, topics) as sub:
        service = service_factory(mqtt_broker.port, hermes=True)
        await connected(service)
        service.publish_turn(labelled_turn(0, "A"))
        await sub.await_for(lambda m: m.topic == f"{T}/transcript", 10)
        service.publish_turn(labelled_turn(0, "B", revision=1))
        service.publish_turn(labelled_turn(1, "A"))  # Hermes gets this one: a marker
        await sub.await_for(lambda m: m.topic == "hermes/asr/textCaptured", 10, count=2)
        await sub.await_for(lambda m: m.topic == f"{T}/transcript", 10, count=3)
    transcripts = [m.json() for m in sub.on_topic(f"{T}/transcript")]
    assert [(p["id"], p.get("revision", 0), p["speaker"]) for p in transcripts] == [
        ("sess:0", 0, "A"),
        ("sess:0", 1, "B"),
        ("sess:1", 0, "A"),
    ]
    hermes = [m.json()["sessionId"] for m in sub.on_topic("hermes/asr/textCaptured")]
    assert hermes == ["sess:0", "sess:1"]  # the revision was not a second voice command
    await delivered(service)


async def test_a_revision_replaces_its_turn_while_the_broker_is_down(
    tmp_path: Path, service_factory: Callable[..., MqttService]
) -> None:
    broker = MosquittoBroker(tmp_path, start=False)
    try:
        service = service_factory(broker.port)
        service.publish_turn(labelled_turn(0, "A"))
        service.publish_turn(labelled_turn(1, "B"))
        service.publish_turn(labelled_turn(0, "B", revision=1))
        assert service.outbox.depth == 2
        broker.start()
        with MqttCollector(LOCAL, broker.port, f"{T}/transcript") as sub:
            got = await sub.await_for(lambda m: True, 10, count=2)
            await delivered(service)
        assert [(m.json()["id"], m.json()["revision"]) for m in got[:1]] == [("sess:0", 1)]
        assert [m.json()["id"] for m in got] == ["sess:0", "sess:1"]
        assert len(sub.messages) == 2  # the superseded payload was never sent
    finally:
        broker.stop()
