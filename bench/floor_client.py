"""The bare floor: `python -m bench.floor_client --url URL --device DEV`.

The least a client can do: read 50 ms periods from ALSA and send each one as a binary
WebSocket message (websockets' sync client, no compression), with a thread that drains what
the server sends. For the latency comparison it prints `final TURN_ORDER MONOTONIC` when a
final (formatted) Turn arrives. SIGTERM sends Terminate and waits for the close.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from bench.capture import open_capture, periods, stop_on_sigterm

FINAL_MARK = '"end_of_turn": true'


def report_final(message: str | bytes) -> None:
    """Print `final TURN_ORDER MONOTONIC` when `message` is a final formatted Turn."""
    if isinstance(message, str) and FINAL_MARK in message:
        received = time.monotonic()
        turn = json.loads(message)
        if turn.get("turn_is_formatted"):
            print(f"final {turn['turn_order']} {received:.6f}", flush=True)


def drain(ws: ClientConnection) -> None:
    try:
        for message in ws:
            report_final(message)
    except ConnectionClosed:
        pass


def parse_args(doc: str | None) -> argparse.Namespace:
    """The floors' command line (this one's and the asyncio floor's)."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--url", required=True, help="ws://.../v3/ws?... (query included)")
    parser.add_argument("--device", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--period-frames", type=int, default=800, help="800 = 50 ms")
    return parser.parse_args()


def main() -> int:
    args = parse_args(__doc__)
    stop = stop_on_sigterm()
    pcm = open_capture(args.device, args.period_frames)
    with connect(
        args.url,
        additional_headers={"Authorization": args.api_key},
        user_agent_header="edgecap-bench-floor",
        compression=None,
    ) as ws:
        reader = threading.Thread(target=drain, args=(ws,), name="drain", daemon=True)
        reader.start()
        for period in periods(pcm, stop, args.period_frames * 2):
            ws.send(period)
        ws.send(json.dumps({"type": "Terminate"}))
        reader.join(5)
    pcm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
