"""Check 2: the audio device opens with the configured format, and what it hears.

Records about two seconds exactly as the daemon captures (the capture child process, so a
device whose open blocks is reported, never waited for), and reports the level (RMS and
peak dBFS), clipping and silence.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from edgecap.app import wiring
from edgecap.audio.capture import CaptureEvent, CaptureProcess, CaptureSettings, DeviceError
from edgecap.audio.frame import Frame
from edgecap.doctor.context import DoctorContext
from edgecap.doctor.levels import Levels, measure
from edgecap.doctor.result import CheckResult, failed, passed, skipped, warned

CHECK = "audio"
READ_GRACE_SECONDS = 3.0
OPEN_TIMEOUT_SECONDS = 5.0
_NUMBERED = re.compile(r"^(plug)?hw:\d+(,\d+)?$")
_CARD = re.compile(r"CARD=([^,]+)")


@dataclass
class Recording:
    pcm: bytearray = field(default_factory=bytearray)
    overruns: int = 0
    error: str | None = None


async def record(settings: CaptureSettings, seconds: float) -> Recording:
    """Open like the daemon and record ``seconds``; ``DeviceError`` if it does not open.

    The daemon's own capture process does the ALSA work: a device that does not open
    within ``OPEN_TIMEOUT_SECONDS`` (held by another program, a sound server that does not
    answer) is reported with its likely cause and the child is killed; a device that opens
    but stalls is reported after ``seconds`` plus a grace period. Never blocks the doctor.
    """
    periods = max(1, math.ceil(seconds * 1000 / settings.frame_ms))
    result = Recording()
    outcome: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
    done = asyncio.Event()

    def on_frame(frame: Frame) -> None:
        if len(result.pcm) < periods * settings.period_bytes:
            result.pcm.extend(frame.pcm)
        if len(result.pcm) >= periods * settings.period_bytes:
            done.set()

    def on_event(event: CaptureEvent) -> None:
        if event.kind == "overrun":
            result.overruns += 1
        elif event.kind in ("opened", "unavailable") and not outcome.done():
            outcome.set_result(event.detail if event.kind == "unavailable" else None)
        elif event.kind == "unavailable" and not done.is_set():
            result.error = event.detail
            done.set()

    capture = CaptureProcess(
        dataclasses.replace(settings, open_report_seconds=OPEN_TIMEOUT_SECONDS),
        asyncio.get_running_loop(),
        on_frame,
        on_event,
    )
    capture.start()
    try:
        problem = await asyncio.wait_for(outcome, OPEN_TIMEOUT_SECONDS + READ_GRACE_SECONDS)
        if problem is not None:
            raise DeviceError(problem)
        try:
            await asyncio.wait_for(done.wait(), seconds + READ_GRACE_SECONDS)
        except TimeoutError:
            result.error = (
                f"audio device {settings.device!r} opened but delivered "
                f"{len(result.pcm) // settings.period_bytes} of {periods} periods in "
                f"{seconds + READ_GRACE_SECONDS:g} s: the device is stalled"
            )
    finally:
        await capture.stop()
    return result


def edgecap_daemon_running(proc: Path = Path("/proc")) -> bool:
    """Whether an `edgecap run` process (the service) is running on this machine (best
    effort: with ProtectProc or hidepid another user's processes are invisible)."""
    me = os.getpid()
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [os.path.basename(a.decode(errors="replace")) for a in argv if a]
        if "run" in words and any(w == "edgecap" or w.startswith("edgecap") for w in words):
            return True
    return False


def open_fix(message: str, config_path: str, *, daemon_running: bool = False) -> str:
    """What to do when the device does not open (``message`` from the capture process)."""
    held = "held by another program" in message or "busy" in message
    if daemon_running and (held or "has not opened" in message):
        return (
            "the edgecap service is running and holds the device: stop it first "
            "(`sudo systemctl stop edgecap`), run the doctor, then `sudo systemctl start "
            "edgecap`"
        )
    if "sound server does not answer" in message:
        return (
            "PipeWire/Pulse does not answer: check it (`systemctl --user status pipewire "
            "wireplumber` as its user), or capture from the card directly with the "
            "`pipewire`/`pulse` device's card name: `edgecap devices` prints the "
            "plughw:CARD=<name>,DEV=0 line for [audio]"
        )
    if "not found" in message:
        return (
            "plug the microphone in, then run `edgecap devices` and copy the config line it "
            f"prints into [audio] of {config_path}; stable names (plughw:CARD=<name>,DEV=0) "
            "survive card renumbering, hw:1,0 does not"
        )
    if held:
        return (
            "another program records from the device; if the edgecap service runs, it holds "
            "it: `sudo systemctl stop edgecap`, run the doctor, `sudo systemctl start edgecap` "
            "(or use a dsnoop: device to share it)"
        )
    if "permission" in message.lower():
        return (
            "add your user to the 'audio' group (`sudo usermod -aG audio $USER`, then log in "
            "again) or run the doctor with sudo; the service gets the group from its unit"
        )
    if "does not support" in message:
        return "use the plughw: form of the device so ALSA converts (see `edgecap devices`)"
    return "run `edgecap devices` to see which capture devices work and how to name them"


def _mixer_hint(device: str) -> str:
    match = _CARD.search(device)
    card = f" -c {match.group(1)}" if match else ""
    return (
        f"unmute the capture channel and raise its gain: `alsamixer{card}` (F4 shows the "
        f"capture controls, Space toggles capture) or `amixer{card} sset Capture cap 80%`"
    )


def judge(device: str, levels: Levels, overruns: int) -> CheckResult:
    """The verdict on a recording (no I/O)."""
    data = {
        "device": device,
        "seconds": round(levels.seconds, 2),
        "rms_dbfs": levels.rms_dbfs,
        "peak_dbfs": levels.peak_dbfs,
        "clipped_samples": levels.clipped_samples,
        "dc_offset": levels.dc_offset,
        "overruns": overruns,
    }
    heard = (
        f"recorded {levels.seconds:.1f} s from {device!r}: RMS {levels.rms_dbfs:.1f} dBFS, "
        f"peak {levels.peak_dbfs:.1f} dBFS"
    )
    if levels.digital_silence:
        return failed(
            CHECK,
            f"{heard}: digital silence (every sample is 0): is the microphone muted?",
            _mixer_hint(device) + "; check that the microphone is connected to this card",
            **data,
        )
    if levels.muted:
        return failed(
            CHECK,
            f"{heard}: almost no signal, not even room noise: is the microphone muted?",
            _mixer_hint(device),
            **data,
        )
    if levels.clipping:
        return warned(
            CHECK,
            f"{heard}, {levels.clipped_samples} clipped samples: the input is overdriven and "
            "speech will be distorted",
            "lower the capture gain (`alsamixer`) until peaks stay below about -3 dBFS "
            "while you speak",
            **data,
        )
    if levels.quiet:
        return warned(
            CHECK,
            f"{heard}: very quiet",
            "speak while the doctor records; if the level stays this low, raise the capture "
            "gain (`alsamixer`) or move the microphone closer",
            **data,
        )
    if _NUMBERED.match(device):
        return warned(
            CHECK,
            f"{heard}; but {device!r} names the card by number, which changes when USB "
            "devices are plugged in another order or after a reboot",
            "use the stable name `edgecap devices` prints (plughw:CARD=<name>,DEV=<n>)",
            **data,
        )
    suffix = f", {overruns} overrun(s)" if overruns else ""
    return passed(CHECK, heard + suffix, **data)


async def check_audio(ctx: DoctorContext) -> CheckResult:
    audio = ctx.cfg.audio
    if audio is None:
        return skipped(CHECK, ctx.cfg.unavailable("audio"))
    settings = wiring.capture_settings_for(audio, None)  # as the daemon opens it
    try:
        recording = await record(settings, ctx.options.record_seconds)
    except DeviceError as exc:
        fix = open_fix(str(exc), str(ctx.cfg.path), daemon_running=edgecap_daemon_running())
        return failed(CHECK, str(exc), fix, device=audio.device)
    if recording.error is not None:
        return failed(
            CHECK,
            recording.error,
            "check the device's cable/USB connection and `dmesg` for errors; a stalled "
            "device often recovers after replugging",
            device=audio.device,
        )
    ctx.audio_ok = True
    return judge(audio.device, measure(bytes(recording.pcm), audio.sample_rate), recording.overruns)
