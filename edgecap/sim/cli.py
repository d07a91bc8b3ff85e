"""``edgecap simulate``: run both SIMULATORS in one process until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from edgecap.sim.faults import FaultPlan, parse_fault
from edgecap.sim.streaming import StreamingSimulator
from edgecap.sim.tokens import TOKEN_MODES, TokenServiceSimulator

_FAULT_HELP = """\
Streaming endpoints (one port): /v3/token and /v3/ws (API key or ?token=), and the
KeyPool-compatible proxy path /v1/assemblyai/v3/ws, which takes the team credential
(--credential) as "Authorization: Bearer <credential>" or as the WebSocket subprotocol
"keypool-token.<credential>", and needs no token. See the upgrade answer (101 with the
echoed subprotocol and Begin, or 401/403/429/502/503 and a JSON body) by hand with:
  curl -i --max-time 2 -H "Connection: Upgrade" -H "Upgrade: websocket" \\
    -H "Sec-WebSocket-Version: 13" -H "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" \\
    -H "Sec-WebSocket-Protocol: keypool-token.sim-team-token" \\
    "http://127.0.0.1:PORT/v1/assemblyai/v3/ws?sample_rate=16000"
(or -H "Authorization: Bearer sim-team-token"); docs/simulator.md has a full client.

fault SPEC (repeatable, consumed one per WebSocket upgrade in order, on either path; a
proxy upgrade refused with 401 for a bad credential takes none):
  handshake:STATUS            reject the upgrade with HTTP STATUS (401, 403, 429, 502,
                              503...; on the proxy path with KeyPool's error texts)
  before-begin:CODE[:REASON]  accept, then close with CODE before Begin (1008, 4001...)
  close:CODE[:REASON]@WHEN    Error frame (not for 1000), then close with CODE
  drop@WHEN                   cut TCP without a close frame (1006 at the client)
  stall@WHEN                  stop reading and sending; TCP stays open
WHEN: audio received (3s, 500ms) or wall time since Begin (wall=3s); none = at once.
A suffix *N repeats a plan. Examples: close:1011@3s  drop@2s  handshake:503*3
"""


def _fault_list(spec: str) -> list[FaultPlan]:
    try:
        return parse_fault(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_subparser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``simulate`` sub-command to the main CLI's sub-parsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="run the local AssemblyAI v3 and token service SIMULATORS",
        description="Run a local SIMULATOR of AssemblyAI v3 streaming (with /v3/token) "
        "and of a KeyPool-compatible token service, for tests and demos.",
        epilog=_FAULT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--streaming-port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--token-port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--script", type=Path, help="utterances, one per line")
    parser.add_argument("--api-key", default="sim-api-key", help="API key for /v3/token and /v3/ws")
    parser.add_argument(
        "--credential",
        default="sim-team-token",
        help="team credential the token service and the proxy path accept",
    )
    parser.add_argument("--token-mode", choices=TOKEN_MODES, default="ok")
    parser.add_argument("--slow-delay", type=float, default=2.0, help="seconds, token mode slow")
    parser.add_argument(
        "--fault", type=_fault_list, action="append", default=[], metavar="SPEC", help="see below"
    )
    parser.add_argument(
        "--default-fault", type=_fault_list, metavar="SPEC", help="a plan for every connection"
    )
    parser.add_argument("--max-rate", type=float, default=1.25, help="x real time (default 1.25)")
    parser.add_argument("--rate-slack", type=float, default=2.0, help="seconds (default 2.0)")
    parser.add_argument("--no-rate-check", action="store_true", help="disable the pacing check")
    parser.add_argument(
        "--eot-confidence", type=float, default=0.6, help="simulated end-of-turn confidence"
    )
    parser.add_argument("--reported-model", help="model Begin reports whatever is requested")
    parser.add_argument("--max-session", type=float, help="cap every session at N seconds")
    parser.add_argument(
        "--speakers",
        type=_labels,
        default="A,B",
        help="speaker_labels=true: labels by turn, cycled (default A,B)",
    )
    parser.add_argument(
        "--revised-speakers",
        type=_labels,
        default="B,A",
        help="labels the SpeakerRevision before Termination gives the turns (default B,A; "
        "'none': no SpeakerRevision)",
    )
    parser.add_argument(
        "--detected-language",
        help="language_detection=true: the language reported (default: the first of "
        "language_codes, else language_code, else en)",
    )
    parser.add_argument("--ready-file", type=Path, help="write the URLs as JSON once listening")
    parser.add_argument("--log-level", default="INFO")
    return parser


def _labels(text: str) -> tuple[str, ...] | None:
    if text.strip().lower() == "none":
        return None
    labels = tuple(label.strip() for label in text.split(",") if label.strip())
    if not labels:
        raise argparse.ArgumentTypeError("give labels separated by commas, e.g. A,B")
    return labels


def _read_script(path: Path | None) -> list[str]:
    if path is None:
        return []
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _write_ready(path: Path, payload: dict[str, str]) -> None:
    """Write atomically so a watcher never reads a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ready-")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle)
    os.replace(tmp, path)


async def _serve(args: argparse.Namespace) -> None:
    streaming = StreamingSimulator(
        _read_script(args.script),
        api_key=args.api_key,
        credential=args.credential,
        host=args.host,
        port=args.streaming_port,
        reported_model=args.reported_model,
        eot_confidence=args.eot_confidence,
        max_rate=None if args.no_rate_check else args.max_rate,
        rate_slack_seconds=args.rate_slack,
        max_session_seconds=args.max_session,
    )
    streaming.settings.speakers = args.speakers or ("A",)
    streaming.settings.revised_speakers = args.revised_speakers
    streaming.settings.detected_language = args.detected_language
    for plans in args.fault:
        for plan in plans:
            streaming.schedule_fault(plan)
    if args.default_fault:
        streaming.default_fault = args.default_fault[0]
    tokens = TokenServiceSimulator(
        streaming,
        credential=args.credential,
        mode=args.token_mode,
        host=args.host,
        port=args.token_port,
        slow_delay_seconds=args.slow_delay,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with streaming, tokens:
        if args.ready_file is not None:
            _write_ready(
                args.ready_file,
                {
                    "streaming_url": streaming.url,
                    "proxy_url": streaming.proxy_url,
                    "token_service_url": tokens.base_url,
                    "api_token_url": streaming.token_url,
                },
            )
        # Printed after the ready file exists, so a reader of stdout may use both.
        print(
            f"SIMULATOR AssemblyAI v3 streaming: {streaming.url} (token: {streaming.token_url})",
            flush=True,
        )
        print(
            f"SIMULATOR KeyPool proxy path: {streaming.proxy_url} (Authorization: Bearer"
            f" <credential> or subprotocol keypool-token.<credential>; no token)",
            flush=True,
        )
        print(f"SIMULATOR KeyPool token service: {tokens.base_url}", flush=True)
        await stop.wait()
    print("SIMULATOR stopped", flush=True)


def run(args: argparse.Namespace) -> int:
    """Run ``edgecap simulate`` until SIGINT/SIGTERM; returns 0."""
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(_serve(args))
    return 0
