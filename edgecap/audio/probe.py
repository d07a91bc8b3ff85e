"""Opening ALSA devices to see what they accept, in a child process that can be abandoned.

`edgecap devices` opens every capture device with several formats, rates and channel
counts. An open can block for good (a sound server that does not answer, a plugin waiting
for a writer) and pyalsaaudio holds the GIL while it does, so the opens run in a child
(`python -I -S`, like the capture child) that answers one request per line on stdin:
`device<TAB>rate<TAB>channels<TAB>format` -> `ok` or the error text. `ProbeChild` (the
parent's side) waits a bounded time for each answer, kills a child that does not answer,
and answers every later probe of that device at once (it is known to hang).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import IO, Any

PROBE_SECONDS = 3.0
OK = "ok"


def answer(alsa: Any, line: str) -> str:
    """Open `device` exactly as asked, non-blocking (a held `hw:` device says busy), close it."""
    device, rate, channels, fmt = line.rstrip("\n").split("\t")
    try:
        pcm = alsa.PCM(
            type=alsa.PCM_CAPTURE,
            mode=alsa.PCM_NONBLOCK,
            rate=int(rate),
            channels=int(channels),
            format=getattr(alsa, f"PCM_FORMAT_{fmt}"),
            periodsize=int(rate) // 20,
            periods=4,
            device=device,
        )
    except alsa.ALSAAudioError as exc:
        return str(exc).replace("\n", " ") or "error"
    try:
        info = pcm.info()
    finally:
        pcm.close()
    granted = (info.get("rate"), info.get("channels"), info.get("format_name"))
    if granted != (int(rate), int(channels), fmt):
        return f"granted {granted[0]} Hz, {granted[1]} channel(s), {granted[2]}"
    return OK


def main(argv: list[str]) -> int:
    """The child: answer probe requests until stdin ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import alsaaudio

    for line in sys.stdin:
        sys.stdout.write(answer(alsaaudio, line) + "\n")
        sys.stdout.flush()
    return 0


def _probe_command() -> list[str]:
    from edgecap.audio.spawn import isolated_python  # the parent's side only

    return isolated_python("edgecap.audio.probe")


class ProbeChild:
    """The parent's side: `try_open` with a time limit per open (sync: the CLI is)."""

    def __init__(
        self,
        command: Callable[[], list[str]] | None = None,
        seconds: float = PROBE_SECONDS,
    ) -> None:
        self._command = command or _probe_command
        self.seconds = seconds
        self._proc: subprocess.Popen[str] | None = None
        self.hung: dict[str, str] = {}
        """Devices whose open did not answer, with the line to report for them."""

    def _child(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
                process_group=0,
            )
        return self._proc

    def try_open(self, device: str, rate: int, channels: int, fmt: str) -> str | None:
        """None when `device` opens with exactly these parameters, else why not."""
        if device in self.hung:
            return self.hung[device]
        proc = self._child()
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            proc.stdin.write(f"{device}\t{rate}\t{channels}\t{fmt}\n")
            proc.stdin.flush()
        except BrokenPipeError:
            self.close()
            return "the probe process ended unexpectedly"
        deadline = time.monotonic() + self.seconds
        ready: list[IO[str]] = []
        while not ready and (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([proc.stdout], [], [], left)
        if not ready:
            self.close()
            self.hung[device] = (
                f"its open did not answer within {self.seconds:g} s (held by another "
                "program, or a sound server or plugin that does not answer)"
            )
            return self.hung[device]
        reply = proc.stdout.readline().rstrip("\n")
        if not reply:
            self.close()
            return "the probe process ended unexpectedly"
        return None if reply == OK else reply

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    if stream is not None:
                        stream.close()


__all__ = ["PROBE_SECONDS", "ProbeChild", "answer", "main"]
