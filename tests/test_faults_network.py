"""Fault matrix, the network: a token service that accepts the connection and never answers,
a streaming server that never answers the WebSocket upgrade, one that upgrades and never
sends `Begin`, a broker frozen with SIGSTOP, and name lookups that hang. For each, with the
real daemon, real ALSA capture, mosquitto and the simulators: one clear line in the log and
the MQTT status, the audio captured meanwhile kept and transcribed once the service is back,
and an exit 0 within 5 s of SIGTERM while the dependency hangs."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import pytest

from edgecap.sim.faults import FaultPlan
from edgecap.sim.streaming import StreamingSimulator
from edgecap.sim.tokens import TokenServiceSimulator
from tests.daemon_proc import DaemonProcess, simulated_stack, write_config
from tests.harness import AlsaFifoSource, MosquittoBroker, MqttCollector, SpeechFixture
from tests.strict_json import strict_loads

pytestmark = pytest.mark.faults

CREDENTIAL = "team-credential-faults-net"
DEVICE_ID = "net-faults"
TIMEOUTS = {
    "connect_timeout_seconds": 2.0,
    "begin_timeout_seconds": 2.0,
    "reconnect_max_seconds": 2.0,
}
Hang = Literal["token", "handshake", "begin"]


def is_status(state: str, needle: str = "") -> Callable[[Any], bool]:
    def check(m: Any) -> bool:
        if not m.topic.endswith("/status"):
            return False
        status = strict_loads(m.payload)
        return bool(status["state"] == state and needle in status["detail"])

    return check


@asynccontextmanager
async def stack(
    tmp_path: Path, broker: MosquittoBroker, source: AlsaFifoSource, script: list[str]
) -> AsyncIterator[tuple[StreamingSimulator, TokenServiceSimulator, DaemonProcess, MqttCollector]]:
    async with simulated_stack(
        tmp_path,
        device_id=DEVICE_ID,
        credential=CREDENTIAL,
        alsa=source,
        mqtt_port=broker.port,
        script=script,
        sections={"auth": {"request_timeout_seconds": 2.0}, "streaming": TIMEOUTS},
    ) as (sim, tokens, config, env):
        with MqttCollector("127.0.0.1", broker.port, [f"edgecap/{DEVICE_ID}/#"]) as sub:
            daemon = DaemonProcess(config, env)
            try:
                yield sim, tokens, daemon, sub
            finally:
                await daemon.ensure_stopped()


def start_hang(kind: Hang, sim: StreamingSimulator, tokens: TokenServiceSimulator) -> None:
    if kind == "token":
        tokens.slow_delay_seconds = 3600.0  # reads the request, never answers
        tokens.mode = "slow"
    elif kind == "handshake":
        sim.default_fault = FaultPlan.handshake_hang()
    else:
        sim.default_fault = FaultPlan.no_begin()


def end_hang(kind: Hang, sim: StreamingSimulator, tokens: TokenServiceSimulator) -> None:
    if kind == "token":
        tokens.mode = "ok"
    else:
        sim.default_fault = None


EXPECTED: dict[Hang, str] = {
    "token": "did not answer within 2 s",
    "handshake": "did not complete the WebSocket handshake within 2 s",
    "begin": "accepted the connection but sent no Begin within 2 s",
}


@pytest.mark.parametrize("kind", ["token", "handshake", "begin"])
async def test_a_service_that_never_answers_is_reported_and_nothing_is_lost(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
    kind: Hang,
) -> None:
    fixture = speech_fixtures[0]
    async with stack(tmp_path, mqtt_broker, alsa_source, [fixture.text]) as (
        sim,
        tokens,
        daemon,
        sub,
    ):
        start_hang(kind, sim, tokens)
        began = time.monotonic()
        await daemon.start()
        [*_, reported] = await sub.await_for(is_status("reconnecting", EXPECTED[kind]), 20)
        status = strict_loads(reported.payload)
        assert status["last_error"]["class"] == "transient"
        assert status["next_attempt_at"] is not None
        line = await asyncio.wait_for(daemon.wait_log(EXPECTED[kind]), 5)
        assert line.startswith("WARNING"), line
        took = time.monotonic() - began
        # the speech is captured while the service hangs, and kept
        alsa_source.play_wav(fixture.path)
        alsa_source.play_silence(1.5)
        await asyncio.sleep(fixture.duration_ms / 1000 + 1.0)  # the outage outlasts it
        if kind == "begin":  # the connection that never got Begin was closed by edgecap
            hung = sim.sessions[0]
            await asyncio.wait_for(sim.wait_closed(hung), 5)
            assert hung.closed_by == "client"
        end_hang(kind, sim, tokens)
        recovered = time.monotonic()
        turns = await sub.await_for(lambda m: m.topic.endswith("/transcript"), 30)
        assert strict_loads(turns[0].payload)["text"] == fixture.text  # nothing lost
        await sub.await_for(is_status("streaming"), 5)
        print(
            f"{kind}: reported after {took:.1f} s, recovered {time.monotonic() - recovered:.1f} s"
        )
        stopped = time.monotonic()
        assert await daemon.stop(signal.SIGTERM) == 0
        assert time.monotonic() - stopped < 5
        assert "Traceback" not in daemon.log


@pytest.mark.parametrize("kind", ["token", "handshake", "begin"])
async def test_sigterm_while_a_service_hangs_exits_within_5_s(
    tmp_path: Path, mqtt_broker: MosquittoBroker, alsa_source: AlsaFifoSource, kind: Hang
) -> None:
    async with stack(tmp_path, mqtt_broker, alsa_source, []) as (sim, tokens, daemon, _sub):
        start_hang(kind, sim, tokens)
        # long timeouts: the signal must not wait for them
        daemon.config.write_text(
            daemon.config.read_text()
            .replace("request_timeout_seconds = 2.0", "request_timeout_seconds = 60.0")
            .replace("connect_timeout_seconds = 2.0", "connect_timeout_seconds = 60.0")
            .replace("begin_timeout_seconds = 2.0", "begin_timeout_seconds = 60.0")
        )
        await daemon.start()
        if kind == "token":
            await tokens.wait_for_started(1)
        elif kind == "handshake":
            await sim.wait_until(lambda: sim.handshake_hangs > 0, "a hanging handshake")
        else:
            await sim.wait_for_session(0)
        await asyncio.sleep(0.5)  # well inside the request, connect or wait for Begin
        stopped = time.monotonic()
        assert await daemon.stop(signal.SIGTERM) == 0, daemon.log
        took = time.monotonic() - stopped
        assert took < 5, daemon.log
        assert "did not stop within" not in daemon.log  # not the last-resort timer
        print(f"SIGTERM while the {kind} hangs: exit 0 after {took:.2f} s")


async def test_a_frozen_broker_loses_nothing_and_does_not_hold_the_daemon(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    """SIGSTOP: the broker's TCP stays open and nothing answers (not even to a reconnect:
    the kernel still accepts connections for it). 30 s with a 5 s keepalive covers the
    client noticing, failing to reconnect and the transcripts piling up in the spool."""
    fixtures = speech_fixtures[:3]
    pid = mqtt_broker.pid
    assert pid is not None
    async with stack(tmp_path, mqtt_broker, alsa_source, [f.text for f in fixtures]) as (
        sim,
        _tokens,
        daemon,
        sub,
    ):
        daemon.config.write_text(daemon.config.read_text() + "keepalive_seconds = 5\n")
        await daemon.start()
        await sub.await_for(is_status("streaming"), 20)
        os.kill(pid, signal.SIGSTOP)
        try:
            stopped_at = time.monotonic()
            for f in fixtures:
                alsa_source.play_wav(f.path)
                alsa_source.play_silence(1.5)
            await sim.wait_for_final_turns(len(fixtures))  # transcribed while the broker sleeps
            await asyncio.wait_for(daemon.wait_log("MQTT"), 30)
            remaining = 30 - (time.monotonic() - stopped_at)
            if remaining > 0:
                await asyncio.sleep(remaining)  # the rest of the freeze
            assert daemon.proc is not None
            assert daemon.proc.returncode is None
        finally:
            os.kill(pid, signal.SIGCONT)
        thawed = time.monotonic()
        topic = f"edgecap/{DEVICE_ID}/transcript"
        turns = await sub.await_count(topic, len(fixtures), 60)
        # at least once: a turn the broker took just as it froze (its PUBACK lost) comes
        # again, with the same id; subscribers de-duplicate by id (docs/mqtt.md)
        while len(unique := {strict_loads(t.payload)["id"] for t in turns}) < len(fixtures):
            turns = await sub.await_count(topic, len(turns) + 1, 60)
        print(f"frozen broker: all turns delivered {time.monotonic() - thawed:.1f} s after SIGCONT")
        texts = {strict_loads(t.payload)["id"]: strict_loads(t.payload)["text"] for t in turns}
        assert len(unique) == len(fixtures)
        assert list(texts.values()) == [f.text for f in fixtures]
        assert await daemon.stop(signal.SIGTERM) == 0


async def test_sigterm_while_the_broker_is_frozen_exits_within_5_s(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    fixture = speech_fixtures[0]
    pid = mqtt_broker.pid
    assert pid is not None
    async with stack(tmp_path, mqtt_broker, alsa_source, [fixture.text]) as (
        sim,
        _tokens,
        daemon,
        sub,
    ):
        await daemon.start()
        await sub.await_for(is_status("streaming"), 20)
        os.kill(pid, signal.SIGSTOP)
        try:
            alsa_source.play_wav(fixture.path)
            alsa_source.play_silence(1.5)
            await sim.wait_for_final_turns(1)  # a turn waits for a PUBACK that cannot come
            stopped = time.monotonic()
            assert await daemon.stop(signal.SIGTERM) == 0
            took = time.monotonic() - stopped
            assert took < 5, daemon.log
            assert "stay in the spool for the next start" in daemon.log
            print(f"SIGTERM while the broker is frozen: exit 0 after {took:.2f} s")
        finally:
            os.kill(pid, signal.SIGCONT)


# -- name lookups that hang ------------------------------------------------------------------


def can_isolate_resolver() -> str | None:
    """Why a test cannot give the daemon its own /etc/resolv.conf (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (a private mount namespace for /etc/resolv.conf)"
    if shutil.which("unshare") is None:
        return "needs util-linux unshare"
    done = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    return None if done.returncode == 0 else f"unshare -m refused: {done.stderr.decode()}"


@pytest.fixture
def silent_dns(tmp_path: Path) -> Iterator[Path]:
    """A resolv.conf whose only name server takes queries and never answers (a UDP socket
    that is never read), with long resolver timeouts: every lookup of a name that is not
    in /etc/hosts hangs for minutes."""
    reason = can_isolate_resolver()
    if reason is not None:
        pytest.skip(reason)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.2", 53))
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.2\noptions timeout:30 attempts:5\n")
    yield resolv
    sink.close()


def in_namespace_with(resolv: Path) -> list[str]:
    return [
        "unshare",
        "-m",
        "sh",
        "-c",
        f'mount --bind "{resolv}" /etc/resolv.conf && exec "$0" "$@"',
        sys.executable,
    ]


async def test_hanging_name_lookups_are_reported_and_sigterm_still_exits_within_5_s(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    silent_dns: Path,
) -> None:
    """The token service and the streaming server are looked up by name and the lookups
    hang; MQTT (by address) works, so the status says what is wrong."""
    config = write_config(
        tmp_path / "edgecap.toml",
        {"device_id": DEVICE_ID, "state_dir": str(tmp_path / "state")},
        {
            "audio": {"device": alsa_source.device},
            "auth": {
                "token_service_url": "https://tokens.edgecap-hang.test/v1/assemblyai",
                "request_timeout_seconds": 2.0,
            },
            "streaming": {"url": "wss://streaming.edgecap-hang.test/v3/ws", **TIMEOUTS},
            "session": {"gate": "always"},
            "mqtt": {"host": "127.0.0.1", "port": mqtt_broker.port},
        },
    )
    env = {**alsa_source.env, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": CREDENTIAL}
    with MqttCollector("127.0.0.1", mqtt_broker.port, [f"edgecap/{DEVICE_ID}/#"]) as sub:
        daemon = DaemonProcess(config, env, prefix=in_namespace_with(silent_dns))
        try:
            await daemon.start()
            [*_, reported] = await sub.await_for(
                is_status("reconnecting", "tokens.edgecap-hang.test"), 20
            )
            assert "did not answer within 2 s" in strict_loads(reported.payload)["detail"]
            await asyncio.sleep(3)  # more lookups start and hang
            stopped = time.monotonic()
            assert await daemon.stop(signal.SIGTERM) == 0, daemon.log
            assert time.monotonic() - stopped < 5, daemon.log
        finally:
            await daemon.ensure_stopped()


async def test_a_broker_name_that_never_resolves_is_reported_and_does_not_hold_the_exit(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    silent_dns: Path,
) -> None:
    async with simulated_stack(
        tmp_path,
        device_id=DEVICE_ID,
        credential=CREDENTIAL,
        alsa=alsa_source,
        mqtt_port=mqtt_broker.port,
    ) as (sim, _, config, env):
        config.write_text(
            config.read_text().replace('host = "127.0.0.1"', 'host = "mqtt.edgecap-hang.test"')
        )
        daemon = DaemonProcess(config, env, prefix=in_namespace_with(silent_dns))
        try:
            await daemon.start()
            await sim.wait_for_session(0)  # streaming does not wait for MQTT
            line = await asyncio.wait_for(daemon.wait_log("MQTT: no connection"), 30)
            assert "mqtt.edgecap-hang.test" in line
            assert "name lookup" in line
            stopped = time.monotonic()
            assert await daemon.stop(signal.SIGTERM) == 0, daemon.log
            assert time.monotonic() - stopped < 5, daemon.log
        finally:
            await daemon.ensure_stopped()
