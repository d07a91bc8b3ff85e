"""The benchmark's moving parts: the simulator host, the MQTT observer, client processes.

The broker (`MosquittoBroker`) and the sd_notify socket (`NotifySocket`) come from the test
harness; the simulated microphone (`AlsaFifoSource`) from `edgecap.sim.microphone`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

REPO = Path(__file__).resolve().parent.parent
CALL_TIMEOUT_S = 120.0


class BenchError(RuntimeError):
    """Something the benchmark needs did not happen."""


# CPUs the contenders run on (`taskset`), so they all share one core's conditions on a
# shared virtual machine; the harness keeps to the others. Empty: no pinning.
CONTENDER_CPUS: set[int] = set()


def pin_harness() -> set[int]:
    """Give the contenders the last CPU and this process (and its later children and
    threads) the rest; returns the contenders' CPUs (empty on a single-CPU machine)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return set()
    os.sched_setaffinity(0, set(cpus[:-1]))
    CONTENDER_CPUS.clear()
    CONTENDER_CPUS.add(cpus[-1])
    return set(CONTENDER_CPUS)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: ours without EDGECAP_*, the repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECAP_")}
    env.pop("NOTIFY_SOCKET", None)
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class Changes:
    """Wakes coroutines on the loop whenever something changed (from any thread)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Call on the loop."""
        self._event.set()
        self._event = asyncio.Event()

    def notify_threadsafe(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed
            self._loop.call_soon_threadsafe(self.notify)

    # A timeout argument (not asyncio.timeout) so the failure can say what was awaited.
    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float,  # noqa: ASYNC109
        what: str,
    ) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._event.wait()
        except TimeoutError:
            raise BenchError(f"{what}: not within {timeout:g} s") from None


# -- the simulator host ------------------------------------------------------------------


class SimHost:
    """`python -m bench.simhost` as a child process, driven over its stdin/stdout."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError("simulator host not started")
        return self.proc.pid

    async def start(self) -> SimHost:
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.simhost",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=REPO,
                env=child_env(),
                limit=16 * 1024 * 1024,  # session summaries can be long lines
            )
        assert self.proc.stdout is not None
        async with asyncio.timeout(30):
            first = json.loads(await self.proc.stdout.readline() or b"{}")
        if first.get("event") != "ready":
            raise BenchError(f"simulator host did not start; see {self.log_path}")
        self._reader = asyncio.create_task(self._read_replies())
        return self

    async def _read_replies(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            reply = json.loads(line)
            future = self._pending.pop(reply.get("id"), None)
            if future is not None and not future.done():
                future.set_result(reply)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BenchError(f"simulator host exited; see {self.log_path}"))

    async def call(self, cmd: str, timeout: float = CALL_TIMEOUT_S, **args: Any) -> dict[str, Any]:  # noqa: ASYNC109
        assert self.proc is not None
        assert self.proc.stdin is not None
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self.proc.stdin.write(json.dumps({"id": request_id, "cmd": cmd, **args}).encode() + b"\n")
        await self.proc.stdin.drain()
        try:
            async with asyncio.timeout(timeout):
                reply = await future
        except TimeoutError:
            raise BenchError(f"simulator host: {cmd} not answered within {timeout:g} s") from None
        if "error" in reply:
            raise BenchError(f"simulator host: {cmd}: {reply['error']}")
        return reply

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(BenchError, ConnectionError):
            await self.call("quit", timeout=10)
        try:
            async with asyncio.timeout(15):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()


# -- the MQTT observer -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceivedTurn:
    at: float  # time.monotonic() in on_message
    device_id: str
    session_id: str
    turn_order: int
    turn_id: str
    text: str


class TurnSubscriber:
    """Subscribes to every device's transcripts and timestamps each one on arrival.

    A persistent session (clean_session=False, QoS 1) on a broker with persistence keeps
    turns published while this client reconnects after a broker restart.
    """

    def __init__(self, port: int, changes: Changes, topic: str = "edgecap/+/transcript") -> None:
        self.port = port
        self.topic = topic
        self.turns: list[ReceivedTurn] = []
        self._changes = changes
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"edgecap-bench-{uuid.uuid4().hex[:8]}",
            clean_session=False,
        )
        self._client.reconnect_delay_set(min_delay=1, max_delay=2)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if not reason_code.is_failure:
            client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, *args: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        at = time.monotonic()
        turn = json.loads(msg.payload)
        self.turns.append(
            ReceivedTurn(
                at,
                turn["device_id"],
                turn["session_id"],
                int(turn["turn_order"]),
                turn["id"],
                turn["text"],
            )
        )
        self._changes.notify_threadsafe()

    def start(self, timeout: float = 10.0) -> TurnSubscriber:
        self._client.connect("127.0.0.1", self.port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(timeout):
            raise BenchError("the MQTT observer could not subscribe")
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def of_device(self, device_id: str) -> list[ReceivedTurn]:
        return [t for t in list(self.turns) if t.device_id == device_id]


# -- client processes ---------------------------------------------------------------------


class ClientProcess:
    """A contender or helper process; stdout lines `final ORDER T` are collected.

    Everything else it prints goes to its log file.
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.finals: dict[int, float] = {}  # turn_order -> monotonic time printed
        self.started_at: float | None = None
        self._changes: Changes | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError(f"{self.name} not started")
        return self.proc.pid

    async def start(self, changes: Changes) -> ClientProcess:
        self._changes = changes
        pin = ["taskset", "-c", ",".join(map(str, sorted(CONTENDER_CPUS)))]
        with self.log_path.open("ab") as log:
            self.started_at = time.monotonic()
            self.proc = await asyncio.create_subprocess_exec(
                *(pin if CONTENDER_CPUS else []),
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=REPO,
                env=self.env,
            )
        self._reader = asyncio.create_task(self._read_stdout())
        return self

    async def _read_stdout(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        with self.log_path.open("a") as log:
            async for raw in self.proc.stdout:
                line = raw.decode(errors="replace").strip()
                parts = line.split()
                if len(parts) == 3 and parts[0] == "final":
                    self.finals[int(parts[1])] = float(parts[2])
                    if self._changes is not None:
                        self._changes.notify()
                else:
                    log.write(line + "\n")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self, timeout: float = 20.0) -> int | None:  # noqa: ASYNC109
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status (None if killed)."""
        if self.proc is None:
            return None
        code: int | None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                code = await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            code = None
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        return code

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
