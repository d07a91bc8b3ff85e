"""Durable delivery through the real daemon (subprocess) on real parts: tone bursts through
ALSA (file plugin + FIFO) -> the daemon -> the v3 streaming simulator -> mosquitto.

- the broker is stopped and restarted several times while turns are produced: every turn
  arrives, in order, none lost; a turn seen twice carries the same id;
- the daemon is SIGKILLed with finalized turns it could not deliver (broker down): they
  are on disk, and the next start publishes them;
- retained availability as a fresh `mosquitto_sub` sees it: `online`, then `offline` after
  a clean stop, and `offline` (the last will) after a kill.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgecap.mqtt.spooldb import FILENAME
from edgecap.sim.streaming import StreamingSimulator
from edgecap.sim.tokens import TokenServiceSimulator
from tests.daemon_proc import DaemonProcess, write_config
from tests.harness import (
    AlsaFifoSource,
    MosquittoBroker,
    MqttCollector,
    mosquitto_sub_one,
    silence,
    tone,
)

pytestmark = pytest.mark.integration

CREDENTIAL = "team-credential-durable-51c2"
DEVICE = "durable-dev"
LOCAL = "127.0.0.1"
TRANSCRIPT = f"edgecap/{DEVICE}/transcript"
AVAILABILITY = f"edgecap/{DEVICE}/availability"


@dataclass(frozen=True)
class Arrival:
    at: float
    payload: dict[str, Any]


class DurableSubscriber:
    """A QoS 1 subscriber with a persistent session (clean_session=False), so the broker
    queues what it accepts while this client is away (e.g. right after a broker restart)."""

    def __init__(self, port: int, topic: str) -> None:
        self.topic = topic
        self.arrivals: list[Arrival] = []
        self._cond = threading.Condition()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"durable-sub-{uuid.uuid4().hex[:8]}",
            clean_session=False,
        )
        self._client.reconnect_delay_set(1, 1)
        self._client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._port = port

    def _on_subscribe(self, *args: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.arrivals.append(Arrival(time.time(), json.loads(msg.payload)))
            self._cond.notify_all()

    def start(self) -> DurableSubscriber:
        self._client.connect(LOCAL, self._port, keepalive=10)
        self._client.loop_start()
        assert self._subscribed.wait(5), "no SUBACK"
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def distinct_ids(self) -> list[str]:
        with self._cond:
            return list(dict.fromkeys(a.payload["id"] for a in self.arrivals))

    async def wait_distinct(self, count: int, timeout: float) -> None:  # noqa: ASYNC109
        def enough() -> bool:
            return len(self.distinct_ids()) >= count

        with self._cond:
            if enough():
                return
        await asyncio.wait_for(asyncio.to_thread(self._wait, enough, timeout), timeout + 1)

    def _wait(self, predicate: Any, timeout: float) -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise TimeoutError(f"{len(self.distinct_ids())} distinct turns arrived")


def burst() -> bytes:
    """Loud enough for the simulator to call it speech, then silence that ends the turn."""
    return tone(0.6, 440.0, amplitude=0.3) + silence(1.0)


def config(tmp_path: Path, broker: int, sim: StreamingSimulator, tokens_url: str) -> Path:
    return write_config(
        tmp_path / "edgecap.toml",
        {"device_id": DEVICE, "state_dir": str(tmp_path / "state")},
        {
            "audio": {"device": "testcap"},
            "auth": {"token_service_url": tokens_url},
            "streaming": {"url": sim.url},
            "session": {"gate": "always"},  # streaming from the start, speech or not
            "mqtt": {
                "host": LOCAL,
                "port": broker,
                "keepalive_seconds": 5,
                "reconnect_min_seconds": 1,
                "reconnect_max_seconds": 1,
            },
        },
    )


def expected_ids(sim: StreamingSimulator) -> list[str]:
    return [
        f"{record.session_id}:{turn['turn_order']}"
        for record in sim.sessions
        for turn in record.final_turns
        if turn["turn_is_formatted"]
    ]


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture
async def simulators() -> AsyncIterator[tuple[StreamingSimulator, TokenServiceSimulator]]:
    script = [f"turn number {n}" for n in range(40)]
    async with (
        StreamingSimulator(script=script) as sim,
        TokenServiceSimulator(sim, credential=CREDENTIAL) as tokens,
    ):
        yield sim, tokens


async def test_turns_survive_broker_restarts_in_order(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    simulators: tuple[StreamingSimulator, TokenServiceSimulator],
) -> None:
    sim, tokens = simulators
    turns, restarts = 12, 3
    sub = DurableSubscriber(mqtt_broker.port, TRANSCRIPT).start()
    env = {**alsa_source.env, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": CREDENTIAL}
    daemon = await DaemonProcess(
        config(tmp_path, mqtt_broker.port, sim, tokens.base_url), env
    ).start()
    try:
        await daemon.wait_log("MQTT connected")
        await sim.wait_for_begin(0)
        for _ in range(turns):
            alsa_source.play_pcm(burst())
        alsa_source.play_silence(1.0)
        down_seconds: list[float] = []
        for k in range(restarts):
            # Down while two turns are finalized, up again, then one turn with the broker up.
            await sim.wait_for_final_turns(3 * k + 1, formatted=True)
            mqtt_broker.stop()
            went_down = time.monotonic()
            await sim.wait_for_final_turns(3 * k + 3, formatted=True)
            mqtt_broker.start()
            down_seconds.append(time.monotonic() - went_down)
        await sim.wait_for_final_turns(turns, formatted=True)
        await sub.wait_distinct(turns, timeout=30)
        code = await daemon.stop(signal.SIGTERM)
    finally:
        await daemon.ensure_stopped()
        sub.stop()
    assert code == 0, daemon.log

    want = expected_ids(sim)
    assert len(want) == turns
    assert sub.distinct_ids() == want, daemon.log  # none lost, first arrivals in order
    by_id: dict[str, dict[str, Any]] = {}
    for a in sub.arrivals:
        seen = by_id.setdefault(a.payload["id"], a.payload)
        assert seen == a.payload  # a redelivery is the same message, same id
    assert [by_id[i]["text"] for i in want] == [f"turn number {n}" for n in range(turns)]
    duplicates = len(sub.arrivals) - turns
    first_seen: dict[str, float] = {}
    for a in sub.arrivals:
        first_seen.setdefault(a.payload["id"], a.at)
    delays = [first_seen[i] - ts(by_id[i]["ended_at"]) for i in want]
    print(  # the figures the issue asks for (pytest -s shows them)
        f"\nbroker restarts: {restarts} (down {', '.join(f'{d:.1f}' for d in down_seconds)} s); "
        f"turns: {turns} finalized, {turns} delivered, 0 lost; duplicates: {duplicates}; "
        f"delivery delay after the last word: max {max(delays):.1f} s, "
        f"median {sorted(delays)[len(delays) // 2]:.1f} s"
    )
    assert mqtt_broker.starts == restarts + 1


async def test_turns_spooled_before_a_kill_are_delivered_after_restart(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    simulators: tuple[StreamingSimulator, TokenServiceSimulator],
) -> None:
    sim, tokens = simulators
    env = {**alsa_source.env, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": CREDENTIAL}
    path = config(tmp_path, mqtt_broker.port, sim, tokens.base_url)
    daemon = await DaemonProcess(path, env).start()
    try:
        await daemon.wait_log("MQTT connected")
        await sim.wait_for_begin(0)
        mqtt_broker.stop()  # nothing can be acknowledged from now on
        for _ in range(3):
            alsa_source.play_pcm(burst())
        line = 0
        for _ in range(3):
            found = await daemon.wait_log("spooled for MQTT", after=line)
            line = daemon.stderr_lines.index(found, line) + 1
        assert await daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    finally:
        await daemon.ensure_stopped()
    killed_ids = expected_ids(sim)
    assert len(killed_ids) == 3
    db = sqlite3.connect(tmp_path / "state" / FILENAME)
    assert [r[0] for r in db.execute("SELECT id FROM turns ORDER BY seq")] == killed_ids
    db.close()

    mqtt_broker.start()
    with MqttCollector(LOCAL, mqtt_broker.port, TRANSCRIPT) as sub:
        again = await DaemonProcess(path, env).start()
        try:
            got = await sub.await_for(lambda m: True, timeout=20, count=3)
            await again.wait_log("MQTT connected")
            assert await again.stop(signal.SIGTERM) == 0
        finally:
            await again.ensure_stopped()
    assert [m.json()["id"] for m in got[:3]] == killed_ids, again.log
    assert "3 undelivered turn(s) from a previous run" in again.log
    db = sqlite3.connect(tmp_path / "state" / FILENAME)
    assert db.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 0
    db.close()


async def test_retained_availability_seen_by_mosquitto_sub(
    tmp_path: Path, mqtt_broker: MosquittoBroker
) -> None:
    path = write_config(
        tmp_path / "edgecap.toml",
        {"device_id": DEVICE, "state_dir": str(tmp_path / "state")},
        {
            "audio": {"device": "edgecap_test_no_such_device", "reopen_min_seconds": 5.0},
            "auth": {"token_service_url": "http://127.0.0.1:9/v1"},
            "mqtt": {"host": LOCAL, "port": mqtt_broker.port},
        },
    )
    env = {"EDGECAP_TOKEN_SERVICE_CREDENTIAL": CREDENTIAL}

    def retained() -> bytes | None:
        got = mosquitto_sub_one(LOCAL, mqtt_broker.port, AVAILABILITY, timeout_s=3)
        return None if got is None else got[1].strip()

    with MqttCollector(LOCAL, mqtt_broker.port, AVAILABILITY) as sub:
        daemon = await DaemonProcess(path, env).start()
        try:
            await sub.await_for(lambda m: m.text == "online", 15)
            assert retained() == b"online"
            assert await daemon.stop(signal.SIGTERM) == 0
        finally:
            await daemon.ensure_stopped()
        assert retained() == b"offline"  # published before a clean disconnect

        sub.clear()
        daemon = await DaemonProcess(path, env).start()
        try:
            await sub.await_for(lambda m: m.text == "online", 15)
            assert retained() == b"online"
            await daemon.stop(signal.SIGKILL)
        finally:
            await daemon.ensure_stopped()
        await sub.await_for(lambda m: m.text == "offline", 10)  # the broker's last will
    assert retained() == b"offline"
