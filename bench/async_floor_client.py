"""The asyncio floor: `python -m bench.async_floor_client --url URL --device DEV`.

The least a client built like edgecap can do: a thread blocks on the ALSA read (there is no
non-blocking capture that works on every device) and hands each 50 ms period to an asyncio
event loop, where websockets' asyncio client sends it as one binary message; a task drains
what the server sends. No buffer, pacing, gate, MQTT or spool. Its distance from the bare
floor is what the architecture costs (two threads woken per frame instead of one); edgecap's
distance from it is what edgecap's own work costs. Prints `final TURN_ORDER MONOTONIC` like
the floor; SIGTERM sends Terminate and waits for the close.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.capture import open_capture, periods, stop_on_sigterm
from bench.floor_client import parse_args, report_final


async def drain(ws: ClientConnection) -> None:
    try:
        async for message in ws:
            report_final(message)
    except ConnectionClosed:
        pass


def capture(
    loop: asyncio.AbstractEventLoop,
    queue: asyncio.Queue[bytes | None],
    pcm: Any,
    stop: threading.Event,
    size: int,
) -> None:
    for period in periods(pcm, stop, size):
        loop.call_soon_threadsafe(queue.put_nowait, period)
    loop.call_soon_threadsafe(queue.put_nowait, None)


async def stream(args: argparse.Namespace, stop: threading.Event) -> None:
    pcm = open_capture(args.device, args.period_frames)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    async with connect(
        args.url,
        additional_headers={"Authorization": args.api_key},
        user_agent_header="edgecap-bench-async-floor",
        compression=None,
    ) as ws:
        reader = asyncio.create_task(drain(ws))
        size = args.period_frames * 2
        thread = threading.Thread(
            target=capture, args=(asyncio.get_running_loop(), queue, pcm, stop, size)
        )
        thread.start()
        while (period := await queue.get()) is not None:
            await ws.send(period)
        await ws.send(json.dumps({"type": "Terminate"}))
        await asyncio.wait_for(reader, 5)
        thread.join()
    pcm.close()


def main() -> int:
    args = parse_args(__doc__)
    stop = stop_on_sigterm()
    asyncio.run(stream(args, stop))
    return 0


if __name__ == "__main__":
    sys.exit(main())
