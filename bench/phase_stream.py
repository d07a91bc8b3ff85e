"""CPU and memory while streaming speech in real time, then added turn latency.

All contenders run at once, each on its own ALSA device fed the same speech program at the
same moment, so they share the machine's noise. The measuring window is the program: CPU
times (user + system, all threads, from /proc/PID/stat) are read at its start and its end;
RSS is sampled every second. After it, with only silence flowing, the simulator sends
bursts of final turns to one contender at a time; the latency is the time from the
simulator writing a final Turn to the contender's output: the MQTT message for edgecap,
the client's Turn callback for the SDK and the floor. The OpenAI contender (edgecap with
`streaming.provider = "openai"`, against the OpenAI Realtime simulator) is measured in the
windows only: that simulator cannot send turns on demand, so it has no latency row figures,
and the profile (`--profile`) is of the AssemblyAI daemon.
"""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

from bench import proc
from bench.contenders import (
    Contender,
    Program,
    Provider,
    edgecap_config,
    edgecap_process,
    floor_process,
    gate_available,
    sdk_process,
    speech_program,
)
from bench.context import Bench, say
from bench.profile import Profile, record
from bench.stack import BenchError
from bench.stats import Summary, per_audio_minute, steady, summarize

SETTLE_S = 3.0
GATED = "edgecapvoice"  # no session while silent: no start-up wait, no latency bursts
ASYNC_FLOOR = "floorasync"  # a floor built like edgecap (bench.async_floor_client)
OPENAI = "edgecapopenai"  # the daemon with streaming.provider = "openai"
FINALS_GRACE_S = 3.0


@dataclass
class Window:
    """The machine during the measuring window (contention is shared by all contenders)."""

    seconds: float = 0.0  # all windows together
    count: int = 0
    machine_busy: float = 0.0  # fraction of all cores
    simulator_cpu_s: float = 0.0  # the simulator host, not counted against anyone


@dataclass
class StreamResult:
    key: str
    label: str
    kind: str
    provider: Provider = "assemblyai"
    frame_ms: int = 50
    window_s: float = 0.0
    audio_received_s: float = 0.0
    cpu_s: float = 0.0
    cpu_user_s: float = 0.0
    cpu_sys_s: float = 0.0
    cpu_per_audio_min: float = 0.0  # the lowest window: noise only adds CPU time
    cpu_per_min_windows: list[float] = field(default_factory=list)
    cpu_main_thread_s: float = 0.0
    cpu_other_threads_s: list[float] = field(default_factory=list)  # busiest first
    rss_steady_mb: float = 0.0
    """The daemon's RSS plus its capture child's own memory (USS)."""
    rss_peak_mb: float = 0.0
    rss_samples_mb: list[float] = field(default_factory=list)
    child_uss_mb: float = 0.0
    child_rss_mb: float = 0.0
    child_samples_mb: list[tuple[float, float]] = field(default_factory=list)
    cpu_children_s: float = 0.0
    utterances: int = 0
    finals_sent: int = 0
    finals_delivered: int = 0
    texts_match: bool | None = None
    latency: Summary | None = None
    latency_lost: int = 0
    exit_code: int | None = None
    clean_end: bool = False
    deflate: bool = False
    profile: Profile | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Entry:
    key: str
    label: str
    kind: str
    gate: str | None = None
    frame_ms: int = 50
    spool_in_memory: bool = False
    tree: Path | None = None  # another source tree's edgecap (`--baseline`)
    provider: Provider = "assemblyai"


def tree_name(tree: Path) -> str:
    """The commit a baseline tree is at (a path says nothing to a reader of the report)."""
    done = subprocess.run(
        ["git", "-C", str(tree), "log", "-1", "--format=%h %ad", "--date=short"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or tree.name


def lineup(
    with_extras: bool, baseline: Path | None = None, only: frozenset[str] = frozenset()
) -> list[Entry]:
    """The contenders, edgecap first (the targets use the first edgecap row)."""
    entries: list[Entry] = []
    if gate_available():
        entries.append(Entry("edgecap", "edgecap (gate off)", "edgecap", "always"))
        entries.append(Entry("edgecapvoice", "edgecap (gate on)", "edgecap", "voice"))
    else:
        entries.append(Entry("edgecap", "edgecap (gate off)", "edgecap"))
    if with_extras:  # the second provider: OpenAI Realtime, 16 kHz capture resampled
        label = "edgecap (OpenAI, 16 kHz resampled)"
        entries.append(Entry(OPENAI, label, "edgecap", "always", provider="openai"))
    entries += [Entry("sdk", "AssemblyAI SDK", "sdk"), Entry("floor", "bare floor", "floor")]
    # what the architecture costs: a capture thread handing frames to an event loop
    entries.append(Entry(ASYNC_FLOOR, "asyncio floor (capture thread + event loop)", "floor"))
    if with_extras:  # what the per-message overhead costs: the same clients, 100 ms messages
        entries.append(Entry("edgecap100", "edgecap, 100 ms frames", "edgecap", frame_ms=100))
        entries.append(Entry("floor100", "bare floor, 100 ms frames", "floor", frame_ms=100))
        # what the spool's fsync adds to the latency: the state directory on tmpfs
        label = "edgecap, spool on tmpfs"
        entries.append(Entry("edgecapshm", label, "edgecap", spool_in_memory=True))
    if baseline is not None:  # an A/B run: the same daemon from another source tree
        label = f"edgecap baseline ({tree_name(baseline)})"
        gate = "always" if gate_available() else None  # the baseline must accept it too
        entries.append(Entry("edgecapbase", label, "edgecap", gate, tree=baseline))
    return [e for e in entries if e.key in only] if only else entries


async def _start_contenders(
    bench: Bench, script: list[str], entries: list[Entry]
) -> list[Contender]:
    contenders: list[Contender] = []
    for e in entries:
        key, label, kind = e.key, e.label, e.kind
        urls = await bench.start_sim(key, script, kind=e.provider)
        source = bench.source(f"bench{key}", period_frames=16 * e.frame_ms)
        log = bench.log(key)
        device_id = ""
        if kind == "edgecap":
            device_id = f"bench-{key}"
            state_dir = bench.tmpfs_dir() if e.spool_in_memory else None
            if e.spool_in_memory and state_dir is None:
                continue  # no /dev/shm here
            config = edgecap_config(
                bench.workdir / f"{key}.toml",
                device_id=device_id,
                source=source,
                urls=urls,
                mqtt_port=bench.broker.port,
                gate=e.gate,
                frame_ms=e.frame_ms,
                state_dir=state_dir,
                provider=e.provider,
            )
            process = edgecap_process(key, config, source, urls, log, tree=e.tree)
        elif kind == "sdk":
            process = sdk_process(key, source, urls, log)
        else:
            process = floor_process(key, source, urls, log, asyncio=key == ASYNC_FLOOR)
        await process.start(bench.changes)
        contenders.append(
            Contender(key, label, kind, source, urls, process, device_id, provider=e.provider)
        )
    return contenders


def _audio_s(sessions: list[dict[str, Any]]) -> float:
    return float(sum(s["audio_ms"] for s in sessions)) / 1000


def _finals(sessions: list[dict[str, Any]]) -> list[str]:
    return [text for s in sessions for _, text in s["finals"]]


async def _wait_streaming(bench: Bench, contenders: list[Contender]) -> None:
    for c in contenders:
        if c.key == GATED:
            continue  # it opens its session when the speech program starts
        try:
            await bench.host.call("wait_streaming", name=c.key, index=0, timeout=60)
        except BenchError as exc:
            raise BenchError(f"{c.label} did not stream: {exc}\n{c.process.log_tail()}") from exc


async def measure_window(
    bench: Bench,
    contenders: list[Contender],
    program: Program,
    window: Window,
    results: dict[str, StreamResult],
) -> None:
    """Stream `program` to every contender at once; add what it cost to `results`."""
    before = {c.key: _audio_s(await bench.sessions(c.key)) for c in contenders}
    finals_before = {c.key: len(_finals(await bench.sessions(c.key))) for c in contenders}
    mqtt_before = {c.key: len(bench.subscriber.of_device(c.device_id)) for c in contenders}
    samplers = [proc.Sampler(c.process.pid).start() for c in contenders]
    host_pid = bench.host.pid
    host0, machine0 = proc.cpu_seconds(host_pid), proc.machine_ticks()
    threads0 = [proc.thread_times(c.process.pid) for c in contenders]
    cpu0 = [proc.cpu_times(c.process.pid) for c in contenders]
    t0 = asyncio.get_running_loop().time()
    handles = [c.source.play_pcm(program.pcm, "speech program") for c in contenders]
    for handle in handles:
        await handle.await_done(program.seconds + 30)
    t1 = asyncio.get_running_loop().time()
    cpu1 = [proc.cpu_times(c.process.pid) for c in contenders]
    threads1 = [proc.thread_times(c.process.pid) for c in contenders]
    host1, machine1 = proc.cpu_seconds(host_pid), proc.machine_ticks()
    busy, total = machine1[0] - machine0[0], machine1[1] - machine0[1]
    share = busy / total if total > 0 else 0.0
    window.machine_busy = (window.machine_busy * window.seconds + share * (t1 - t0)) / (
        window.seconds + (t1 - t0)
    )
    window.seconds += t1 - t0
    window.simulator_cpu_s += host1 - host0
    window.count += 1
    after = {c.key: _audio_s(await bench.sessions(c.key)) for c in contenders}
    for sampler in samplers:
        await sampler.stop()
    await asyncio.sleep(FINALS_GRACE_S)  # the last turn's end-of-turn silence, then delivery
    for i, (c, sampler, a, b) in enumerate(zip(contenders, samplers, cpu0, cpu1, strict=True)):
        r = results[c.key]
        main, others = proc.split_by_thread(c.process.pid, threads0[i], threads1[i])
        own = sum(
            threads1[i][t].total - threads0[i][t].total for t in threads1[i] if t in threads0[i]
        )
        r.cpu_children_s += max(0.0, (b.total - a.total - own) / proc.CLOCK_TICKS)
        r.cpu_main_thread_s += main
        r.cpu_other_threads_s = [
            x + y for x, y in zip_longest(r.cpu_other_threads_s, others, fillvalue=0.0)
        ]
        user = (b.utime - a.utime) / proc.CLOCK_TICKS
        system = (b.stime - a.stime) / proc.CLOCK_TICKS
        r.window_s += t1 - t0
        r.audio_received_s += after[c.key] - before[c.key]
        r.cpu_user_s += user
        r.cpu_sys_s += system
        r.cpu_s += user + system
        r.cpu_per_min_windows.append(per_audio_minute(user + system, t1 - t0))
        r.cpu_per_audio_min = min(r.cpu_per_min_windows)
        r.rss_samples_mb += sampler.rss_mb
        r.rss_steady_mb = steady(r.rss_samples_mb)
        uss, rss = sampler.children_mb
        r.child_samples_mb += list(zip(uss, rss, strict=True))
        r.child_uss_mb = steady([u for u, _ in r.child_samples_mb])
        r.child_rss_mb = steady([x for _, x in r.child_samples_mb])
        r.rss_peak_mb = max(r.rss_peak_mb, sampler.peak_mb)
        r.utterances += len(program.texts)
        sessions = await bench.sessions(c.key)
        server_finals = _finals(sessions)[finals_before[c.key] :]
        r.finals_sent += len(server_finals)
        r.deflate = any("permessage-deflate" in s.get("extensions", "") for s in sessions)
        if c.kind == "edgecap":
            delivered = [t.text for t in bench.subscriber.of_device(c.device_id)]
            delivered = delivered[mqtt_before[c.key] :]
        else:
            delivered = server_finals
        r.finals_delivered += len(delivered)
        r.texts_match = r.texts_match is not False and delivered == list(program.texts)


async def measure_latency(
    bench: Bench, c: Contender, result: StreamResult, count: int, interval: float
) -> None:
    for _ in range(20):  # a speech turn may still be open: wait for its end
        try:
            reply = await bench.host.call("emit", name=c.key, count=count, interval=interval)
            break
        except BenchError as exc:
            if "speech turn is open" not in str(exc):
                raise
            await asyncio.sleep(0.5)  # the turn ends after its end-of-turn silence
    else:
        raise BenchError(f"{c.label}: the simulator never got out of a speech turn")
    session_id = reply["session_id"]
    sent = {int(order): float(t) for order, t in reply["sent"]}

    def received() -> dict[int, float]:
        if c.kind == "edgecap":
            return {
                t.turn_order: t.at
                for t in bench.subscriber.of_device(c.device_id)
                if t.session_id == session_id and t.turn_order in sent
            }
        return {o: t for o, t in c.process.finals.items() if o in sent}

    try:
        await bench.changes.wait_until(
            lambda: len(received()) == len(sent), 30, f"{c.label}: {count} turns delivered"
        )
    except BenchError as exc:
        result.notes.append(str(exc))
    got = received()
    result.latency_lost = len(sent) - len(got)
    latencies = [(got[o] - sent[o]) * 1000 for o in sent if o in got]
    if latencies:
        result.latency = summarize(latencies)


async def profile_edgecap(bench: Bench, c: Contender, seconds: float) -> Profile:
    """py-spy samples of the daemon while it streams `seconds` more of the speech program."""
    handle = c.source.play_pcm(speech_program(seconds).pcm, "profiled speech")
    profile = await record(c.process.pid, seconds, bench.workdir / f"{c.key}.pyspy.txt")
    await handle.await_done(seconds + 30)
    return profile


async def run(
    bench: Bench,
    seconds: float,
    latency_turns: int,
    interval: float,
    *,
    profile_s: float = 0.0,
    with_extras: bool = True,
    window: Window | None = None,
    windows: int = 1,
    baseline: Path | None = None,
    only: frozenset[str] = frozenset(),
) -> list[StreamResult]:
    program = speech_program(seconds / windows)
    script = list(program.texts) * (windows + 1)  # the simulator names turns in this order
    contenders = await _start_contenders(bench, script, lineup(with_extras, baseline, only))
    results: dict[str, StreamResult] = {}
    try:
        say(f"  {len(contenders)} contenders started; waiting until each one streams")
        await _wait_streaming(bench, contenders)
        await asyncio.sleep(SETTLE_S)  # let start-up work (imports, first session) finish
        results = {c.key: StreamResult(c.key, c.label, c.kind, c.provider) for c in contenders}
        for c in contenders:
            results[c.key].frame_ms = c.source.period_frames // 16
        for i in range(windows):
            say(f"  window {i + 1}/{windows}: {program.seconds:.0f} s of speech to all at once")
            await measure_window(bench, contenders, program, window or Window(), results)
        for c in contenders:
            if results[c.key].frame_ms != 50 or c.key == GATED:
                continue  # the same path as its 50 ms (or gate-off) twin
            if c.provider != "assemblyai":
                continue  # its simulator sends no turns on demand
            say(f"  latency: {latency_turns} final turns to {c.label}")
            await measure_latency(bench, c, results[c.key], latency_turns, interval)
        profiled = [c for c in contenders if c.kind == "edgecap" and c.provider == "assemblyai"]
        if profile_s > 0 and profiled:
            c = profiled[0]
            say(f"  profiling {c.label} with py-spy for {profile_s:g} s of speech")
            results[c.key].profile = await profile_edgecap(bench, c, profile_s)
    finally:
        for c in contenders:
            code = await c.process.stop()
            if c.key in results:
                results[c.key].exit_code = code
    for c in contenders:
        sessions = await bench.sessions(c.key)
        r = results[c.key]
        r.clean_end = bool(sessions) and sessions[-1]["clean_end"]
        if len(sessions) != 1 and c.key != GATED:  # a gated daemon opens several
            r.notes.append(f"{len(sessions)} sessions (expected 1)")
    return [results[c.key] for c in contenders]
