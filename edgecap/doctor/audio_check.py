"""Check 2: the audio device opens with the configured format, and what it hears.

Opens the device exactly as the daemon does (``open_pcm``), records about two seconds and
reports the level (RMS and peak dBFS), clipping and silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from edgecap.audio.capture import CaptureSettings, DeviceError, explain_device_error, open_pcm
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
    open_error: DeviceError | None = None
    error: str | None = None


def _record(
    settings: CaptureSettings, periods: int, into: Recording, opened: Callable[[], None]
) -> None:
    """Open like the daemon, then blocking reads of ``periods`` periods (own thread)."""
    try:
        pcm = open_pcm(settings)
    except DeviceError as exc:
        into.open_error = exc
        return
    finally:
        opened()
    try:
        got = 0
        while got < periods:
            n, data = pcm.read()
            if n == -errno.EPIPE:
                into.overruns += 1
                continue
            if n < 0:
                into.error = f"audio device {settings.device!r} read failed: error {n}"
                return
            into.pcm.extend(data)
            got += 1
    except Exception as exc:  # alsaaudio.ALSAAudioError: the device vanished mid-read
        into.error = explain_device_error(settings.device, exc)
    finally:
        pcm.close()


async def record(settings: CaptureSettings, seconds: float) -> Recording:
    """Open like the daemon and record ``seconds``; ``DeviceError`` if it does not open.

    Open and reads run in a daemon thread: a blocking open (a device held by another
    program) or a stalled device is abandoned after a grace period and reported, and never
    blocks the doctor.
    """
    periods = max(1, math.ceil(seconds * 1000 / settings.frame_ms))
    result = Recording()
    loop = asyncio.get_running_loop()
    opened, done = asyncio.Event(), asyncio.Event()

    def signal(event: asyncio.Event) -> Callable[[], None]:
        def fire() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone after a stall
                loop.call_soon_threadsafe(event.set)

        return fire

    def run() -> None:
        _record(settings, periods, result, signal(opened))
        signal(done)()

    threading.Thread(target=run, name="edgecap-doctor-audio", daemon=True).start()
    try:
        await asyncio.wait_for(opened.wait(), OPEN_TIMEOUT_SECONDS)
    except TimeoutError:
        raise DeviceError(
            f"audio device {settings.device!r} did not open within {OPEN_TIMEOUT_SECONDS:g} s; "
            "it is busy: another program holds it"
        ) from None
    if result.open_error is not None:
        raise result.open_error
    try:
        await asyncio.wait_for(done.wait(), seconds + READ_GRACE_SECONDS)
    except TimeoutError:
        result.error = (
            f"audio device {settings.device!r} opened but delivered "
            f"{len(result.pcm) // settings.period_bytes} of {periods} periods in "
            f"{seconds + READ_GRACE_SECONDS:g} s: the device is stalled"
        )
    return result


def open_fix(message: str, config_path: str) -> str:
    """What to do when the device does not open (``message`` from ``open_pcm``)."""
    if "not found" in message:
        return (
            "plug the microphone in, then run `edgecap devices` and copy the config line it "
            f"prints into [audio] of {config_path}; stable names (plughw:CARD=<name>,DEV=0) "
            "survive card renumbering, hw:1,0 does not"
        )
    if "busy" in message:
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
    settings = CaptureSettings(
        device=audio.device,
        sample_rate=audio.sample_rate,
        frame_ms=audio.frame_ms,
        periods=audio.periods,
    )
    try:
        recording = await record(settings, ctx.options.record_seconds)
    except DeviceError as exc:
        return failed(CHECK, str(exc), open_fix(str(exc), str(ctx.cfg.path)), device=audio.device)
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
