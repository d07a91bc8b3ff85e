"""`scripts/bench`: run the phases, print the tables, write `docs/benchmarks.md`."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    phase_billing,
    phase_catchup,
    phase_reconnect,
    phase_soak,
    phase_startup,
    phase_stream,
)
from bench.contenders import gate_available
from bench.context import bench_stack, say
from bench.document import markdown
from bench.machine import machine, versions
from bench.phase_stream import tree_name
from bench.report import Report, console
from bench.sections import kept_section, with_section
from bench.stack import REPO, BenchError, pin_harness

PHASES = ("stream", "startup", "reconnect", "catchup", "billing")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="edgecap against the AssemblyAI SDK client and a bare floor: CPU, memory, "
        "turn latency, start-up, reconnect gap and (with --soak) long-run growth.",
    )
    parser.add_argument("--quick", action="store_true", help="a ~1 minute smoke run")
    parser.add_argument("--soak", type=float, metavar="MINUTES", help="also run a soak")
    parser.add_argument("--seconds", type=float, help="speech per contender (90; --quick 20)")
    parser.add_argument("--windows", type=int, help="measuring windows, median (3; --quick 1)")
    parser.add_argument("--latency-turns", type=int, help="turns per contender (300; quick 200)")
    parser.add_argument("--turn-interval", type=float, default=0.04, help="seconds (0.04)")
    parser.add_argument("--startup-runs", type=int, help="daemon starts (5; --quick 2)")
    parser.add_argument("--import-repeats", type=int, help="fresh interpreters (5; quick 2)")
    parser.add_argument("--reconnect-daemons", type=int, help="daemons side by side (10; 2)")
    parser.add_argument("--drops-each", type=int, help="drops per daemon (2; --quick 1)")
    parser.add_argument(
        "--drop-after",
        type=float,
        help="seconds after Begin (default: past the engine's stable-session threshold; "
        "--quick 5, which includes the backoff after a quick failure)",
    )
    parser.add_argument("--stagger", type=float, default=3.0, help="seconds between daemons")
    parser.add_argument("--soak-drop-every", type=float, default=90.0, help="seconds (90)")
    parser.add_argument("--soak-broker-every", type=float, default=120.0, help="seconds (120)")
    parser.add_argument(
        "--profile",
        type=float,
        nargs="?",
        const=30.0,
        default=0.0,
        metavar="SECONDS",
        help="sample the daemon with py-spy (30 s)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="run every contender on the last CPU and the harness on the others (same core "
        "conditions for all, but multi-threaded clients then share one core)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="also stream with the edgecap package in DIR (e.g. an unpacked `git archive` of "
        "an earlier commit), side by side with this checkout's: an A/B comparison",
    )
    parser.add_argument(
        "--only",
        metavar="KEYS",
        default="",
        help="stream phase: run only these contenders (comma-separated keys: edgecap, "
        "edgecapvoice, edgecapopenai, sdk, floor, floorasync, edgecap100, floor100, edgecapshm, "
        "edgecapbase)",
    )
    parser.add_argument(
        "--billing-minutes",
        type=float,
        help="length of the 10 %%-speech billing program (3; --quick 1.5; the issue's is 10); "
        "below 3 the other programs shrink too (3 commands, a 1-minute conversation)",
    )
    parser.add_argument(
        "--outages", help="catch-up outages in seconds, comma-separated (5,20; --quick 5)"
    )
    parser.add_argument("--skip", action="append", choices=PHASES, default=[])
    parser.add_argument(
        "--output", type=Path, help="Markdown report (docs/benchmarks.md; none with --quick)"
    )
    parser.add_argument("--json", type=Path, help="also write the raw results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "seconds": 20.0 if quick else 90.0,
        "windows": 1 if quick else 3,
        "latency_turns": 200 if quick else 300,
        "startup_runs": 2 if quick else 5,
        "import_repeats": 2 if quick else 5,
        "reconnect_daemons": 2 if quick else 10,
        "drops_each": 1 if quick else 2,
        "drop_after": 5.0 if quick else phase_reconnect.default_drop_after(),
        "billing_minutes": 1.5 if quick else 3.0,
        "outages": "5" if quick else "5,20",
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.output is None and not quick:
        args.output = REPO / "docs" / "benchmarks.md"
    return args


async def run(args: argparse.Namespace, workdir: Path, command: str) -> Report:
    started = time.monotonic()
    report = Report(
        command=command,
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        elapsed_s=0.0,
        machine=machine(),
        versions=versions(),
        stream=[],
        startup=None,
        reconnect=None,
        soak=None,
        gate_available=gate_available(),
        turn_interval_s=args.turn_interval,
    )
    async with bench_stack(workdir) as bench:
        if "stream" not in args.skip:
            say(f"\n==> CPU, memory and turn latency ({args.seconds:g} s of speech)")
            try:
                report.stream = await phase_stream.run(
                    bench,
                    args.seconds,
                    args.latency_turns,
                    args.turn_interval,
                    profile_s=args.profile,
                    with_extras=not args.quick,
                    window=report.window,
                    windows=args.windows,
                    baseline=args.baseline.resolve() if args.baseline else None,
                    only=frozenset(k for k in args.only.split(",") if k),
                )
            except BenchError as exc:
                report.notes.append(f"streaming phase failed: {exc}")
        if "startup" not in args.skip:
            say(f"\n==> start-up ({args.startup_runs} starts)")
            try:
                report.startup = await phase_startup.run(
                    bench, args.startup_runs, args.import_repeats
                )
            except BenchError as exc:
                report.notes.append(f"start-up phase failed: {exc}")
        if "reconnect" not in args.skip:
            say(f"\n==> reconnect gap ({args.reconnect_daemons} x {args.drops_each} drops)")
            try:
                report.reconnect = await phase_reconnect.run(
                    bench, args.reconnect_daemons, args.drops_each, args.drop_after, args.stagger
                )
            except BenchError as exc:
                report.reconnect = phase_reconnect.ReconnectResult(reason=str(exc))
        if "catchup" not in args.skip:
            outages = tuple(float(x) for x in args.outages.split(",") if x)
            say(f"\n==> catch-up after outages of {args.outages} s")
            try:
                report.catchup = await phase_catchup.run(outages)
            except (BenchError, AssertionError, TimeoutError) as exc:
                report.catchup = phase_catchup.CatchUpResult(reason=str(exc))
        if "billing" not in args.skip and gate_available():
            say(
                "\n==> billing (commands, conversation, "
                f"{args.billing_minutes:g} min of 10 % speech)"
            )
            try:
                report.billing = await phase_billing.run(
                    bench,
                    args.billing_minutes,
                    args.baseline.resolve() if args.baseline else None,
                )
            except BenchError as exc:
                report.notes.append(f"billing phase failed: {exc}")
        if args.soak:
            say(f"\n==> soak ({args.soak:g} min)")
            try:
                report.soak = await phase_soak.run(
                    bench, args.soak, args.soak_drop_every, args.soak_broker_every
                )
            except BenchError as exc:
                report.notes.append(f"soak failed: {exc}")
    report.elapsed_s = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    for tool in ("mosquitto",):
        if shutil.which(tool) is None and not Path("/usr/sbin/mosquitto").exists():
            raise SystemExit(f"{tool} is not installed (scripts/bench installs it)")
    shown = list(argv)
    if args.baseline is not None:  # the report names the tree by its commit, not its path
        tree = f"<tree at {tree_name(args.baseline).split()[0]}>"
        shown = [tree if a == str(args.baseline) else a for a in argv]
    command = " ".join(["scripts/bench", *shown])
    pinned = pin_harness() if args.pin else set()
    if pinned:
        say(f"contenders on CPU {sorted(pinned)}, the harness on the others")
    workdir = Path(tempfile.mkdtemp(prefix="edgecap-bench-"))
    try:
        report = asyncio.run(run(args, workdir, command))
    finally:
        if args.keep:
            say(f"\nwork directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    say("\n" + console(report))
    if args.output is not None:
        old = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        text = markdown(report)
        if kept := kept_section(old):  # the token service's section (scripts/bench-tokens)
            text = with_section(text, kept)
        args.output.write_text(text, encoding="utf-8")
        say(f"\nwritten: {args.output}")
    if args.json is not None:
        args.json.write_text(json.dumps(dataclasses.asdict(report), indent=1, default=str))
    for note in report.notes:
        say(f"NOTE: {note}")
    return 1 if report.notes else 0
