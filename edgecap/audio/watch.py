"""When to start, give up on and restart the capture child, and what to tell the user (no I/O).

The daemon's side of capture is an event loop callback reading a pipe; this object makes
every decision with plain inputs and an injected time, so each case is unit-tested without
processes or sleeps:

- an open that does not finish is reported after `open_report_seconds` with its likely
  cause (held by another program, a sound server that does not answer, a plugin waiting)
  and the child keeps waiting: the moment the device is free, audio flows. After
  `open_restart_seconds` the child is killed and a new one tries (a sound-server connection
  can be stuck for good);
- a failed open or read is reported (the child's own error text, explained) and retried
  after an exponential back-off with jitter (`reopen_min_seconds` .. `reopen_max_seconds`),
  reset once the device has delivered for `stable_seconds`;
- a device that is open but delivers nothing for `stall_seconds` is killed and reopened.

Every report carries when the next step happens (`retry_in`), which is also what the
systemd watchdog uses to tell a reported state from a hang (`edgecap.systemd.watchdog`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum


class Phase(Enum):
    WAITING = "waiting"  # no child; the next one starts at `next_spawn_at`
    OPENING = "opening"  # a child is opening the device
    OPEN = "open"  # the device delivers (or should)
    ENDING = "ending"  # the child was told to go (killed, or reported a failure)
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class WatchSettings:
    open_report_seconds: float = 5.0
    open_restart_seconds: float = 60.0
    stall_seconds: float = 3.0
    reopen_min_seconds: float = 1.0
    reopen_max_seconds: float = 30.0
    stable_seconds: float = 10.0
    jitter_seconds: float = 1.0


@dataclass(frozen=True, slots=True)
class Spawn:
    pass


@dataclass(frozen=True, slots=True)
class Kill:
    reason: str


@dataclass(frozen=True, slots=True)
class Report:
    """Tell the user the device is unavailable: `detail` is one actionable line; the next
    step (a report, a kill or a new attempt) comes within `retry_in` seconds."""

    detail: str
    retry_in: float


Action = Spawn | Kill | Report

SOUND_SERVER_DEVICES = ("default", "pipewire", "pulse", "jack")


def blocking_open_cause(device: str, seconds: float, busy: str | None) -> str:
    """One line: the open of `device` has not finished after `seconds`; why, and the fix."""
    head = f"audio device {device!r} has not opened after {seconds:.0f} s"
    if busy is not None:
        return (
            f"audio device {device!r} is held by another program ({busy}); edgecap waits for "
            "it to be released: find the holder with `fuser -v /dev/snd/*` and stop it, or "
            "share the microphone through a dsnoop device"
        )
    name = device.split(":", 1)[0].lower()
    if name in SOUND_SERVER_DEVICES:
        return (
            f"{head}: the PipeWire/Pulse sound server does not answer ({device!r} goes "
            "through it; the default on Raspberry Pi OS Bookworm); check the server "
            "(`systemctl --user status pipewire wireplumber` as the user it runs for) or "
            'capture from the card directly: audio.device = "plughw:CARD=<name>,DEV=0" '
            "(`edgecap devices` lists them)"
        )
    if name in ("hw", "plughw"):
        return (
            f"{head}: it is probably held by another program (a blocking open waits until "
            "the holder lets go); find it with `fuser -v /dev/snd/*` and stop it, or share "
            "the microphone through a dsnoop device"
        )
    return (
        f"{head}: its ALSA plugin is waiting (for a sound server, a file or a FIFO writer); "
        "check the device's definition (`arecord -L`, asound.conf) or use a plughw: device"
    )


class CaptureWatch:
    """The capture child's life, decided from events and the time (see the module doc)."""

    def __init__(
        self,
        device: str,
        settings: WatchSettings | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.device = device
        self.s = settings or WatchSettings()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not crypto
        self.phase = Phase.WAITING
        self.next_spawn_at = 0.0
        self.spawned_at = 0.0
        self.opened_at: float | None = None
        self.last_frame_at = 0.0
        self.failures = 0
        """Consecutive attempts that did not deliver for `stable_seconds`."""
        self.busy: str | None = None
        self._reported_open = False
        self._failure: str | None = None

    # -- events --------------------------------------------------------------------------

    def spawned(self, now: float) -> None:
        self.phase = Phase.OPENING
        self.spawned_at = now
        self.opened_at = None
        self.busy = None
        self._reported_open = False
        self._failure = None

    def opened(self, now: float) -> None:
        self.phase = Phase.OPEN
        self.opened_at = self.last_frame_at = now

    def frame(self, now: float) -> None:
        self.last_frame_at = now
        opened = self.opened_at
        if self.failures and opened is not None and now - opened >= self.s.stable_seconds:
            self.failures = 0

    def held_by_another(self, now: float, text: str) -> Report:
        """The child's non-blocking probe found the device busy; it now waits for it."""
        self.busy = text
        self._reported_open = True
        return Report(
            blocking_open_cause(self.device, now - self.spawned_at, text),
            self._until_restart(now),
        )

    def failed(self, now: float, detail: str) -> None:
        """The child reported why it failed (it exits next); reported when it has ended."""
        self._failure = detail
        if self.phase is not Phase.STOPPED:
            self.phase = Phase.ENDING

    def ended(self, now: float, how: str) -> Report | None:
        """The child has exited (`how`: its exit status in words); schedules the next one."""
        if self.phase is Phase.STOPPED:
            return None
        detail = self._failure or (
            f"audio capture of {self.device!r} ended unexpectedly ({how}); starting it again"
        )
        self.failures += 1
        delay = self._backoff()
        self.phase = Phase.WAITING
        self.next_spawn_at = now + delay
        self.opened_at = None
        return Report(detail, delay)

    def stop(self) -> None:
        self.phase = Phase.STOPPED

    # -- time ----------------------------------------------------------------------------

    def tick(self, now: float) -> list[Action]:
        """What to do now; call it at `next_tick(now)` (and after any event)."""
        s = self.s
        if self.phase is Phase.WAITING and now >= self.next_spawn_at:
            return [Spawn()]
        if self.phase is Phase.OPENING:
            waited = now - self.spawned_at
            if waited >= s.open_restart_seconds:
                line = blocking_open_cause(self.device, waited, self.busy)
                self._failure = f"{line}; starting the capture again"
                self.phase = Phase.ENDING
                return [Kill(self._failure)]
            if waited >= s.open_report_seconds and not self._reported_open:
                self._reported_open = True
                line = blocking_open_cause(self.device, waited, self.busy)
                return [Report(line, self._until_restart(now))]
        if self.phase is Phase.OPEN and now - self.last_frame_at >= s.stall_seconds:
            self._failure = (
                f"audio device {self.device!r} stopped delivering audio (nothing for "
                f"{now - self.last_frame_at:.1f} s): the device or its driver is stalled; "
                "reopening it (check the cable or USB connection and `dmesg`)"
            )
            self.phase = Phase.ENDING
            return [Kill(self._failure)]
        return []

    def next_tick(self, now: float) -> float | None:
        """When `tick` next has something to decide (None: only events can change things)."""
        s = self.s
        if self.phase is Phase.WAITING:
            return self.next_spawn_at
        if self.phase is Phase.OPENING:
            if not self._reported_open:
                return self.spawned_at + s.open_report_seconds
            return self.spawned_at + s.open_restart_seconds
        if self.phase is Phase.OPEN:
            return self.last_frame_at + s.stall_seconds
        return None

    def _until_restart(self, now: float) -> float:
        return max(0.0, self.spawned_at + self.s.open_restart_seconds - now)

    def _backoff(self) -> float:
        s = self.s
        exp = s.reopen_min_seconds * 2.0 ** max(0, self.failures - 1)
        return min(s.reopen_max_seconds, exp + self._rng.uniform(0, s.jitter_seconds))


__all__ = [
    "Action",
    "CaptureWatch",
    "Kill",
    "Phase",
    "Report",
    "Spawn",
    "WatchSettings",
    "blocking_open_cause",
]
