"""``edgecap devices``: ALSA capture devices by their stable names, what they accept, and
the config line to use, so renumbered cards (after a reboot or replug) do not break capture.

Cards come from ``/proc/asound`` (``alsaaudio.cards()`` when it is hidden), PCM names from
ALSA's hints (``alsaaudio.pcms``), descriptions from ``arecord -L``. What a device accepts is
found by opening it: the hardware's own formats, rates and channels on ``hw:``, and whether
edgecap's format (16 kHz mono S16_LE) opens on the name to configure.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edgecap.audio.probe import ProbeChild

EDGECAP_RATE = 16000
EDGECAP_FORMAT = "S16_LE"
FORMATS = ("S16_LE", "S24_LE", "S24_3LE", "S32_LE", "FLOAT_LE")
RATES = (8000, 16000, 22050, 32000, 44100, 48000, 96000)
CHANNELS = (1, 2)
_BASE_RATES = (48000, 44100, 16000)
_SKIP_PCMS = frozenset({"null"})  # "captures" zeros; never a microphone

EX_OK = 0
EX_NO_DEVICES = 1

_CARD_LINE = re.compile(r"^\s*(\d+)\s+\[(\S+)\s*\]:\s*(.*?)\s+-\s+(.*?)\s*$")
_PCM_LINE = re.compile(r"^(\d+)-(\d+):\s*(.*?)\s*:\s*(.*?)\s*:(.*)$")
_HW_NAME = re.compile(r"^hw:CARD=([^,]+),DEV=(\d+)$")


@dataclass(frozen=True)
class Card:
    index: int
    id: str
    name: str


@dataclass(frozen=True)
class Capabilities:
    """What the hardware accepts natively (no conversion); empty when it would not open."""

    formats: tuple[str, ...] = ()
    rates: tuple[int, ...] = ()
    channels: tuple[int, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class CaptureDevice:
    name: str
    """The PCM name to put in audio.device (stable for card devices)."""
    description: str
    card: Card | None = None
    device: int | None = None
    alternatives: tuple[str, ...] = ()
    hardware: Capabilities | None = None
    edgecap_ok: bool = False
    edgecap_error: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def config_line(self) -> str:
        return f'device = "{self.name}"'

    def to_dict(self) -> dict[str, Any]:
        hw = self.hardware
        return {
            "name": self.name,
            "description": self.description,
            "card": None if self.card is None else vars(self.card),
            "device": self.device,
            "alternatives": list(self.alternatives),
            "hardware": None
            if hw is None
            else {
                "formats": list(hw.formats),
                "rates": list(hw.rates),
                "channels": list(hw.channels),
                "error": hw.error,
            },
            "edgecap_format_ok": self.edgecap_ok,
            "edgecap_format_error": self.edgecap_error,
            "config": {"section": "audio", "line": self.config_line},
        }


# -- parsing (no I/O) -------------------------------------------------------------------------


def parse_proc_cards(text: str) -> list[Card]:
    """``/proc/asound/cards``: `` 1 [Device   ]: USB-Audio - USB PnP Sound Device``."""
    cards = []
    for line in text.splitlines():
        m = _CARD_LINE.match(line)
        if m:
            cards.append(Card(int(m.group(1)), m.group(2), m.group(4)))
    return cards


def parse_proc_pcm(text: str) -> list[tuple[int, int, str]]:
    """``/proc/asound/pcm``: (card index, device, name) of devices that can capture."""
    found = []
    for line in text.splitlines():
        m = _PCM_LINE.match(line)
        if m and "capture" in m.group(5):
            found.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return found


def parse_arecord_list(text: str) -> dict[str, str]:
    """``arecord -L``: each PCM name with its description lines joined."""
    names: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0].isspace():
            if current is not None:
                names[current].append(line.strip())
        else:
            current = line.strip()
            names[current] = []
    return {name: ", ".join(lines) for name, lines in names.items()}


# -- the system (I/O) -------------------------------------------------------------------------


class AlsaSystem(Protocol):
    def pcm_names(self) -> list[str]: ...
    def cards(self) -> list[Card]: ...
    def capture_pcms(self) -> list[tuple[int, int, str]] | None: ...
    def descriptions(self) -> dict[str, str]: ...
    def try_open(self, device: str, rate: int, channels: int, fmt: str) -> str | None:
        """None when the device opens with exactly these parameters, else why not."""
        ...


class RealAlsa:
    """alsa-lib through pyalsaaudio, /proc/asound and arecord."""

    def __init__(self, proc: Path = Path("/proc/asound")) -> None:
        import alsaaudio  # lazily: the rest of edgecap imports without it

        self._alsa = alsaaudio
        self._proc = proc
        self._probe = ProbeChild()

    def pcm_names(self) -> list[str]:
        return list(self._alsa.pcms(self._alsa.PCM_CAPTURE))

    def cards(self) -> list[Card]:
        try:
            return parse_proc_cards((self._proc / "cards").read_text())
        except OSError:
            indexes, ids = self._alsa.card_indexes(), self._alsa.cards()
            return [
                Card(i, card_id, self._alsa.card_name(i)[1])
                for i, card_id in zip(indexes, ids, strict=False)
            ]

    def capture_pcms(self) -> list[tuple[int, int, str]] | None:
        try:
            return parse_proc_pcm((self._proc / "pcm").read_text())
        except OSError:
            return None

    def descriptions(self) -> dict[str, str]:
        arecord = shutil.which("arecord")
        if arecord is None:
            return {}
        try:
            done = subprocess.run(
                [arecord, "-L"], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return {}
        return parse_arecord_list(done.stdout)

    def try_open(self, device: str, rate: int, channels: int, fmt: str) -> str | None:
        # in a child process: an open that blocks is abandoned after a few seconds
        return self._probe.try_open(device, rate, channels, fmt)

    def close(self) -> None:
        self._probe.close()


# -- listing ----------------------------------------------------------------------------------


def probe_hardware(system: AlsaSystem, device: str) -> Capabilities:
    """Formats, rates and channel counts ``device`` opens with, without conversion."""
    errors: list[str] = []

    def opens(rate: int, channels: int, fmt: str) -> bool:
        error = system.try_open(device, rate, channels, fmt)
        if error is not None:
            errors.append(error)
        return error is None

    formats = tuple(
        f for f in FORMATS if any(opens(r, c, f) for r in _BASE_RATES for c in CHANNELS)
    )
    if not formats:
        busy = next((e for e in errors if "busy" in e.lower()), None)
        return Capabilities(error=busy or (errors[0] if errors else "does not open"))
    fmt = formats[0]
    rates = tuple(r for r in RATES if any(opens(r, c, fmt) for c in CHANNELS))
    rate = rates[0] if rates else _BASE_RATES[0]
    channels = tuple(c for c in CHANNELS if opens(rate, c, fmt))
    return Capabilities(formats, rates, channels)


def _edgecap_probe(system: AlsaSystem, name: str) -> tuple[bool, str | None]:
    error = system.try_open(name, EDGECAP_RATE, 1, EDGECAP_FORMAT)
    return error is None, error


def list_capture_devices(system: AlsaSystem) -> list[CaptureDevice]:
    """Card capture devices first (stable names), then other capture PCMs (e.g. default)."""
    names = system.pcm_names()
    descriptions = system.descriptions()
    cards = {c.index: c for c in system.cards()}
    by_id = {c.id: c for c in cards.values()}
    pcms = system.capture_pcms()
    if pcms is None:  # no /proc/asound: take hw:CARD=..,DEV=.. hints instead
        pcms = [
            (by_id[m.group(1)].index, int(m.group(2)), "")
            for m in (_HW_NAME.match(n) for n in names)
            if m and m.group(1) in by_id
        ]
    devices: list[CaptureDevice] = []
    for index, dev, pcm_name in pcms:
        card = cards.get(index)
        if card is None:
            continue
        name = f"plughw:CARD={card.id},DEV={dev}"
        hw = f"hw:CARD={card.id},DEV={dev}"
        alternatives = [f"sysdefault:CARD={card.id}"] if dev == 0 else []
        alternatives += [f"dsnoop:CARD={card.id},DEV={dev}", hw]
        ok, error = _edgecap_probe(system, name)
        devices.append(
            CaptureDevice(
                name=name,
                description=descriptions.get(name)
                or ", ".join(p for p in (card.name, pcm_name) if p),
                card=card,
                device=dev,
                alternatives=tuple(alternatives),
                hardware=probe_hardware(system, hw),
                edgecap_ok=ok,
                edgecap_error=error,
            )
        )
    for name in names:
        if "CARD=" in name or name in _SKIP_PCMS:
            continue
        ok, error = _edgecap_probe(system, name)
        devices.append(
            CaptureDevice(name, descriptions.get(name, ""), edgecap_ok=ok, edgecap_error=error)
        )
    return devices


# -- output -----------------------------------------------------------------------------------


def _join(values: Iterable[object]) -> str:
    return ", ".join(str(v) for v in values) or "-"


def render_devices(devices: list[CaptureDevice]) -> str:
    if not devices:
        return (
            "no ALSA capture devices found: is the microphone plugged in? "
            "(`arecord -l` lists the cards the kernel sees; USB microphones need "
            "snd-usb-audio)\n"
        )
    lines = ["ALSA capture devices (stable names survive card renumbering):", ""]
    for d in devices:
        ok = "opens" if d.edgecap_ok else f"does NOT open ({d.edgecap_error})"
        if d.card is not None:
            lines.append(f"card {d.card.index} [{d.card.id}], device {d.device}: {d.description}")
        else:
            lines.append(f"{d.name}: {d.description or 'ALSA PCM'}")
        lines.append(f"  use:       {d.name}  (16 kHz mono S16_LE {ok})")
        if d.alternatives:
            lines.append(f"  also:      {_join(d.alternatives)}")
        hw = d.hardware
        if hw is not None:
            if hw.error:
                lines.append(f"  hardware:  could not probe ({hw.error})")
            else:
                lines.append(
                    f"  hardware:  formats {_join(hw.formats)}; rates {_join(hw.rates)} Hz; "
                    f"channels {_join(hw.channels)}"
                )
        lines.append(f"  config:    [audio] {d.config_line}")
        lines.append("")
    lines.append(
        "plughw: converts rate, format and channels in ALSA; sysdefault: is the card's default "
        "device; dsnoop: lets several programs record at once."
    )
    return "\n".join(lines) + "\n"


def devices_command(as_json: bool = False, system: AlsaSystem | None = None) -> int:
    """Print the capture devices; exit 1 when there are none."""
    if system is not None:
        found = list_capture_devices(system)
    else:
        real = RealAlsa()
        try:
            found = list_capture_devices(real)
        finally:
            real.close()
    if as_json:
        sys.stdout.write(json.dumps([d.to_dict() for d in found], indent=2) + "\n")
    else:
        sys.stdout.write(render_devices(found))
    return EX_OK if found else EX_NO_DEVICES
