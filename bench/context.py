"""What every phase shares: the work directory, the broker, the simulator host, the observer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.contenders import Provider, SimUrls
from bench.stack import Changes, SimHost, TurnSubscriber
from edgecap.sim.microphone import AlsaFifoSource
from tests.harness.broker import MosquittoBroker


def say(text: str) -> None:
    print(text, flush=True)


@dataclass
class Bench:
    workdir: Path
    broker: MosquittoBroker
    host: SimHost
    subscriber: TurnSubscriber
    changes: Changes
    sources: list[AlsaFifoSource] = field(default_factory=list)
    scratch: list[Path] = field(default_factory=list)

    async def start_sim(
        self,
        name: str,
        script: list[str],
        max_rate: float | None = 1.25,
        kind: Provider = "assemblyai",
    ) -> SimUrls:
        """Start simulator `name` of `kind` in the host (`max_rate`: AssemblyAI only)."""
        reply = await self.host.call(
            "start", name=name, script=script, max_rate=max_rate, kind=kind
        )
        keys = ("streaming_url", "token_service_url", "api_key", "credential")
        return SimUrls(*(str(reply[k]) for k in keys))

    async def sessions(self, name: str) -> list[dict[str, Any]]:
        """What simulator `name` saw, one summary per session (see bench/simhost.py)."""
        reply = await self.host.call("sessions", name=name)
        sessions: list[dict[str, Any]] = reply["sessions"]
        return sessions

    def source(self, name: str, period_frames: int = 800) -> AlsaFifoSource:
        """A started FIFO-fed ALSA capture device `name` (stopped when the bench ends)."""
        src = AlsaFifoSource(self.workdir, name, period_frames=period_frames).start()
        self.sources.append(src)
        return src

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def tmpfs_dir(self) -> Path | None:
        """A fresh directory in /dev/shm (memory: fsync costs nothing), if there is one."""
        if not os.access("/dev/shm", os.W_OK):  # noqa: S108 - tmpfs on purpose
            return None
        path = Path(tempfile.mkdtemp(prefix="edgecap-bench-", dir="/dev/shm"))
        self.scratch.append(path)
        return path


@contextlib.asynccontextmanager
async def bench_stack(workdir: Path) -> AsyncIterator[Bench]:
    changes = Changes()
    broker = MosquittoBroker(workdir)
    host: SimHost | None = None
    subscriber: TurnSubscriber | None = None
    bench: Bench | None = None
    try:
        host = await SimHost(workdir / "simhost.log").start()
        subscriber = await asyncio.to_thread(TurnSubscriber(broker.port, changes).start)
        bench = Bench(workdir, broker, host, subscriber, changes)
        yield bench
    finally:
        if subscriber is not None:
            await asyncio.to_thread(subscriber.stop)
        if host is not None:
            await host.stop()
        if bench is not None:
            for src in bench.sources:
                await asyncio.to_thread(src.stop)
            for path in bench.scratch:
                shutil.rmtree(path, ignore_errors=True)
        broker.stop()
