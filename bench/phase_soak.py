"""Soak (`--soak MINUTES`): one daemon streams speech for a long time while the server drops
the connection and the broker restarts periodically; RSS and open file descriptors are
sampled throughout. Growth compares the steady state after warm-up with the end."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from dataclasses import dataclass, field

from bench import proc
from bench.contenders import edgecap_config, edgecap_process, sim_script
from bench.context import Bench, say
from bench.phase_reconnect import gaps_from_sessions
from bench.stats import Summary, growth, summarize
from edgecap.sim.microphone import AlsaFifoSource, silence
from tests.harness.audio import load_manifest

SAMPLE_EVERY_S = 5.0
BROKER_DOWN_S = 2.0
DELIVERY_GRACE_S = 10.0


@dataclass
class SoakResult:
    minutes: float = 0.0
    drop_every_s: float = 0.0
    broker_every_s: float = 0.0
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (s, MB, fds)
    rss_baseline_mb: float = 0.0
    rss_final_mb: float = 0.0
    rss_max_mb: float = 0.0
    rss_growth: float = 0.0
    fds_baseline: int = 0
    fds_final: int = 0
    fds_max: int = 0
    sessions: int = 0
    server_drops: int = 0
    broker_restarts: int = 0
    turns_sent: int = 0
    turns_received: int = 0
    duplicates: int = 0
    gap: Summary | None = None
    exit_code: int | None = None


def window_median(samples: list[tuple[float, float, int]], start: float, end: float) -> float:
    values = [mb for at, mb, _ in samples if start <= at <= end]
    return statistics.median(values) if values else 0.0


async def _feed(source: AlsaFifoSource) -> None:
    """Keep one cycle of the fixtures (1 s pause before each) queued ahead, forever."""
    cycle = b"".join(silence(1.0) + f.pcm for f in load_manifest())
    while True:
        handle = source.play_pcm(cycle, "speech cycle")
        await handle.await_done(3600)


async def _restart_broker(bench: Bench, every: float, result: SoakResult) -> None:
    while True:
        await asyncio.sleep(every)  # the fault period itself
        await asyncio.to_thread(bench.broker.stop)
        await asyncio.sleep(BROKER_DOWN_S)  # the outage itself
        await asyncio.to_thread(bench.broker.start)
        result.broker_restarts += 1


async def run(bench: Bench, minutes: float, drop_every: float, broker_every: float) -> SoakResult:
    result = SoakResult(minutes=minutes, drop_every_s=drop_every, broker_every_s=broker_every)
    urls = await bench.start_sim("soak", sim_script(int(minutes * 3) + 10))
    await bench.host.call("fault", name="soak", spec=f"drop@wall={drop_every:g}s")
    source = bench.source("benchsoak")
    config = edgecap_config(
        bench.workdir / "soak.toml",
        device_id="bench-soak",
        source=source,
        urls=urls,
        mqtt_port=bench.broker.port,
    )
    process = edgecap_process("soak", config, source, urls, bench.log("soak"))
    await process.start(bench.changes)
    await bench.host.call("wait_streaming", name="soak", index=0, timeout=60)
    sampler = proc.Sampler(process.pid, interval=SAMPLE_EVERY_S).start()
    tasks = [
        asyncio.create_task(_feed(source)),
        asyncio.create_task(_restart_broker(bench, broker_every, result)),
    ]
    started = time.monotonic()
    try:
        total = minutes * 60
        while (elapsed := time.monotonic() - started) < total:
            await asyncio.sleep(min(60.0, total - elapsed))  # progress report period
            elapsed = time.monotonic() - started
            last = sampler.samples[-1] if sampler.samples else None
            if last is not None:
                say(
                    f"  soak {elapsed / 60:.1f}/{minutes:g} min: RSS {last.rss_kb / 1024:.1f} MB, "
                    f"{last.fds} fds, {result.broker_restarts} broker restarts"
                )
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not bench.broker.running:
            await asyncio.to_thread(bench.broker.start)
        await sampler.stop()
    await asyncio.sleep(DELIVERY_GRACE_S)  # the spool flushes after the last broker restart
    result.exit_code = await process.stop()
    t0 = sampler.samples[0].at
    result.samples = [(s.at - t0, s.rss_kb / 1024, s.fds) for s in sampler.samples]
    span = result.samples[-1][0]
    warm = min(60.0, span * 0.2)
    result.rss_baseline_mb = window_median(result.samples, warm, warm + max(warm, 30.0))
    result.rss_final_mb = window_median(result.samples, span - max(warm, 30.0), span)
    result.rss_max_mb = max(mb for _, mb, _ in result.samples)
    result.rss_growth = growth(result.rss_baseline_mb, result.rss_final_mb)
    fds = [n for _, _, n in result.samples]
    result.fds_baseline, result.fds_final, result.fds_max = fds[len(fds) // 5], fds[-1], max(fds)
    sessions = await bench.sessions("soak")
    result.sessions = len(sessions)
    result.server_drops = sum(1 for s in sessions if s["close_code"] == 1006)
    gaps = gaps_from_sessions(sessions, len(sessions) - 1)
    result.gap = summarize(gaps) if gaps else None
    result.turns_sent = sum(len(s["finals"]) for s in sessions)
    received = bench.subscriber.of_device("bench-soak")
    result.turns_received = len({t.turn_id for t in received})
    result.duplicates = len(received) - result.turns_received
    return result
