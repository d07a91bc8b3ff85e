"""The benchmark's simulator host: `python -m bench.simhost`.

Runs named pairs of SIMULATORS (the v3 streaming simulator and a KeyPool-compatible token
service in front of it) in their own process, so their CPU is not counted against any
contender. One pair per contender keeps every session attributable to one client.

Driven by one JSON object per line on stdin; answers one JSON object per line on stdout,
echoing the request's "id". Commands:

    {"cmd": "start", "name": N, "script": [texts], "max_rate": 1.25}
        -> {"streaming_url", "token_service_url", "api_key", "credential"}
    {"cmd": "wait_streaming", "name": N, "index": I}   session I received audio -> stamps
    {"cmd": "emit", "name": N, "count": C, "interval": S}   C final turns on the newest
        live session -> {"session_id", "sent": [[turn_order, monotonic], ...]}
    {"cmd": "fault", "name": N, "spec": "drop@wall=31s" | null}   plan for every session
    {"cmd": "sessions", "name": N}   -> {"sessions": [summary, ...]}
    {"cmd": "quit"}

Times are `time.monotonic()` (CLOCK_MONOTONIC is shared by every process on Linux), taken
when the host's event loop notices a change: Begin sent, first audio received, closed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from edgecap.sim import FaultPlan, StreamingSimulator, TokenServiceSimulator, parse_fault
from edgecap.sim.records import SessionRecord

API_KEY = "bench-api-key"
CREDENTIAL = "bench-team-credential"
_FOREVER = 10.0**9


@dataclass
class Stamps:
    begin: float | None = None
    first_frame: float | None = None
    closed: float | None = None


class NamedSim:
    def __init__(self, name: str, script: list[str], max_rate: float | None) -> None:
        self.name = name
        self.streaming = StreamingSimulator(script, api_key=API_KEY, max_rate=max_rate)
        self.tokens = TokenServiceSimulator(self.streaming, credential=CREDENTIAL)
        self.stamps: dict[int, Stamps] = {}
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> dict[str, Any]:
        await self.streaming.start()
        await self.tokens.start()
        self.streaming.wait_timeout = _FOREVER
        self._watcher = asyncio.create_task(self._watch(), name=f"watch-{self.name}")
        return {
            "streaming_url": self.streaming.url,
            "token_service_url": self.tokens.base_url,
            "api_key": API_KEY,
            "credential": CREDENTIAL,
        }

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        await self.tokens.stop()
        await self.streaming.stop()

    def _scan(self) -> bool:
        """Stamp what changed since the last look; True if anything did."""
        now = time.monotonic()
        changed = False
        for rec in self.streaming.sessions:
            st = self.stamps.setdefault(rec.index, Stamps())
            if st.begin is None and rec.begin is not None:
                st.begin, changed = now, True
            if st.first_frame is None and rec.frames_received:
                st.first_frame, changed = now, True
            if st.closed is None and (rec.closed or rec.close_code is not None):
                st.closed, changed = now, True
        return changed

    async def _watch(self) -> None:
        while True:
            await self.streaming.wait_until(self._scan, "a change")

    async def wait_streaming(self, index: int) -> dict[str, Any]:
        await self.streaming.wait_until(
            lambda: self.stamps.get(index, Stamps()).first_frame is not None,
            f"audio in session #{index}",
        )
        return {"index": index, **asdict(self.stamps[index])}

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
            "closed_by": rec.closed_by,
            "error": rec.error,
            "session_duration_seconds": rec.session_duration_seconds,
            "open_seconds": (
                rec.closed_at - rec.begin_at
                if rec.closed_at is not None and rec.begin_at is not None
                else None
            ),
            "token_age_s": self._token_age(rec),
            "stamps": asdict(self.stamps.get(rec.index, Stamps())),
        }

    def _token_age(self, rec: SessionRecord) -> float | None:
        """Seconds between minting the session's token and connecting with it."""
        minted = [r.at for r in self.tokens.requests if r.token and r.token == rec.token]
        return rec.connected_at - minted[0] if minted else None


def _formats(rec: SessionRecord) -> bool:
    return rec.query.get("format_turns", "false").lower() == "true"


class Host:
    def __init__(self) -> None:
        self.sims: dict[str, NamedSim] = {}
        self.done = asyncio.Event()

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request["cmd"]
        if cmd == "quit":
            self.done.set()
            return {}
        if cmd == "start":
            sim = NamedSim(request["name"], request.get("script", []), request.get("max_rate"))
            self.sims[sim.name] = sim
            return await sim.start()
        sim = self.sims[request["name"]]
        if cmd == "wait_streaming":
            return await sim.wait_streaming(int(request.get("index", 0)))
        if cmd == "emit":
            live = [r for r in sim.streaming.sessions if not r.closed]
            sent = await sim.streaming.emit_final_turns(
                int(request["count"]), interval=float(request.get("interval", 0.0))
            )
            return {"session_id": live[-1].session_id, "sent": sent}
        if cmd == "fault":
            spec = request.get("spec")
            plan: FaultPlan | None = parse_fault(spec)[0] if spec else None
            sim.streaming.default_fault = plan
            return {}
        if cmd == "sessions":
            return {"sessions": [sim.summary(r) for r in sim.streaming.sessions]}
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
