"""`docs/benchmarks.md`: the tables of `bench.report` with the set-up and what limits edgecap."""

from __future__ import annotations

from bench.phase_billing import section as billing_section
from bench.phase_catchup import section as catchup_section
from bench.phase_stream import StreamResult
from bench.report import (
    Report,
    cpu_table,
    fmt_ratio,
    latency_table,
    profile_section,
    reconnect_section,
    soak_section,
    startup_section,
    table,
    targets,
)
from bench.stats import ratio


def _pct(new: float, old: float) -> str:
    return f"{(new - old) / old:+.0%}" if old > 0 else "n/a"


def noise_note(r: Report) -> str:
    """Two edgecap daemons doing the same per-frame work: their difference is noise."""
    edge = r.by_kind("edgecap")
    twin = next((s for s in r.stream if s.key == "edgecapshm"), None)
    if edge is None or twin is None or edge.cpu_per_audio_min <= 0:
        return ""
    return (
        'The "spool on tmpfs" daemon does the same per-frame work as the first row (only '
        "the rare turn commits differ), so the difference between the two "
        f"({_pct(twin.cpu_per_audio_min, edge.cpu_per_audio_min)}) shows this run's noise."
    )


def edge_thread(s: StreamResult) -> str:
    return f"{s.cpu_other_threads_s[0]:.2f}" if s.cpu_other_threads_s else "?"


def findings(r: Report) -> list[str]:
    """What limits edgecap, computed from this run's figures (empty where not measured)."""
    out: list[str] = []
    edge, floor, sdk = r.by_kind("edgecap"), r.by_kind("floor"), r.by_kind("sdk")
    e100, f100 = r.by_kind("edgecap", 100), r.by_kind("floor", 100)
    if edge and floor and e100 and f100:
        per_msg = (edge.cpu_per_audio_min - e100.cpu_per_audio_min) * 2
        share = per_msg / edge.cpu_per_audio_min if edge.cpu_per_audio_min > 0 else 0.0
        noisy = " (all of it, within this run's noise)" if share > 1 else ""
        out.append(
            "**CPU and the number of messages.** With 100 ms frames (half the messages) "
            f"edgecap uses {e100.cpu_per_audio_min:.3f} instead of "
            f"{edge.cpu_per_audio_min:.3f} CPU s per audio-minute "
            f"({_pct(e100.cpu_per_audio_min, edge.cpu_per_audio_min)}), so about "
            f"{min(share, 1.0):.0%}{noisy} of its CPU scales with the number of messages "
            "(the floor: "
            f"{_pct(f100.cpu_per_audio_min, floor.cpu_per_audio_min)}). "
            f"Over the windows its capture child process used {edge.cpu_children_s:.2f} CPU s, "
            f"its busiest thread besides the event loop {edge_thread(edge)} s and the event "
            f"loop thread {edge.cpu_main_thread_s:.2f} s; the floor's single loop "
            f"{floor.cpu_main_thread_s:.2f} s. "
            "Per frame, edgecap's capture child reads the period from ALSA and writes it, with "
            "a small header, to a pipe the event loop watches; the loop wakes once, reads and "
            "parses it, plans and paces the message "
            "and, while the sender task is idle, sends it right there (websockets' asyncio "
            "`send`, started eagerly: it finishes without a task switch when the socket has "
            "room), then updates the replay buffer, the timeline and the pacer. The floor does "
            "one blocking read and one blocking send in one thread, and the SDK a queue "
            "hand-off to its writer thread. So edgecap wakes two processes per frame where the "
            "floor wakes one thread (a wake-up, with cold caches, costs more than the few dozen "
            "Python calls each thread then makes), and what remains is the asyncio loop "
            "iteration and websockets' per-message path (an async context manager, a fresh "
            "mask). Section 6 shows the "
            "split. `audio.frame_ms = 100` is the configuration lever (it halves the messages "
            "and delays audio to the server by 50 ms more per message)."
        )
    af = next((s for s in r.stream if s.key == "floorasync"), None)
    if edge and floor and af and af.cpu_per_audio_min > 0:
        out.append(
            "**What the architecture costs.** The asyncio floor (a capture thread handing "
            "each period to an event loop that sends it with websockets' asyncio client, and "
            f"nothing else) uses {af.cpu_per_audio_min:.3f} CPU s per audio-minute, "
            f"{fmt_ratio(ratio(af.cpu_per_audio_min, floor.cpu_per_audio_min))} the bare "
            f"floor; edgecap is {fmt_ratio(ratio(edge.cpu_per_audio_min, af.cpu_per_audio_min))}"
            " the asyncio floor. So most of the distance to the 1.2x target is the design "
            "edgecap shares with any asyncio client that captures outside its event loop, not "
            "edgecap's own work (buffering, pacing, gating, MQTT, spool). Capture runs in a "
            "child process on purpose: pyalsaaudio holds the GIL while it opens, sets up and "
            "prepares a device, and a device can block there for good (a busy card, a sound "
            "server that does not answer), which froze the whole daemon when capture was a "
            "thread. The child blocks on the device and writes into a 1 MiB pipe (about 30 s "
            "of audio), so a stalled event loop (a slow disk commit, a long garbage "
            "collection) delays audio but does not lose it. Reading ALSA on the loop itself "
            "would save a wake-up per frame but freeze the daemon with the device and bound "
            "a stall by the ALSA buffer (200 ms here)."
        )
    if edge and sdk:
        vs_sdk = fmt_ratio(ratio(edge.cpu_per_audio_min, sdk.cpu_per_audio_min))
        out.append(
            f"**Against the SDK** ({vs_sdk} "
            "its CPU): the SDK does less per frame (no durable spool, no MQTT, no pacing or "
            "replay bookkeeping, a sync client). The 0.5x target would need edgecap to do less "
            "than the SDK per message; sending 100 ms messages gets "
            f"{fmt_ratio(ratio(e100.cpu_per_audio_min if e100 else None, sdk.cpu_per_audio_min))}."
        )
    st = r.startup
    if edge and st and st.import_rss_mb:
        rss = dict(st.import_rss_mb)
        base = rss.get("the interpreter alone", 0.0)
        full = rss.get("edgecap.app.daemon (all of edgecap)", 0.0)
        cfg = rss.get("pydantic + edgecap's config models", 0.0)
        aio = rss.get("asyncio", 0.0)
        out.append(
            f"**Memory and imports.** Of {edge.rss_steady_mb:.1f} MB steady RSS, "
            f"{full:.1f} MB is there right after `import edgecap.app.daemon`. The interpreter "
            f"alone holds {base:.1f} MB, with asyncio (and ssl) {aio:.1f} MB, with edgecap's "
            f"config (pydantic and the models) {cfg:.1f} MB; these overlap, and the libraries "
            "are fixed choices (the SDK client carries about the same). Running adds "
            f"{edge.rss_steady_mb - full:.1f} MB (the token client, SQLite, the ALSA "
            "configuration, threads, buffers, sockets). Measured with `smaps` on a daemon "
            "like this one: 17 MB are mapped libraries (libpython 5.1, libcrypto 3.8, "
            "pydantic-core 3.5, sqlite 1.2), 19 MB Python objects (about 510 modules' code "
            "and dictionaries; under 1 MB free in the allocator's arenas, so it is not "
            "fragmentation), 9 MB the C heap (OpenSSL, pydantic-core validators, sqlite, "
            "alsa-lib). pydantic costs about 12 MB for good, asyncio with ssl about 9.5 MB. "
            "This run flatters a real device: its token service and the simulator use plain "
            "http/ws, so no CA store is loaded (an https token service holds certifi's, about "
            "1.2 MB; a wss connection its own default context, about 1.6 MB), and logging to "
            "journald loads systemd-python (about 0.9 MB)."
        )
    shm = next((s for s in r.stream if s.key == "edgecapshm"), None)
    if edge and edge.latency and shm and shm.latency:
        saved = 1 - shm.latency.p50 / edge.latency.p50 if edge.latency.p50 > 0 else 0.0
        out.append(
            "**Latency and the durable spool.** With the spool on tmpfs the added latency is "
            f"{shm.latency.p50:.1f} / {shm.latency.p99:.1f} ms (p50 / p99) instead of "
            f"{edge.latency.p50:.1f} / {edge.latency.p99:.1f} ms: the fsync of each turn's "
            f"SQLite commit (`synchronous=FULL`) is {saved:.0%} of the median here, and an "
            "SD card is usually slower. WAL with `synchronous=NORMAL` would remove it at the "
            "price of the last turns on a power cut (not on a crash)."
        )
    return out


SETUP = """\
Every contender captures through real ALSA: its own alsa-lib `file` device reading a FIFO
that the benchmark fills with the same speech program (the six spoken fixtures in a loop,
1 s pause before each) at real time, all starting at the same moment; reading ALSA is the
fairest common source because edgecap must do it. Each streams to its own instance of the
v3 streaming simulator; the simulators run in a separate process whose CPU is not counted.
The scheduler places the processes freely (with `--pin` every contender runs on the last
CPU and the harness on the others: the same core's conditions for all, but clients with
two busy threads then share one core).

- **edgecap**: the real daemon (`python -m edgecap run`), default configuration: token per
  session from the token-service simulator, durable transcript spool, MQTT to a local
  mosquitto. "Gate off" (`session.gate = "always"`) keeps one session open; "gate on" is
  the default `voice` gate, which opens its session when the speech starts and runs the
  voice-activity detector on every frame (the speech pauses are too short for its quiet
  skip; the billing section measures that).
- **AssemblyAI SDK**: the official `assemblyai` package's v3 `StreamingClient` (sync),
  `stream()` fed with the same 50 ms periods, same model and endpointing parameters, its
  default options (it offers permessage-deflate, which the simulator accepts).
- **bare floor**: a loop that reads a period and sends it (websockets' sync client, no
  compression), plus a thread draining what the server sends. Nothing can do less.
- **asyncio floor**: the same, built like edgecap: a thread blocks on the ALSA read and hands
  each period to an asyncio event loop (`call_soon_threadsafe`), where websockets' asyncio
  client sends it; nothing else. Its distance from the bare floor is what that design
  costs; edgecap's distance from it is edgecap's own work.

CPU is user + system time of all the process's threads from `/proc/PID/stat`, read at the
start and end of each measuring window (the speech is split into a few windows). "CPU s /
audio-min" is the lowest of the windows, because on a shared virtual machine interference
only ever adds CPU time; every window is listed, and the user / sys and per-thread columns
are totals over all of them ("other threads": the busiest two). RSS is sampled each second
from `/proc/PID/status` (steady = median of the second half of the samples; peak =
`VmHWM`). Latency is measured with only silence flowing: the simulator sends final turns
{interval_ms:g} ms apart and stamps each just before writing it; the observer stamps the
arrival (both `CLOCK_MONOTONIC`). The "100 ms frames" rows (edgecap with
`audio.frame_ms = 100`, and the floor reading 100 ms periods) show what the per-message
overhead costs; their "x floor" is against the floor with the same frame size."""


def billing_lines(r: Report) -> list[str]:
    """The billing phase's section, one heading level down (it sits inside section 3)."""
    if r.billing is None:
        why = "needs `session.gate`" if not r.gate_available else "skipped in this run"
        return [f"**Billing ratio** (billed ÷ speech seconds): not measured ({why})."]
    return ["#" + line if line.startswith("## ") else line for line in billing_section(r.billing)]


def markdown(r: Report) -> str:
    edge = r.by_kind("edgecap")
    gate = (
        "measured above"
        if r.gate_available
        else "not available yet: the daemon has no `session.gate` (the billing-guard issue "
        "adds it); the benchmark runs it automatically once the key exists"
    )
    parts = [
        "# Benchmarks",
        "",
        f"Generated by `{r.command}` on {r.date} in {r.elapsed_s / 60:.1f} min. Do not edit "
        "by hand: run the script again. Performance is measured here, not asserted in tests.",
        "",
        "## Targets",
        "",
        targets(r),
        "",
        "## Machine and versions",
        "",
        table(["", ""], [[k, v] for k, v in {**r.machine, **r.versions}.items()]),
        "",
        "## 1. CPU and memory while streaming speech",
        "",
        SETUP.format(interval_ms=r.turn_interval_s * 1000),
        "",
        cpu_table(r),
        "",
        noise_note(r),
        "",
        f"During the {r.window.count} window(s), {r.window.seconds:.0f} s in all, the "
        "machine was "
        f"{r.window.machine_busy:.0%} busy over its {r.machine.get('cores', '?')} cores (all "
        f"contenders at once, the feeders, the broker, and the simulator host, which used "
        f"{r.window.simulator_cpu_s:.1f} CPU s); the contenders share that contention, so "
        "compare the ratios, and expect a few tens of percent between runs.",
        "",
        f"edgecap with the `voice` gate on: {gate}.",
        "",
        "## 2. Added turn latency",
        "",
        latency_table(r),
        "",
        "For edgecap this is the whole path a subscriber sees: parse, turn assembly, the "
        "`edgecap.turn/1` payload, the durable spool (an fsync'd SQLite commit), the MQTT "
        "publish and the broker. The SDK and floor rows are the transport floor for "
        'comparison (they publish nothing). The "spool on tmpfs" row is the same daemon '
        "with its state directory in memory: the difference is what the spool's fsync costs "
        "on this disk (an SD card is usually slower). The OpenAI row (the same daemon with "
        '`streaming.provider = "openai"`) is measured in section 1 only: the OpenAI '
        "simulator cannot send turns on demand, and section 6 profiles the AssemblyAI daemon.",
        "",
        "## 3. Reconnect gap, catch-up and billing",
        "",
        "**Reconnect gap** (abrupt drop → audio flowing in the new session):",
        "",
        reconnect_section(r.reconnect),
        "",
        "**Catch-up** (the resilient-streaming issue's measurement: the daemon's own "
        "engine, session, buffer and pacer against the simulators; a drop, then every "
        "connect refused for the outage; live again = backlog <= 100 ms; the backlog drains "
        "at `catchup_rate` - 1):",
        "",
        catchup_section(r.catchup),
        "",
        *billing_lines(r),
        "",
        "## 4. Start-up",
        "",
        startup_section(r.startup) if r.startup else "Not run.",
        "",
        "## 5. Soak",
        "",
        soak_section(r.soak),
        "",
        "## 6. Where edgecap's CPU goes",
        "",
        profile_section(r),
        "",
        "## What limits edgecap",
        "",
        "\n".join(f"- {line}" for line in findings(r)) or "Not enough was measured.",
    ]
    if edge is not None and edge.notes:
        parts += ["", "Notes: " + "; ".join(edge.notes)]
    if r.notes:
        parts += ["", *[f"- {n}" for n in r.notes]]
    return "\n".join(parts) + "\n"
