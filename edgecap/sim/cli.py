"""``edgecap simulate``: run the SIMULATORS of one provider until SIGINT/SIGTERM.

``--provider assemblyai`` (the default) runs the AssemblyAI v3 streaming simulator and a
KeyPool-compatible token service; ``--provider openai`` runs the OpenAI Realtime
transcription simulator (WebSocket, client secrets and the KeyPool-style secrets path on
one port); ``--provider assemblyai-sync`` AssemblyAI's Sync API (and the token service's
forwarding path for it) on one port."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from edgecap.sim.faults import FaultPlan, parse_fault
from edgecap.sim.openai import (
    SECRETS_MODES,
    OpenAIRealtimeSimulator,
    RealtimeFault,
    parse_realtime_fault,
)
from edgecap.sim.streaming import StreamingSimulator
from edgecap.sim.sync_api.serve import SYNC_FAULT_HELP, parse_sync_faults, serve_sync
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

--provider openai: one port serves GET /v1/realtime?intent=transcription (WebSocket,
"Authorization: Bearer <api key or ek_ secret>"), POST /v1/realtime/client_secrets (Bearer
<api key>) and POST /v1/openai/v1/realtime/client_secrets (Bearer <credential>; the token
service base URL is http://HOST:PORT/v1/openai). --secrets-mode sets how both secrets
paths answer. Its fault SPECs (one per authenticated upgrade):
  handshake:STATUS            refuse the upgrade (403, 429, 500...)
  handshake-hang | no-created never answer the upgrade | never send session.created
  drop@WHEN | stall@WHEN      cut TCP | stop reading and sending
  error[:CODE[:MESSAGE]]@WHEN an error event (server_error), then close CODE (1011)
  fail-item@WHEN              the next item committed gets ...transcription.failed
WHEN: audio (3s, 500ms), wall=3s, or utterance=N (just after the N-th utterance starts).
"""

_FAULT_HELP += "\n" + SYNC_FAULT_HELP
_PARSERS: dict[str, Callable[[str], list[Any]]] = {
    "assemblyai": parse_fault,
    "openai": parse_realtime_fault,
    "assemblyai-sync": parse_sync_faults,
}
Plan = TypeVar("Plan")


def _fault_spec(spec: str) -> str:
    """A spec one of the providers' grammars reads (parsed for the chosen one in run())."""
    errors: list[str] = []
    for parse in _PARSERS.values():
        try:
            parse(spec)
        except ValueError as exc:
            errors.append(str(exc))
        else:
            return spec
    raise argparse.ArgumentTypeError(errors[0])


def add_subparser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``simulate`` sub-command to the main CLI's sub-parsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="run the local AssemblyAI v3 (or OpenAI Realtime) and token service SIMULATORS",
        description="Run a local SIMULATOR of AssemblyAI v3 streaming (with /v3/token) "
        "and of a KeyPool-compatible token service, or with --provider openai of OpenAI's "
        "Realtime transcription API (with client secrets), for tests and demos.",
        epilog=_FAULT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--provider",
        choices=("assemblyai", "openai", "assemblyai-sync"),
        default="assemblyai",
        help="which provider to simulate (default assemblyai)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--streaming-port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--token-port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--script", type=Path, help="utterances, one per line")
    parser.add_argument(
        "--api-key",
        default="sim-api-key",
        help="API key (AssemblyAI: /v3/token and /v3/ws; OpenAI: Bearer on /v1/realtime and "
        "/v1/realtime/client_secrets)",
    )
    parser.add_argument(
        "--credential",
        default="sim-team-token",
        help="team credential the token service and the proxy path accept",
    )
    parser.add_argument("--token-mode", choices=TOKEN_MODES, default="ok")
    parser.add_argument(
        "--secrets-mode",
        choices=SECRETS_MODES,
        default="ok",
        help="openai: how the client_secrets paths answer",
    )
    parser.add_argument("--slow-delay", type=float, default=2.0, help="seconds, token mode slow")
    parser.add_argument(
        "--fault", type=_fault_spec, action="append", default=[], metavar="SPEC", help="see below"
    )
    parser.add_argument(
        "--default-fault", type=_fault_spec, metavar="SPEC", help="a plan for every connection"
    )
    parser.add_argument("--max-rate", type=float, default=1.25, help="x real time (default 1.25)")
    parser.add_argument("--rate-slack", type=float, default=2.0, help="seconds (default 2.0)")
    parser.add_argument("--no-rate-check", action="store_true", help="disable the pacing check")
    parser.add_argument(
        "--eot-confidence", type=float, default=0.6, help="simulated end-of-turn confidence"
    )
    parser.add_argument("--reported-model", help="model Begin reports whatever is requested")
    parser.add_argument(
        "--max-session",
        type=float,
        help="cap every session at N seconds (openai: default 3600, the documented 60 minutes)",
    )
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
    parser.add_argument(
        "--sync-latency",
        type=float,
        default=0.0,
        help="assemblyai-sync: seconds the service takes to answer (default 0)",
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


async def _serve(args: argparse.Namespace, faults: list[FaultPlan]) -> None:
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
    for plan in faults:
        streaming.schedule_fault(plan)
    if args.default_fault:
        streaming.default_fault = parse_fault(args.default_fault)[0]
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


async def _serve_openai(args: argparse.Namespace, faults: list[RealtimeFault]) -> None:
    sim = OpenAIRealtimeSimulator(
        _read_script(args.script),
        api_key=args.api_key,
        credential=args.credential,
        host=args.host,
        port=args.streaming_port,
    )
    if args.max_session is not None:
        sim.settings.max_session_seconds = args.max_session
    sim.secrets_mode = args.secrets_mode
    sim.secrets_slow_seconds = args.slow_delay
    for plan in faults:
        sim.schedule_fault(plan)
    if args.default_fault:
        sim.default_fault = parse_realtime_fault(args.default_fault)[0]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with sim:
        if args.ready_file is not None:
            _write_ready(
                args.ready_file,
                {
                    "realtime_url": sim.url,
                    "api_base_url": sim.api_base_url,
                    "client_secrets_url": sim.client_secrets_url,
                    "token_service_url": sim.token_service_url,
                },
            )
        print(
            f"SIMULATOR OpenAI Realtime transcription: {sim.url} (Authorization: Bearer <api"
            " key or ek_ secret>)",
            flush=True,
        )
        print(f"SIMULATOR OpenAI client secrets: {sim.client_secrets_url}", flush=True)
        print(
            f"SIMULATOR KeyPool-style token service (OpenAI): {sim.token_service_url}"
            " (POST /v1/realtime/client_secrets, Authorization: Bearer <credential>)",
            flush=True,
        )
        await stop.wait()
    print("SIMULATOR stopped", flush=True)


def _queued(parse: Callable[[str], list[Plan]], args: argparse.Namespace) -> list[Plan]:
    """The ``--fault`` plans read with the provider's grammar (``--default-fault`` is
    checked here too: ``ValueError`` for a spec of the other grammar)."""
    if args.default_fault:
        parse(args.default_fault)
    return [plan for spec in args.fault for plan in parse(spec)]


def run(args: argparse.Namespace) -> int:
    """Run ``edgecap simulate`` until SIGINT/SIGTERM; returns 0 (2 for a fault spec the
    chosen provider does not read)."""
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.provider == "assemblyai-sync":
            sync_plans = _queued(parse_sync_faults, args)
        elif args.provider == "openai":
            plans = _queued(parse_realtime_fault, args)
        else:
            aai_plans = _queued(parse_fault, args)
    except ValueError as exc:
        print(f"edgecap simulate: error: --provider {args.provider}: {exc}", file=sys.stderr)
        return 2
    if args.provider == "assemblyai-sync":
        asyncio.run(serve_sync(args, sync_plans, _read_script(args.script), _write_ready))
    elif args.provider == "openai":
        asyncio.run(_serve_openai(args, plans))
    else:
        asyncio.run(_serve(args, aai_plans))
    return 0
