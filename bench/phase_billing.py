"""Billing ratio: a duty-cycle scenario (10 % speech) through edgecap with `gate = "voice"`
and with `gate = "always"`, side by side.

Both daemons run at once, each on its own ALSA device fed the same program at the same
moment and each with its own simulator pair, so they see the same audio and the same
machine. The program is silence with bursts of speech (the fixtures, a second apart, like
someone saying a few sentences) spread evenly over it. Measured per daemon: the billed
seconds as the simulator counts them (`Termination.session_duration_seconds`, or its own
open time when a session ended without one), sessions opened, words lost (expected words
missing from the turns that arrived on MQTT), and CPU per audio-minute (process CPU times).
The gate's own cost is the voice-activity detector run in this process over the program.

The idle-close time dominates the ratio for short bursts, so the table also gives the ratio
for other `idle_close_seconds` values, computed by running the same gate decisions over the
same detector verdicts (with the per-session overhead measured in the live run) - computed,
not measured end to end, and labelled so.
"""

from __future__ import annotations

import asyncio
import difflib
import re
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from bench import proc
from bench.contenders import edgecap_config, edgecap_process
from bench.context import Bench, say
from bench.stack import BenchError, ClientProcess
from bench.stats import per_audio_minute
from edgecap.billing.admission import Action, Admission, AdmissionSettings
from edgecap.billing.gate import GateMode, GateSettings
from edgecap.sim.microphone import AlsaFifoSource, silence
from tests.harness.audio import load_manifest, room_noise

FRAME_BYTES = 1600  # 50 ms at 16 kHz, PCM16 mono
IDLE_CLOSE_S = 10.0  # the default
COMPUTED_IDLE_CLOSE = (2.0, 5.0, 10.0)


@dataclass(frozen=True)
class BillingProgram:
    pcm: bytes
    texts: tuple[str, ...]
    speech_s: float  # the fixtures' speech, without their leading/trailing silence
    bursts: int
    lead_s: float = 0.0  # the silence before the first burst

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 32000


def billing_program(
    minutes: float, fraction: float = 0.1, burst_s: float = 15.0, pause_s: float = 1.0
) -> BillingProgram:
    """`minutes` of audio with `fraction` speech, in bursts of about `burst_s` of speech."""
    fixtures = load_manifest()
    total_s = minutes * 60
    bursts = max(1, round(total_s * fraction / burst_s))
    per_burst = total_s * fraction / bursts
    chunks: list[bytes] = []
    texts: list[str] = []
    speech = 0.0
    i = 0
    for _ in range(bursts):
        burst: list[bytes] = []
        said = 0.0
        while said < per_burst:
            f = fixtures[i % len(fixtures)]
            i += 1
            burst.append((silence(pause_s) if burst else b"") + f.pcm)
            said += (f.duration_ms - f.leading_silence_ms - f.trailing_silence_ms) / 1000
            texts.append(f.text)
        speech += said
        chunks.append(b"".join(burst))
    quiet_s = max(0.0, total_s - sum(len(c) for c in chunks) / 32000)
    gap = silence(quiet_s / (bursts + 1))
    pcm = gap + b"".join(c + gap for c in chunks)
    return BillingProgram(pcm, tuple(texts), speech, bursts, len(gap) / 32000)


@dataclass
class ModeResult:
    gate: str
    sessions: int = 0
    billed_s: float = 0.0
    sim_open_s: float = 0.0  # the simulator's own measure: Begin to close
    ratio: float = 0.0  # billed / speech
    words: int = 0
    words_lost: int = 0
    turns: int = 0
    cpu_s: float = 0.0
    cpu_per_audio_min: float = 0.0
    clean_ends: int = 0


@dataclass
class ComputedRow:
    idle_close_s: float
    sessions: int
    billed_s: float
    ratio: float


@dataclass
class DetectorRow:
    label: str
    cpu_per_audio_min: float
    skipped: float  # share of frames the model did not run on


@dataclass
class BillingResult:
    minutes: float = 0.0
    audio_s: float = 0.0
    speech_s: float = 0.0
    bursts: int = 0
    modes: list[ModeResult] = field(default_factory=list)
    vad_cpu_per_audio_min: float = 0.0
    detector: list[DetectorRow] = field(default_factory=list)
    quiet_s: float = 0.0
    quiet_cpu: dict[str, float] = field(default_factory=dict)  # gate -> CPU s / audio-min
    session_overhead_s: float = 0.0
    computed: list[ComputedRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def mode(self, gate: str) -> ModeResult | None:
        return next((m for m in self.modes if m.gate == gate), None)


# -- the detector alone ------------------------------------------------------------------


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


def gate_spans(verdicts: list[bool], idle_close_s: float) -> list[tuple[float, float]]:
    """(open, close) times in seconds of the sessions the gate would hold (pre-roll
    included; no turn is ever open here, so only the idle time keeps a session)."""
    adm = Admission(
        AdmissionSettings(GateSettings(mode=GateMode.VOICE, idle_close_seconds=idle_close_s))
    )
    spans: list[tuple[float, float]] = []
    opened: float | None = None
    t = 0.0
    for i, speech in enumerate(verdicts):
        t = i * 0.05
        action = adm.frame(
            t, speech, session_live=opened is not None, turn_open=False, backlog_ms=0
        )
        if action is Action.OPEN:
            opened = t
        elif action is Action.CLOSE_IDLE and opened is not None:
            spans.append((opened, t))
            opened = None
    if opened is not None:
        spans.append((opened, t))
    return spans


# -- words -------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def words_lost(expected: list[str], received: list[str]) -> tuple[int, int]:
    """(expected words, expected words not found in order in what was received)."""
    want = [w for t in expected for w in _words(t)]
    got = [w for t in received for w in _words(t)]
    matcher = difflib.SequenceMatcher(a=want, b=got, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    return len(want), len(want) - matched


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


async def _start(
    bench: Bench, gate: str, program: BillingProgram, tree: Path | None = None
) -> tuple[str, AlsaFifoSource, ClientProcess]:
    key = f"bill{gate}" + ("base" if tree is not None else "")
    urls = await bench.start_sim(key, list(program.texts))
    source = bench.source(f"bench{key}")
    config = edgecap_config(
        bench.workdir / f"{key}.toml",
        device_id=f"bench-{key}",
        source=source,
        urls=urls,
        mqtt_port=bench.broker.port,
        gate=gate,
    )
    process = edgecap_process(key, config, source, urls, bench.log(key), tree=tree)
    await process.start(bench.changes)
    return key, source, process


async def run(bench: Bench, minutes: float, baseline: Path | None = None) -> BillingResult:
    """`baseline`: also a voice-gated daemon from that source tree (an A/B of listening and
    of the whole scenario, reported as the gate `voicebase`)."""
    program = billing_program(minutes)
    result = BillingResult(minutes, program.seconds, program.speech_s, program.bursts)
    say(
        f"    {program.seconds:.0f} s of audio, {program.speech_s:.0f} s of speech in "
        f"{program.bursts} burst(s), {len(program.texts)} sentences"
    )
    started = [await _start(bench, gate, program) for gate in ("voice", "always")]
    if baseline is not None:
        started.append(await _start(bench, "voice", program, baseline))
    try:
        for key, _, process in started:
            state = "state listening" if key.startswith("billvoice") else "state streaming"
            await _wait_log(process, state, 60)
        cpu0 = [proc.cpu_seconds(p.pid) for _, _, p in started]
        handles = [src.play_pcm(program.pcm, "billing program") for _, src, _ in started]
        if program.lead_s >= 10:  # a measuring window inside the silence before speech
            await asyncio.sleep(2)
            q0, t0 = [proc.cpu_seconds(p.pid) for _, _, p in started], time.monotonic()
            await asyncio.sleep(program.lead_s - 3)
            q1, result.quiet_s = (
                [proc.cpu_seconds(p.pid) for _, _, p in started],
                time.monotonic() - t0,
            )
            for (key, _, _), a, b in zip(started, q0, q1, strict=True):
                result.quiet_cpu[key.removeprefix("bill")] = per_audio_minute(b - a, result.quiet_s)
        for handle in handles:
            await handle.await_done(program.seconds + 60)
        cpu1 = [proc.cpu_seconds(p.pid) for _, _, p in started]
        # the voice session still open after the last burst ends after the idle time
        for key, _, _ in started:
            if key.startswith("billvoice"):
                await _wait_closed(bench, key, IDLE_CLOSE_S + 20)
    finally:
        for _, _, process in started:
            await process.stop()
    for (key, _, _), c0, c1 in zip(started, cpu0, cpu1, strict=True):
        result.modes.append(await _mode_result(bench, key, program, c1 - c0))
    verdicts, result.vad_cpu_per_audio_min = vad_verdicts(program.pcm)
    result.detector = detector_rows(program.pcm)
    voice = result.mode("voice")
    live_spans = gate_spans(verdicts, IDLE_CLOSE_S)
    if voice is not None and voice.sessions:
        gated = sum(b - a for a, b in live_spans)
        result.session_overhead_s = max(0.0, (voice.billed_s - gated) / voice.sessions)
        if len(live_spans) != voice.sessions:
            result.notes.append(
                f"the live run opened {voice.sessions} session(s), the computed gate "
                f"{len(live_spans)}: the computed rows are approximate"
            )
    for idle in COMPUTED_IDLE_CLOSE:
        spans = gate_spans(verdicts, idle)
        billed = sum(b - a for a, b in spans) + len(spans) * result.session_overhead_s
        ratio = billed / program.speech_s if program.speech_s else 0.0
        result.computed.append(ComputedRow(idle, len(spans), billed, ratio))
    return result


async def _wait_closed(bench: Bench, key: str, timeout: float) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sessions = await bench.sessions(key)
        if all(s["close_code"] is not None for s in sessions):
            return
        await asyncio.sleep(0.5)


async def _mode_result(bench: Bench, key: str, program: BillingProgram, cpu: float) -> ModeResult:
    gate = key.removeprefix("bill")
    sessions = await bench.sessions(key)
    m = ModeResult(gate, sessions=len(sessions), cpu_s=cpu)
    for s in sessions:
        open_s = float(s.get("open_seconds") or 0.0)
        billed = s["session_duration_seconds"]
        m.billed_s += float(billed) if billed is not None else open_s
        m.sim_open_s += open_s
        m.clean_ends += bool(s["terminate_received"] and s["close_code"] == 1000)
    m.ratio = m.billed_s / program.speech_s if program.speech_s else 0.0
    received = [t.text for t in bench.subscriber.of_device(f"bench-{key}")]
    m.turns = len(received)
    m.words, m.words_lost = words_lost(list(program.texts), received)
    m.cpu_per_audio_min = per_audio_minute(cpu, program.seconds)
    return m


# -- report ------------------------------------------------------------------------------


def section(r: BillingResult | None) -> list[str]:
    """Markdown lines (also printed on the console)."""
    if r is None:
        return []
    lines = [
        "## Billing ratio (voice gate against an always-open session)",
        "",
        f"{r.audio_s / 60:.1f} minutes of audio with {r.speech_s:.0f} s of speech "
        f"({100 * r.speech_s / r.audio_s:.0f} %) in {r.bursts} burst(s) of sentences one "
        "second apart, through real ALSA capture into two daemons at once (each with its own "
        "simulator). Billed seconds as the simulator counts them; target: voice <= 1.3x the "
        "speech, against about 10x for always.",
        "",
        *(
            [
                f"While only listening to the silence before the first burst ({r.quiet_s:.0f} s"
                ", no session for voice), CPU s per audio-minute: "
                + ", ".join(f"{g} {v:.3f}" for g, v in r.quiet_cpu.items())
                + ".",
                "",
            ]
            if r.quiet_cpu
            else []
        ),
        "| gate | sessions | billed s | simulator open s | billed / speech | words lost | "
        "turns | CPU s / audio-min |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in r.modes:
        lines.append(
            f"| {m.gate} | {m.sessions} | {m.billed_s:.0f} | {m.sim_open_s:.1f} | "
            f"{m.ratio:.2f} | {m.words_lost} of {m.words} | {m.turns} | "
            f"{m.cpu_per_audio_min:.3f} |"
        )
    lines += [
        "",
        f"The gate's detector (pymicro-vad, 10 ms steps) costs {r.vad_cpu_per_audio_min:.3f} "
        "CPU-s per audio-minute on its own (this process, same audio, default settings). "
        "It skips the model once the peak level has stayed below `session.vad_quiet_dbfs` "
        "for a second (warming it with the last 300 ms when the level rises); what that "
        "saves depends on the room's noise floor (the first two minutes of the program):",
        "",
        "| detector | CPU s / audio-min | frames skipped |",
        "|---|---|---|",
        *(
            f"| {d.label} | {d.cpu_per_audio_min:.3f} | {100 * d.skipped:.0f} % |"
            for d in r.detector
        ),
        "",
        "Each voice session adds "
        f"{r.session_overhead_s:.1f} s beyond the gate's open time (connection, pre-roll "
        "catch-up, end of the last turn, Terminate).",
        "",
        "Computed, not measured end to end: the same detector verdicts through the same gate "
        "logic with another `session.idle_close_seconds`, plus the measured per-session "
        "overhead:",
        "",
        "| idle_close_seconds | sessions | billed s | billed / speech |",
        "|---|---|---|---|",
    ]
    for c in r.computed:
        lines.append(f"| {c.idle_close_s:g} | {c.sessions} | {c.billed_s:.0f} | {c.ratio:.2f} |")
    lines += [f"Note: {n}" for n in r.notes]
    return lines
