"""The capture child: the only process of edgecap that calls alsa-lib.

pyalsaaudio holds the GIL in `snd_pcm_open`, the hw-params setup, `prepare` (after an
overrun), `close` and `drop`, and a device can block in any of them: a `hw:` device another
program holds (a blocking open waits until it lets go), PipeWire's or Pulse's ALSA plugin
while the sound server does not answer (the `default` device on Raspberry Pi OS Bookworm),
a plugin reading a FIFO nobody writes. In the daemon's process that would stop every
thread, the event loop included. So the daemon runs this small program instead
(`python -I -S`, the standard library, alsaaudio and three small edgecap modules: about
3 MB of its own memory; see `edgecap.audio.spawn`) and reads what it writes on its stdout
(`edgecap.audio.wire`). The daemon can always kill it; nothing it does can stop the daemon.

It opens the device once (after a non-blocking probe that tells "held by another program"
apart), reports the outcome, then reads periods until the daemon sets the STOP control byte
or the device fails; every failure is reported and ends the process (the daemon decides
when to try again). While the HOLD byte is set, quiet frames wait (up to `hold_frames`) and
go with the next write, so a quiet room wakes the daemon twice a second, not twenty times.
"""

from __future__ import annotations

import _signal  # not `signal`: it imports enum and friends (about 0.9 MB in the child)
import errno
import mmap
import os
import sys
import time

from edgecap.audio import wire
from edgecap.audio.level import peak_below

EXIT_OK = 0
EXIT_FAILED = 2
_BUSY_WORDS = ("busy",)  # alsa-lib's strerror(EBUSY): "Device or resource busy"


class ChildArgs:
    """The command line of the child (plain class: `dataclasses` would cost it memory)."""

    __slots__ = (
        "control_fd",
        "device",
        "hold_frames",
        "period_frames",
        "periods",
        "probe",
        "quiet_limit",
        "rate",
    )

    def __init__(
        self,
        device: str,
        *,
        rate: int,
        period_frames: int,
        periods: int,
        quiet_limit: int = 0,
        hold_frames: int = 1,
        control_fd: int = -1,
        probe: bool = False,
    ) -> None:
        self.device = device
        self.rate = rate
        self.period_frames = period_frames
        self.periods = periods
        self.quiet_limit = quiet_limit
        self.hold_frames = hold_frames
        self.control_fd = control_fd
        self.probe = probe

    def to_argv(self) -> list[str]:
        return [
            self.device,
            str(self.rate),
            str(self.period_frames),
            str(self.periods),
            str(self.quiet_limit),
            str(self.hold_frames),
            str(self.control_fd),
            "1" if self.probe else "0",
        ]

    @classmethod
    def from_argv(cls, argv: list[str]) -> ChildArgs:
        device, rate, period, periods, quiet, hold, control, probe = argv
        return cls(
            device,
            rate=int(rate),
            period_frames=int(period),
            periods=int(periods),
            quiet_limit=int(quiet),
            hold_frames=int(hold),
            control_fd=int(control),
            probe=probe == "1",
        )


class QuietHold:
    """Which frames may wait for the next write (no I/O): a quiet frame while the daemon
    only listens, unless `max_frames` would then be waiting."""

    __slots__ = ("held", "limit", "max_frames")

    def __init__(self, limit: int, max_frames: int) -> None:
        self.limit = limit
        self.max_frames = max_frames
        self.held = 0

    def keep(self, pcm: bytes, holding: bool) -> bool:
        """True: keep `pcm` for the next write; False: write it now, with the kept ones."""
        limit = self.limit
        if limit and holding and self.held + 1 < self.max_frames and peak_below(pcm, limit):
            self.held += 1
            return True
        self.held = 0
        return False


def write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)  # a whole frame fits the pipe at once (the usual case)
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


def is_busy(error: BaseException) -> bool:
    return any(word in str(error).lower() for word in _BUSY_WORDS)


def probably_hardware(device: str) -> bool:
    """Names whose open the kernel itself blocks while another program holds the device."""
    return device.startswith(("hw:", "plughw:"))


class Capture:
    """Open once, then read until stopped or failed, writing messages to `out`."""

    def __init__(self, args: ChildArgs, control: mmap.mmap | bytearray, out: int) -> None:
        import alsaaudio  # only here: tests import this module without ALSA

        self._alsa = alsaaudio
        self.args = args
        self.control = control
        self.out = out

    def send(self, kind: int, text: str) -> None:
        write_all(self.out, wire.message(kind, text.encode("utf-8", "replace")))

    def open(self, mode: int) -> object:
        a, alsa = self.args, self._alsa
        return alsa.PCM(
            type=alsa.PCM_CAPTURE,
            mode=mode,
            rate=a.rate,
            channels=1,
            format=alsa.PCM_FORMAT_S16_LE,
            periodsize=a.period_frames,
            periods=a.periods,
            device=a.device,
        )

    def probe(self) -> None:
        """A non-blocking open tells a device held by another program (EBUSY at once) from
        one that is only slow; the blocking open that follows then waits for it."""
        try:
            pcm = self.open(self._alsa.PCM_NONBLOCK)
        except self._alsa.ALSAAudioError as exc:
            if is_busy(exc):
                self.send(wire.BUSY, str(exc))
            return
        pcm.close()  # type: ignore[attr-defined]

    def run(self) -> int:
        a = self.args
        if a.probe and probably_hardware(a.device):
            self.probe()
        try:
            pcm = self.open(self._alsa.PCM_NORMAL)
        except self._alsa.ALSAAudioError as exc:
            self.send(wire.FAILED, str(exc))
            return EXIT_FAILED
        info = pcm.info()  # type: ignore[attr-defined]
        granted = (info.get("rate"), info.get("channels"), info.get("period_size"))
        if granted != (a.rate, 1, a.period_frames):
            rate, channels, period = granted
            self.send(
                wire.UNSUPPORTED,
                f"granted rate {rate} Hz, {channels} channel(s), period {period} frames",
            )
            return EXIT_FAILED
        self.send(wire.OPENED, f"{a.rate} Hz mono S16_LE, {a.period_frames}-frame periods")
        return self.read_loop(pcm)

    def read_loop(self, pcm: object) -> int:
        a, control, out, error = self.args, self.control, self.out, self._alsa.ALSAAudioError
        pack = wire.HEADER.pack
        want = a.period_frames * 2
        hold = QuietHold(a.quiet_limit, a.hold_frames)
        pending: list[bytes] = []
        read = pcm.read  # type: ignore[attr-defined]
        seq = 0
        while not control[wire.STOP]:
            try:
                n, data = read()
            except error as exc:  # the device vanished or failed
                self.flush(pending)
                self.send(wire.FAILED, str(exc))
                return EXIT_FAILED
            mono, wall = time.monotonic(), time.time()
            if n < 0:
                self.flush(pending)
                if n == -errno.EPIPE:  # overrun: the period is lost, its number too
                    write_all(out, wire.message(wire.OVERRUN, seq=seq, mono=mono, wall=wall))
                    seq += 1
                    continue
                self.send(wire.FAILED, f"read failed: {os.strerror(-n)} (error {n})")
                return EXIT_FAILED
            if len(data) != want:
                continue  # never forwarded as a short frame (whole periods in normal mode)
            message = pack(wire.FRAME, want, seq, mono, wall) + data
            seq += 1
            if hold.keep(data, control[wire.HOLD] == 1):
                pending.append(message)
            elif pending:
                pending.append(message)
                self.flush(pending)
            else:
                write_all(out, message)
        self.flush(pending)
        return EXIT_OK

    def flush(self, pending: list[bytes]) -> None:
        if pending:
            write_all(self.out, b"".join(pending))
            pending.clear()


def main(argv: list[str]) -> int:
    # Own process group (no terminal signals reach it); SIGINT ignored anyway. SIGTERM and
    # SIGKILL keep their default action: they end it even inside a blocking ALSA call.
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    _signal.signal(_signal.SIGHUP, _signal.SIG_IGN)
    args = ChildArgs.from_argv(argv)
    control: mmap.mmap | bytearray
    if args.control_fd >= 0:
        control = mmap.mmap(args.control_fd, wire.CONTROL_SIZE)
    else:
        control = bytearray(wire.CONTROL_SIZE)
    try:
        return Capture(args, control, sys.stdout.fileno()).run()
    except BrokenPipeError:  # the daemon is gone
        return EXIT_OK


__all__ = ["ChildArgs", "QuietHold", "main"]
