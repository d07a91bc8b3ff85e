"""The benchmark's report: Markdown for `docs/benchmarks.md`, and the same tables on stdout."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.phase_billing import BillingResult
from bench.phase_billing import section as billing_section
from bench.phase_catchup import CatchUpResult
from bench.phase_catchup import section as catchup_section
from bench.phase_reconnect import ReconnectResult
from bench.phase_soak import SoakResult
from bench.phase_startup import StartupResult
from bench.phase_stream import StreamResult, Window
from bench.stats import Summary, ratio

TARGETS = {
    "cpu_floor": 1.2,
    "cpu_sdk": 0.5,
    "rss_mb": 40.0,
    "latency_p99_ms": 10.0,
    "ready_s": 1.0,
    "soak_growth": 0.05,
}


@dataclass
class Report:
    command: str
    date: str
    elapsed_s: float
    machine: dict[str, str]
    versions: dict[str, str]
    stream: list[StreamResult]
    startup: StartupResult | None
    reconnect: ReconnectResult | None
    soak: SoakResult | None
    gate_available: bool
    turn_interval_s: float = 0.04
    window: Window = field(default_factory=Window)
    notes: list[str] = field(default_factory=list)
    catchup: CatchUpResult | None = None
    billing: BillingResult | None = None

    def by_kind(self, kind: str, frame_ms: int = 50) -> StreamResult | None:
        return next((r for r in self.stream if r.kind == kind and r.frame_ms == frame_ms), None)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _ms(s: Summary | None, attr: str) -> str:
    return "n/a" if s is None else f"{getattr(s, attr):.1f}"


def _status(value: float | None, limit: float) -> str:
    if value is None:
        return "not measured"
    return "**met**" if value <= limit else "**missed**"


def targets(r: Report) -> str:
    edge, sdk, floor = r.by_kind("edgecap"), r.by_kind("sdk"), r.by_kind("floor")
    cpu_floor = ratio(
        edge.cpu_per_audio_min if edge else None, floor.cpu_per_audio_min if floor else None
    )
    cpu_sdk = ratio(
        edge.cpu_per_audio_min if edge else None, sdk.cpu_per_audio_min if sdk else None
    )
    rss = edge.rss_steady_mb if edge else None
    p99 = edge.latency.p99 if edge and edge.latency else None
    ready = r.startup.ready_s.p50 if r.startup and r.startup.ready_s else None
    soak = r.soak.rss_growth if r.soak else None
    rows = [
        ["CPU per audio-minute vs the floor (gate off)", "≤ 1.2x", fmt_ratio(cpu_floor)],
        ["CPU per audio-minute vs the SDK client (gate off)", "≤ 0.5x", fmt_ratio(cpu_sdk)],
        ["steady RSS", "≤ 40 MB", "n/a" if rss is None else f"{rss:.1f} MB"],
        ["added turn latency p99", "≤ 10 ms", "n/a" if p99 is None else f"{p99:.1f} ms"],
        ["start-up to READY=1 (median)", "≤ 1 s", "n/a" if ready is None else f"{ready:.2f} s"],
        ["soak RSS growth", "≤ 5 %", "not run (--soak)" if soak is None else f"{soak:+.1%}"],
    ]
    limits = [cpu_floor, cpu_sdk, rss, p99, ready, soak]
    keys = ["cpu_floor", "cpu_sdk", "rss_mb", "latency_p99_ms", "ready_s", "soak_growth"]
    for row, value, key in zip(rows, limits, keys, strict=True):
        row.append(_status(value, TARGETS[key]))
    return table(["target", "goal", "measured", ""], rows)


def cpu_table(r: Report) -> str:
    sdk = r.by_kind("sdk")
    rows = []
    for s in r.stream:
        floor = r.by_kind("floor", s.frame_ms)
        rows.append(
            [
                s.label,
                f"{s.cpu_per_audio_min:.3f}",
                " / ".join(f"{v:.2f}" for v in s.cpu_per_min_windows),
                f"{s.cpu_user_s:.2f} / {s.cpu_sys_s:.2f}",
                " / ".join(f"{v:.2f}" for v in [s.cpu_main_thread_s, *s.cpu_other_threads_s[:2]])
                + (f" + child {s.cpu_children_s:.2f}" if s.cpu_children_s else ""),
                fmt_ratio(ratio(s.cpu_per_audio_min, floor.cpu_per_audio_min if floor else None)),
                fmt_ratio(ratio(s.cpu_per_audio_min, sdk.cpu_per_audio_min if sdk else None)),
                f"{s.rss_steady_mb:.1f}"
                + (
                    f" (child {s.child_uss_mb:.1f} own, {s.child_rss_mb:.1f} RSS)"
                    if s.child_rss_mb
                    else ""
                ),
                f"{s.rss_peak_mb:.1f}",
                fmt_ratio(ratio(s.rss_steady_mb, floor.rss_steady_mb if floor else None)),
                f"{s.audio_received_s:.1f} / {s.window_s:.1f}",
                f"{s.finals_delivered}/{s.utterances}" + (" ✓" if s.texts_match else " ✗"),
            ]
        )
    header = [
        "contender",
        "CPU s / audio-min",
        "per window",
        "user / sys s",
        "main / other threads (+ child process) s",
        "x floor",
        "x SDK",
        "RSS steady MB (daemon + child's own)",
        "RSS peak MB",
        "RSS x floor",
        "audio at server / window s",
        "turns (text ok)",
    ]
    return table(header, rows)


def latency_table(r: Report) -> str:
    outputs = {"edgecap": "MQTT subscriber", "sdk": "SDK Turn callback", "floor": "client recv"}
    rows = [
        [
            s.label,
            outputs[s.kind] if s.provider == "assemblyai" else "not measured (no emit)",
            str(s.latency.count if s.latency else 0),
            _ms(s.latency, "p50"),
            _ms(s.latency, "p95"),
            _ms(s.latency, "p99"),
            _ms(s.latency, "maximum"),
            str(s.latency_lost),
        ]
        for s in r.stream
        if s.latency is not None or s.frame_ms == 50
    ]
    header = ["contender", "measured at", "turns", "p50 ms", "p95 ms", "p99 ms", "max ms", "lost"]
    return table(header, rows)


def startup_section(st: StartupResult) -> str:
    rows = []
    if st.ready_s and st.streaming_s:
        for label, s in (
            ("process start → READY=1", st.ready_s),
            ("→ audio at the server", st.streaming_s),
        ):
            rows.append([label, f"{s.p50:.3f}", f"{s.minimum:.3f}", f"{s.maximum:.3f}"])
    out = [table([f"edgecap, {st.runs} starts", "median s", "min s", "max s"], rows), ""]
    imp = [
        [k, f"{v.p50:.0f}", f"{v.minimum:.0f}", f"{v.maximum:.0f}"] for k, v in st.import_ms.items()
    ]
    out += [table(["import in a fresh interpreter", "median ms", "min ms", "max ms"], imp), ""]
    heavy = ", ".join(f"{name} {ms:.0f} ms" for name, ms in st.heaviest_imports_ms)
    out.append(
        "`python -X importtime`: `edgecap.app.daemon` cumulative "
        f"{st.importtime_daemon_ms:.0f} ms; "
        f"largest packages under it: {heavy}."
    )
    if st.import_rss_mb:
        rss = [[label, f"{mb:.1f}"] for label, mb in st.import_rss_mb]
        out += ["", table(["RSS right after importing (fresh interpreter)", "MB"], rss)]
    return "\n".join(out)


def reconnect_section(rc: ReconnectResult | None) -> str:
    if rc is None:
        return "Not run (`--skip reconnect`)."
    if not rc.measured:
        return f"Not measured: {rc.reason}"
    g = rc.gap
    assert g is not None
    lines = [
        table(
            ["drops", "p50 ms", "p95 ms", "min ms", "max ms"],
            [
                [
                    str(g.count),
                    f"{g.p50:.0f}",
                    f"{g.p95:.0f}",
                    f"{g.minimum:.0f}",
                    f"{g.maximum:.0f}",
                ]
            ],
        ),
        "",
        f"{rc.instances} daemons, each session dropped {rc.drop_after_s:g} s after `Begin`; "
        f"{rc.prefetched} of {g.count} reconnects used a token minted before the drop (the "
        "daemon's spare token); a reconnect without one also waits for a token-service "
        "round trip.",
    ]
    lines += [f"- {n}" for n in rc.notes if n]
    return "\n".join(lines)


def soak_section(sk: SoakResult | None) -> str:
    if sk is None:
        return "Not run; `scripts/bench --soak MINUTES` runs it."
    gap = f"{sk.gap.p50:.0f} / {sk.gap.p95:.0f} ms" if sk.gap else "n/a"
    rows = [
        ["duration", f"{sk.minutes:g} min ({len(sk.samples)} samples)"],
        [
            "RSS after warm-up → end (max)",
            f"{sk.rss_baseline_mb:.1f} → {sk.rss_final_mb:.1f} MB ({sk.rss_max_mb:.1f})",
        ],
        ["RSS growth", f"{sk.rss_growth:+.1%}"],
        [
            "open fds after warm-up → end (max)",
            f"{sk.fds_baseline} → {sk.fds_final} ({sk.fds_max})",
        ],
        [
            "server drops / sessions",
            f"{sk.server_drops} / {sk.sessions} (every {sk.drop_every_s:g} s)",
        ],
        ["broker restarts", f"{sk.broker_restarts} (every {sk.broker_every_s:g} s, 2 s down)"],
        ["reconnect gap p50 / p95", gap],
        [
            "final turns sent / received (duplicates)",
            f"{sk.turns_sent} / {sk.turns_received} ({sk.duplicates})",
        ],
        ["exit status", str(sk.exit_code)],
    ]
    return table(["soak", ""], rows)


def profile_section(r: Report) -> str:
    edge = r.by_kind("edgecap")
    p = edge.profile if edge else None
    if p is None:
        return "Not run; `scripts/bench --profile` samples the daemon with py-spy."
    if p.error:
        return f"Not available: {p.error}"
    threads = ", ".join(f"{name} {n / p.samples:.0%}" for name, n in p.threads)
    cats = [[name, f"{n / p.samples:.0%}"] for name, n in p.categories]
    rows = [[f"`{frame}`", f"{n / p.samples:.0%}"] for frame, n in p.self_frames]
    return "\n".join(
        [
            f"py-spy on the daemon (gate off, 50 ms frames) for {p.seconds:g} s of speech, "
            f"sampling at 1000 Hz the thread that holds the GIL (runs Python code): "
            f"{p.samples} samples; {threads}.",
            "",
            table(["where (innermost matching frame)", "share"], cats),
            "",
            table(["function on top of the stack", "share"], rows),
        ]
    )


def console(r: Report) -> str:
    return "\n\n".join(
        [
            targets(r),
            cpu_table(r),
            latency_table(r),
            reconnect_section(r.reconnect),
            "catch-up:\n" + catchup_section(r.catchup),
            "\n".join(billing_section(r.billing)) or "billing: not run",
            startup_section(r.startup) if r.startup else "start-up: not run",
            soak_section(r.soak),
        ]
    )
