"""The benchmark's simulator host: `python -m bench.simhost`.

Runs named SIMULATORS in their own process, so their CPU is not counted against any
contender: AssemblyAI pairs (the v3 streaming simulator and a KeyPool-compatible token
service in front of it) and OpenAI Realtime transcription simulators (their KeyPool-style
secrets path is the token service). One per contender keeps every session attributable
to one client.

Driven by one JSON object per line on stdin; answers one JSON object per line on stdout,
echoing the request's "id". Commands:

    {"cmd": "start", "name": N, "script": [texts], "max_rate": 1.25, "kind": "assemblyai"}
        -> {"streaming_url", "token_service_url", "api_key", "credential"}
        ("kind": "openai": the OpenAI simulator; "sync": the Sync API simulator, whose
        "sessions" are its requests; no max_rate, emit or fault for either)
    {"cmd": "wait_streaming", "name": N, "index": I}   session I received audio -> stamps
    {"cmd": "emit", "name": N, "count": C, "interval": S}   C final turns on the newest
        live session -> {"session_id", "sent": [[turn_order, monotonic], ...]}
    {"cmd": "fault", "name": N, "spec": "drop@wall=31s" | null}   plan for every session
    {"cmd": "sessions", "name": N}   -> {"sessions": [summary, ...]}
    {"cmd": "quit"}

Times are `time.monotonic()` (CLOCK_MONOTONIC is shared by every process on Linux), taken
when the host's event loop notices a change: Begin (OpenAI: session.updated) sent, first
audio received, closed. A summary's `clean_end`: Terminate and close 1000 (AssemblyAI), the
client's close 1000 (OpenAI).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from edgecap.sim import FaultPlan, StreamingSimulator, TokenServiceSimulator, parse_fault
from edgecap.sim.openai import OpenAIRealtimeSimulator, RealtimeSessionRecord
from edgecap.sim.records import SessionRecord
from edgecap.sim.sync_api import SyncApiSimulator
from edgecap.sim.sync_api.checks import SyncRequestRecord

API_KEY = "bench-api-key"
CREDENTIAL = "bench-team-credential"
_FOREVER = 10.0**9


@dataclass
class Stamps:
    begin: float | None = None
    first_frame: float | None = None
    closed: float | None = None


@dataclass(frozen=True)
class Progress:
    """How far one session got, as its simulator recorded it."""

    begun: bool
    streaming: bool
    closed: bool


class HostedSim(ABC):
    """One named simulator of some provider, with stamps of when each session began,
    received audio and closed. A kind supplies its records, their progress, its waits and
    a summary per session; `emit` and `fault` are AssemblyAI's only."""

    kind = ""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stamps: dict[int, Stamps] = {}
        self._watcher: asyncio.Task[None] | None = None

    @abstractmethod
    async def _start(self) -> dict[str, Any]:
        """Start the servers; the `start` reply (see the module docstring)."""

    @abstractmethod
    async def _stop(self) -> None: ...

    @abstractmethod
    def records(self) -> Sequence[Any]:
        """The session records, each with an `index`."""

    @abstractmethod
    def progress(self, rec: Any) -> Progress: ...

    @abstractmethod
    async def wait_until(self, predicate: Callable[[], bool], what: str) -> None: ...

    @abstractmethod
    def summary(self, rec: Any) -> dict[str, Any]: ...

    async def emit(self, count: int, interval: float) -> dict[str, Any]:
        raise ValueError(f"emit: not supported by the {self.kind} simulator")

    def fault(self, spec: str | None) -> None:
        raise ValueError(f"fault: not supported by the {self.kind} simulator")

    async def start(self) -> dict[str, Any]:
        reply = await self._start()
        self._watcher = asyncio.create_task(self._watch(), name=f"watch-{self.name}")
        return reply

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        await self._stop()

    def _scan(self) -> bool:
        """Stamp what changed since the last look; True if anything did."""
        now = time.monotonic()
        changed = False
        for rec in self.records():
            st = self.stamps.setdefault(rec.index, Stamps())
            seen = self.progress(rec)
            if st.begin is None and seen.begun:
                st.begin, changed = now, True
            if st.first_frame is None and seen.streaming:
                st.first_frame, changed = now, True
            if st.closed is None and seen.closed:
                st.closed, changed = now, True
        return changed

    async def _watch(self) -> None:
        while True:
            await self.wait_until(self._scan, "a change")

    async def wait_streaming(self, index: int) -> dict[str, Any]:
        await self.wait_until(
            lambda: self.stamps.get(index, Stamps()).first_frame is not None,
            f"audio in session #{index}",
        )
        return {"index": index, **asdict(self.stamps[index])}

    def summaries(self) -> list[dict[str, Any]]:
        return [self.summary(r) for r in self.records()]

    def _stamps(self, index: int) -> dict[str, Any]:
        return asdict(self.stamps.get(index, Stamps()))


class AssemblyAISim(HostedSim):
    """The v3 streaming simulator and a KeyPool-compatible token service in front of it."""

    kind = "assemblyai"

    def __init__(self, name: str, script: list[str], max_rate: float | None) -> None:
        super().__init__(name)
        self.streaming = StreamingSimulator(script, api_key=API_KEY, max_rate=max_rate)
        self.tokens = TokenServiceSimulator(self.streaming, credential=CREDENTIAL)

    async def _start(self) -> dict[str, Any]:
        await self.streaming.start()
        await self.tokens.start()
        self.streaming.wait_timeout = _FOREVER
        return {
            "streaming_url": self.streaming.url,
            "token_service_url": self.tokens.base_url,
            "api_key": API_KEY,
            "credential": CREDENTIAL,
        }

    async def _stop(self) -> None:
        await self.tokens.stop()
        await self.streaming.stop()

    def records(self) -> Sequence[SessionRecord]:
        return self.streaming.sessions

    def progress(self, rec: SessionRecord) -> Progress:
        closed = rec.closed or rec.close_code is not None
        return Progress(rec.begin is not None, bool(rec.frames_received), closed)

    async def wait_until(self, predicate: Callable[[], bool], what: str) -> None:
        await self.streaming.wait_until(predicate, what)

    async def emit(self, count: int, interval: float) -> dict[str, Any]:
        live = [r for r in self.streaming.sessions if not r.closed]
        sent = await self.streaming.emit_final_turns(count, interval=interval)
        return {"session_id": live[-1].session_id, "sent": sent}

    def fault(self, spec: str | None) -> None:
        plan: FaultPlan | None = parse_fault(spec)[0] if spec else None
        self.streaming.default_fault = plan

    def summary(self, rec: SessionRecord) -> dict[str, Any]:
        finals = [m for m in rec.final_turns if m["turn_is_formatted"] or not _formats(rec)]
        return {
            "index": rec.index,
            "session_id": rec.session_id,
            "user_agent": rec.headers.get("user-agent", ""),
            "extensions": rec.headers.get("sec-websocket-extensions", ""),
            "audio_ms": rec.audio_ms,
            "frames": rec.frames_received,
            "frame_sizes": sorted(set(rec.frame_sizes)),
            "finals": [[m["turn_order"], m["transcript"]] for m in finals],
            "terminate_received": rec.terminate_received,
            "close_code": rec.close_code,
            "clean_end": rec.terminate_received and rec.close_code == 1000,
            "closed_by": rec.closed_by,
            "error": rec.error,
            "session_duration_seconds": rec.session_duration_seconds,
            "open_seconds": (
                rec.closed_at - rec.begin_at
                if rec.closed_at is not None and rec.begin_at is not None
                else None
            ),
            "token_age_s": self._token_age(rec),
            "stamps": self._stamps(rec.index),
        }

    def _token_age(self, rec: SessionRecord) -> float | None:
        """Seconds between minting the session's token and connecting with it."""
        minted = [r.at for r in self.tokens.requests if r.token and r.token == rec.token]
        return rec.connected_at - minted[0] if minted else None


def _formats(rec: SessionRecord) -> bool:
    return rec.query.get("format_turns", "false").lower() == "true"


class OpenAISim(HostedSim):
    """The OpenAI Realtime transcription simulator, with its KeyPool-style secrets path
    (`token_service_url`); a session "begins" at its first `session.updated`."""

    kind = "openai"

    def __init__(self, name: str, script: list[str]) -> None:
        super().__init__(name)
        self.sim = OpenAIRealtimeSimulator(script, api_key=API_KEY, credential=CREDENTIAL)

    async def _start(self) -> dict[str, Any]:
        await self.sim.start()
        self.sim.wait_timeout = _FOREVER
        return {
            "streaming_url": self.sim.url,
            "token_service_url": self.sim.token_service_url,
            "api_key": API_KEY,
            "credential": CREDENTIAL,
        }

    async def _stop(self) -> None:
        await self.sim.stop()

    def records(self) -> Sequence[RealtimeSessionRecord]:
        return self.sim.sessions

    def progress(self, rec: RealtimeSessionRecord) -> Progress:
        return Progress(bool(rec.updated), rec.audio_ms > 0, rec.closed)

    async def wait_until(self, predicate: Callable[[], bool], what: str) -> None:
        await self.sim.wait_until(predicate, what)

    def summary(self, rec: RealtimeSessionRecord) -> dict[str, Any]:
        """The AssemblyAI summary's fields that mean something here (no Terminate: a clean
        end is the client's close 1000); `finals` are the completed transcripts."""
        return {
            "index": rec.index,
            "session_id": rec.session_id,
            "user_agent": rec.headers.get("user-agent", ""),
            "extensions": rec.headers.get("sec-websocket-extensions", ""),
            "audio_ms": rec.audio_ms,
            "frames": rec.appends,
            "finals": [[i, text] for i, text in enumerate(rec.transcripts)],
            "close_code": rec.close_code,
            "clean_end": rec.closed_by == "client" and rec.close_code == 1000,
            "closed_by": rec.closed_by,
            "error": "; ".join(rec.client_errors) or None,
            "auth": rec.auth,
            "stamps": self._stamps(rec.index),
        }


class SyncSim(HostedSim):
    """The AssemblyAI Sync API simulator (one POST per utterance), answering after
    `SYNC_LATENCY_S` like the real service; its token-service path is `token_service_url`.
    A "session" is a request: billed by the audio it carried (`open_seconds`)."""

    kind = "sync"

    def __init__(self, name: str, script: list[str]) -> None:
        super().__init__(name)
        self.sim = SyncApiSimulator(
            script, api_key=API_KEY, credential=CREDENTIAL, latency=SYNC_LATENCY_S
        )

    async def _start(self) -> dict[str, Any]:
        await self.sim.start()
        return {
            "streaming_url": self.sim.url,
            "token_service_url": self.sim.token_service_url,
            "api_key": API_KEY,
            "credential": CREDENTIAL,
        }

    async def _stop(self) -> None:
        await self.sim.stop()

    def records(self) -> Sequence[SyncRequestRecord]:
        return self.sim.requests

    def progress(self, rec: SyncRequestRecord) -> Progress:
        return Progress(True, rec.audio_ms > 0, rec.answered_at is not None or rec.status != 0)

    async def wait_until(self, predicate: Callable[[], bool], what: str) -> None:
        answered = self.sim.answered
        while not predicate():  # each answer is a change; a request's arrival shows later
            answered.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answered.wait(), 0.5)

    def summary(self, rec: SyncRequestRecord) -> dict[str, Any]:
        ok = rec.status == 200
        return {
            "index": rec.index,
            "session_id": None,
            "audio_ms": rec.audio_ms,
            "finals": [[rec.index, rec.text]] if ok else [],
            "terminate_received": True,
            "close_code": 1000 if rec.answered_at is not None else None,
            "clean_end": ok,
            "error": rec.fault,
            "session_duration_seconds": None,
            "open_seconds": rec.audio_ms / 1000 if ok else 0.0,  # billed: audio transcribed
            "stamps": self._stamps(rec.index),
        }


SYNC_LATENCY_S = 0.134
"""The Sync API's stated answer time (AssemblyAI's product page: ~134 ms)."""


def new_sim(request: dict[str, Any]) -> HostedSim:
    """The simulator a `start` request asks for (`kind`: "assemblyai" unless given)."""
    name, script = request["name"], request.get("script", [])
    kind = request.get("kind", "assemblyai")
    if kind == "openai":
        return OpenAISim(name, script)
    if kind == "sync":
        return SyncSim(name, script)
    if kind == "assemblyai":
        return AssemblyAISim(name, script, request.get("max_rate"))
    raise ValueError(f"unknown simulator kind {kind!r}")


class Host:
    def __init__(self) -> None:
        self.sims: dict[str, HostedSim] = {}
        self.done = asyncio.Event()

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request["cmd"]
        if cmd == "quit":
            self.done.set()
            return {}
        if cmd == "start":
            sim = new_sim(request)
            self.sims[sim.name] = sim
            return await sim.start()
        sim = self.sims[request["name"]]
        if cmd == "wait_streaming":
            return await sim.wait_streaming(int(request.get("index", 0)))
        if cmd == "emit":
            return await sim.emit(int(request["count"]), float(request.get("interval", 0.0)))
        if cmd == "fault":
            sim.fault(request.get("spec"))
            return {}
        if cmd == "sessions":
            return {"sessions": sim.summaries()}
        raise ValueError(f"unknown command {cmd!r}")

    async def answer(self, request: dict[str, Any]) -> None:
        try:
            reply = {"id": request.get("id"), **(await self.handle(request))}
        except Exception as exc:  # reported to the driver, which decides
            reply = {"id": request.get("id"), "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        tasks: set[asyncio.Task[None]] = set()
        sys.stdout.write(json.dumps({"event": "ready"}) + "\n")
        sys.stdout.flush()
        while not self.done.is_set():
            line = await reader.readline()
            if not line:
                break  # the driver went away
            task = asyncio.create_task(self.answer(json.loads(line)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        for sim in self.sims.values():
            await sim.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(Host().serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
