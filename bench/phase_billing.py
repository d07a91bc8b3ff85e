"""Billing: what each way of running the daemon bills for the same speech, side by side.

Each program (bench/billing_programs.py: isolated commands, a conversation, the 10 %-speech
program) is played through real ALSA capture into one daemon per contender at once, each
with its own simulator, so all hear the same audio on the same machine:

- `always`: one session open throughout (`gate = "always"`);
- `voice 10 s`: the voice gate with the settings before issue 16 (`idle_close_seconds = 10`,
  `preroll_ms = 500`; the 1 s first-message allowance of this build is not a setting);
- `voice`: the voice gate with the shipped settings (the session ends ~1 s after the talk);
- `sync`: the AssemblyAI Sync API provider (one POST per utterance, billed per second of
  audio sent; its simulator answers after 134 ms, the service's stated time);
- `voicebase`: with `--baseline`, the shipped settings of that source tree.

Per contender: billed seconds as the simulator counts them (`Termination`'s
`session_duration_seconds`, or its own open time when a session ended without one) over
the program's speech, words lost (spoken words missing, in order, from the turns on MQTT),
the time from the end of each sentence's speech to its turn arriving on MQTT (median, p95;
separately for sentences that had to open a new session), connections per hour and CPU
per audio-minute. The detector's own CPU is measured in this process.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from bench import proc
from bench.billing_measure import Arrival, delivered
from bench.billing_programs import BillingProgram, commands, conversation, ten_percent
from bench.contenders import Provider, edgecap_config, edgecap_process
from bench.context import Bench, say
from bench.stack import BenchError, ClientProcess
from bench.stats import per_audio_minute, percentile
from edgecap.sim.microphone import AlsaFifoSource
from tests.harness.audio import room_noise

FRAME_BYTES = 1600  # 50 ms at 16 kHz, PCM16 mono
CLOSE_WAIT_S = 30.0  # after a program: the last sessions end (voice 10 s closes 10 s late)


@dataclass(frozen=True)
class Contender:
    key: str
    label: str
    gate: str
    extra: dict[str, dict[str, object]] = field(default_factory=dict)
    baseline: bool = False
    provider: Provider = "assemblyai"


CONTENDERS = (
    Contender("always", "always", "always"),
    Contender(
        "voice10",
        "voice 10 s (before)",
        "voice",
        {"session": {"idle_close_seconds": 10.0, "preroll_ms": 500}},
    ),
    Contender("voice", "voice (shipped)", "voice"),
    Contender("sync", "sync API", "voice", provider="sync"),
)


@dataclass
class Row:
    contender: str
    sessions: int = 0
    billed_s: float = 0.0
    sim_open_s: float = 0.0
    ratio: float = 0.0  # billed / speech
    words: int = 0
    words_lost: int = 0
    turns: int = 0
    median_s: float | None = None
    p95_s: float | None = None
    new_session_median_s: float | None = None
    new_session_count: int = 0
    per_hour: float = 0.0  # connections per hour of program
    cpu_per_audio_min: float = 0.0
    clean_ends: int = 0


@dataclass
class ProgramResult:
    name: str
    description: str
    audio_s: float
    speech_s: float
    sentences: int
    rows: list[Row] = field(default_factory=list)


@dataclass
class DetectorRow:
    label: str
    cpu_per_audio_min: float
    skipped: float  # share of frames the model did not run on


@dataclass
class BillingResult:
    minutes: float = 0.0
    programs: list[ProgramResult] = field(default_factory=list)
    vad_cpu_per_audio_min: float = 0.0
    detector: list[DetectorRow] = field(default_factory=list)


def vad_verdicts(pcm: bytes, threshold: float = 0.5) -> tuple[list[bool], float]:
    """Per-frame speech verdicts of the daemon's detector and its CPU per audio-minute."""
    from edgecap.billing.gate import MicroVadDetector

    detector = MicroVadDetector(threshold)
    frames = [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]
    t0 = time.process_time()
    verdicts = [detector.is_speech(f) for f in frames]
    cpu = time.process_time() - t0
    return verdicts, per_audio_minute(cpu, len(frames) * 0.05)


DETECTOR_SAMPLE_S = 120.0


def detector_rows(pcm: bytes) -> list[DetectorRow]:
    """The detector's CPU on (up to two minutes of) the program: the model on every frame,
    and the default quiet skip on the program's digital-silence background and with a
    room's noise floor added (the skip helps only below `session.vad_quiet_dbfs`)."""
    from edgecap.billing.gate import MicroVadDetector

    pcm = pcm[: int(DETECTOR_SAMPLE_S * 32000)]
    quiet = array("h")
    quiet.frombytes(pcm)
    cases: list[tuple[str, bytes, int]] = [
        ("model on every frame (no quiet skip)", pcm, 10**9),
        ("default: quiet skip below -50 dBFS peak; background digital silence", pcm, 1000),
    ]
    for dbfs in (-70, -60):
        noise = array("h")
        noise.frombytes(room_noise(len(pcm) / 32000, noise_dbfs=dbfs, seed=dbfs))
        mixed = array(
            "h", (max(-32768, min(32767, a + b)) for a, b in zip(quiet, noise, strict=False))
        )
        cases.append((f"default, background noise {dbfs} dBFS RMS", mixed.tobytes(), 1000))
    rows = []
    for label, audio, hold_ms in cases:
        detector = MicroVadDetector(hold_ms=hold_ms)
        frames = [audio[i : i + FRAME_BYTES] for i in range(0, len(audio), FRAME_BYTES)]
        t0 = time.process_time()
        for f in frames:
            detector.is_speech(f)
        cpu = time.process_time() - t0
        skipped = detector.skipped_frames / max(1, detector.frames)
        rows.append(DetectorRow(label, per_audio_minute(cpu, len(frames) * 0.05), skipped))
    return rows


# -- the live run ------------------------------------------------------------------------


async def _wait_log(process: ClientProcess, fragment: str, timeout: float) -> None:  # noqa: ASYNC109
    """Poll the daemon's log file (the bench's own pacing, not a test's synchronisation)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = process.log_path.read_text(errors="replace") if process.log_path.exists() else ""
        if fragment in text:
            return
        if not process.running:
            break
        await asyncio.sleep(0.2)
    raise BenchError(f"{process.name}: no {fragment!r} in the log\n{process.log_tail()}")


@dataclass
class _Started:
    contender: Contender
    key: str
    source: AlsaFifoSource
    process: ClientProcess


async def _start(
    bench: Bench, c: Contender, program: BillingProgram, tag: str, tree: Path | None
) -> _Started:
    key = f"bill{c.key}{tag}"
    urls = await bench.start_sim(key, list(program.texts), kind=c.provider)
    source = bench.source(f"bench{key}")
    config = edgecap_config(
        bench.workdir / f"{key}.toml",
        device_id=f"bench-{key}",
        source=source,
        urls=urls,
        mqtt_port=bench.broker.port,
        gate=c.gate,
        extra=c.extra,
        provider=c.provider,
    )
    process = edgecap_process(key, config, source, urls, bench.log(key), tree=tree)
    await process.start(bench.changes)
    return _Started(c, key, source, process)


async def run(bench: Bench, minutes: float, baseline: Path | None = None) -> BillingResult:
    """Every program through every contender (`baseline`: also `voicebase`, the shipped
    settings of that source tree)."""
    result = BillingResult(minutes)
    contenders = list(CONTENDERS)
    if baseline is not None:
        contenders.append(Contender("voicebase", "voice (baseline tree)", "voice", baseline=True))
    short = minutes < 3  # --quick: fewer commands, a shorter conversation
    programs = (
        ("c", commands(3 if short else 5)),
        ("v", conversation(1.0 if short else 2.0)),
        ("t", ten_percent(minutes)),
    )
    for tag, program in programs:
        say(
            f"    {program.name}: {program.seconds:.0f} s of audio, {program.speech_s:.0f} s "
            f"of speech, {len(program.utterances)} sentences"
        )
        result.programs.append(await _run_program(bench, program, tag, contenders, baseline))
    verdict_pcm = ten_percent(min(minutes, 2.0)).pcm
    _, result.vad_cpu_per_audio_min = vad_verdicts(verdict_pcm)
    result.detector = detector_rows(verdict_pcm)
    return result


async def _run_program(
    bench: Bench,
    program: BillingProgram,
    tag: str,
    contenders: list[Contender],
    baseline: Path | None,
) -> ProgramResult:
    out = ProgramResult(
        program.name,
        program.description,
        program.seconds,
        program.speech_s,
        len(program.utterances),
    )
    started = [
        await _start(bench, c, program, tag, baseline if c.baseline else None) for c in contenders
    ]
    try:
        for s in started:
            state = "state streaming" if s.contender.gate == "always" else "state listening"
            await _wait_log(s.process, state, 60)
        cpu0 = [proc.cpu_seconds(s.process.pid) for s in started]
        handles = [s.source.play_pcm(program.pcm, program.name) for s in started]
        for handle in handles:
            await handle.await_done(program.seconds + 60)
        cpu1 = [proc.cpu_seconds(s.process.pid) for s in started]
        for s in started:
            if s.contender.gate == "voice":
                await _wait_closed(bench, s.key, CLOSE_WAIT_S)
    finally:
        for s in started:
            await s.process.stop()
    for s, h, c0, c1 in zip(started, handles, cpu0, cpu1, strict=True):
        assert h.started_monotonic is not None
        out.rows.append(await _row(bench, s, program, h.started_monotonic, c1 - c0))
    return out


async def _wait_closed(bench: Bench, key: str, timeout: float) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sessions = await bench.sessions(key)
        if all(s["close_code"] is not None for s in sessions):
            return
        await asyncio.sleep(0.5)


async def _row(
    bench: Bench, s: _Started, program: BillingProgram, played_at: float, cpu: float
) -> Row:
    sessions = await bench.sessions(s.key)
    row = Row(s.contender.label, sessions=len(sessions))
    for session in sessions:
        open_s = float(session.get("open_seconds") or 0.0)
        billed = session["session_duration_seconds"]
        row.billed_s += float(billed) if billed is not None else open_s
        row.sim_open_s += open_s
        row.clean_ends += bool(session["terminate_received"] and session["close_code"] == 1000)
    row.ratio = row.billed_s / program.speech_s if program.speech_s else 0.0
    turns = bench.subscriber.of_device(f"bench-{s.key}")
    row.turns = len(turns)
    got = delivered(
        program.utterances, [Arrival(t.at - played_at, t.session_id, t.text) for t in turns]
    )
    row.words, row.words_lost = got.words, got.words_lost
    row.median_s, row.p95_s = got.median_s, got.p95_s
    if got.new_session_latencies:
        row.new_session_median_s = percentile(got.new_session_latencies, 50)
        row.new_session_count = len(got.new_session_latencies)
    row.per_hour = row.sessions / (program.seconds / 3600)
    row.cpu_per_audio_min = per_audio_minute(cpu, program.seconds)
    return row


# -- report ------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def section(r: BillingResult | None) -> list[str]:
    """Markdown lines (also printed on the console)."""
    if r is None:
        return []
    lines = [
        "## Billing: paying for speech, not for waiting",
        "",
        "Each program through real ALSA capture into one daemon per contender at once (each "
        "with its own simulator). Billed seconds as the simulator counts them (its "
        "`session_duration_seconds`, rounded to the second per session like AssemblyAI's); "
        'latency from the end of a sentence\'s speech to its turn on MQTT; "new session": '
        "the sentences whose turn came from a session the sentence before did not use (a "
        "follow-up that paid a reconnect). Targets (issue 16): voice <= 1.5x for isolated "
        "commands, <= 1.3x on the 10 %-speech program, no word lost.",
        "",
    ]
    for p in r.programs:
        lines += [
            f"**{p.name}**: {p.description}; {p.audio_s:.0f} s of audio, {p.speech_s:.1f} s "
            f"of speech in {p.sentences} sentences.",
            "",
            "| contender | sessions | per hour | billed s | billed / speech | words lost | "
            "latency median s | p95 s | new session: median s (n) | CPU s / audio-min |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for m in p.rows:
            new = (
                f"{_s(m.new_session_median_s)} ({m.new_session_count})"
                if m.new_session_count
                else "-"
            )
            lines.append(
                f"| {m.contender} | {m.sessions} | {m.per_hour:.0f} | {m.billed_s:.0f} | "
                f"{m.ratio:.2f} | {m.words_lost} of {m.words} | {_s(m.median_s)} | "
                f"{_s(m.p95_s)} | {new} | {m.cpu_per_audio_min:.3f} |"
            )
        lines.append("")
    lines += [
        f"The gate's detector (pymicro-vad, 10 ms steps) costs {r.vad_cpu_per_audio_min:.3f} "
        "CPU-s per audio-minute on its own (this process, two minutes of the 10 % program, "
        "default settings). It skips the model once the peak level has stayed below "
        "`session.vad_quiet_dbfs` for a second (warming it with the last 300 ms when the "
        "level rises); what that saves depends on the room's noise floor:",
        "",
        "| detector | CPU s / audio-min | frames skipped |",
        "|---|---|---|",
        *(
            f"| {d.label} | {d.cpu_per_audio_min:.3f} | {100 * d.skipped:.0f} % |"
            for d in r.detector
        ),
    ]
    return lines
