"""``edgecap simulate --provider assemblyai-sync``: the Sync API simulator until a signal."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

from edgecap.sim.sync_api.checks import SyncFault, parse_sync_fault
from edgecap.sim.sync_api.server import SyncApiSimulator

SYNC_FAULT_HELP = """\
--provider assemblyai-sync: one port serves POST /v1/transcribe/live (chunked upload) and
POST /v1/transcribe (both "Authorization: <api key>"), and the token service's forwarding
path POST /v1/assemblyai/sync ("Authorization: Bearer <credential>"; the token service base
URL is http://HOST:PORT/v1/assemblyai). Each clip with speech gets the next --script line,
words timed over its voiced part; billed audio seconds are counted. --sync-latency adds the
service's processing time. Its fault SPECs (one per request, in order):
  drop        cut the connection mid-upload (no answer)
  refuse      close the connection as soon as it opens
  hang        read the body, never answer
  STATUS[:S]  answer HTTP STATUS (429, 500, 503, 401...) with Retry-After S seconds
A suffix *N repeats a fault. Examples: drop  refuse*3  429:2  503*2
"""


def parse_sync_faults(spec: str) -> list[SyncFault]:
    return [parse_sync_fault(spec)]


async def serve_sync(
    args: argparse.Namespace,
    faults: list[SyncFault],
    script: list[str],
    write_ready: Callable[[Path, dict[str, str]], None],
) -> None:
    sim = SyncApiSimulator(
        script,
        api_key=args.api_key,
        credential=args.credential,
        host=args.host,
        port=args.streaming_port,
        latency=args.sync_latency,
    )
    for fault in faults:
        sim.schedule_fault(fault)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with sim:
        if args.ready_file is not None:
            write_ready(
                args.ready_file,
                {"sync_url": sim.url, "token_service_url": sim.token_service_url},
            )
        print(f"SIMULATOR AssemblyAI Sync API: {sim.url} (Authorization: <api key>)", flush=True)
        print(
            f"SIMULATOR token service (Sync): {sim.token_service_url} (POST /sync, "
            "Authorization: Bearer <credential>)",
            flush=True,
        )
        await stop.wait()
    print(
        f"SIMULATOR stopped; {len(sim.transcribed)} clip(s), billed "
        f"{sim.billed_audio_seconds:.1f} s of audio",
        flush=True,
    )
