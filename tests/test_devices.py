"""`edgecap devices`: stable names, what each device accepts (found by opening it), and the
config line; against a simulated ALSA system and against the real FIFO-fed capture PCM."""

from __future__ import annotations

import pytest

from edgecap.audio.devices import (
    Card,
    list_capture_devices,
    parse_arecord_list,
    parse_proc_cards,
    parse_proc_pcm,
    render_devices,
)

pytestmark = pytest.mark.unit

PROC_CARDS = """\
 0 [vc4hdmi        ]: vc4-hdmi - vc4-hdmi
                      vc4-hdmi
 2 [Device         ]: USB-Audio - USB PnP Sound Device
                      C-Media Electronics Inc. USB PnP Sound Device at usb-xhci-hcd.0-1, full speed
 3 [Array          ]: USB-Audio - ReSpeaker 4 Mic Array
                      SEEED ReSpeaker 4 Mic Array at usb-xhci-hcd.0-2, full speed
"""
PROC_PCM = """\
00-00: MAI PCM i2s-hifi-0 : MAI PCM i2s-hifi-0 : playback 1
02-00: USB Audio : USB Audio : playback 1 : capture 1
03-00: USB Audio : USB Audio : capture 1
"""
ARECORD_L = """\
null
    Discard all samples (playback) or generate zero samples (capture)
default
    Default ALSA Output (currently PipeWire Media Server)
sysdefault:CARD=Device
    USB PnP Sound Device, USB Audio
    Default Audio Device
plughw:CARD=Device,DEV=0
    USB PnP Sound Device, USB Audio
    Hardware device with all software conversions
"""


class FakeAlsa:
    """Card 2 is a mono USB microphone recording S16_LE at 44.1/48 kHz only; card 3 is held
    by another program. ``plughw`` and ``default`` convert anything."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, int, int, str]] = []

    def pcm_names(self) -> list[str]:
        return [
            "null",
            "default",
            "sysdefault:CARD=Device",
            "hw:CARD=Device,DEV=0",
            "plughw:CARD=Device,DEV=0",
            "dsnoop:CARD=Device,DEV=0",
            "hw:CARD=Array,DEV=0",
        ]

    def cards(self) -> list[Card]:
        return parse_proc_cards(PROC_CARDS)

    def capture_pcms(self) -> list[tuple[int, int, str]] | None:
        return parse_proc_pcm(PROC_PCM)

    def descriptions(self) -> dict[str, str]:
        return parse_arecord_list(ARECORD_L)

    def try_open(self, device: str, rate: int, channels: int, fmt: str) -> str | None:
        self.opened.append((device, rate, channels, fmt))
        if "Array" in device:
            return f"Device or resource busy [{device}]"
        if device.startswith("hw:"):
            if fmt == "S16_LE" and rate in (44100, 48000) and channels == 1:
                return None
            return "Invalid argument"
        return None


def test_proc_and_arecord_parsing() -> None:
    cards = parse_proc_cards(PROC_CARDS)
    assert [(c.index, c.id, c.name) for c in cards] == [
        (0, "vc4hdmi", "vc4-hdmi"),
        (2, "Device", "USB PnP Sound Device"),
        (3, "Array", "ReSpeaker 4 Mic Array"),
    ]
    assert parse_proc_pcm(PROC_PCM) == [(2, 0, "USB Audio"), (3, 0, "USB Audio")]
    described = parse_arecord_list(ARECORD_L)
    assert described["plughw:CARD=Device,DEV=0"] == (
        "USB PnP Sound Device, USB Audio, Hardware device with all software conversions"
    )


def test_cards_are_listed_by_stable_name_with_what_they_accept() -> None:
    system = FakeAlsa()
    devices = {d.name: d for d in list_capture_devices(system)}
    assert list(devices) == ["plughw:CARD=Device,DEV=0", "plughw:CARD=Array,DEV=0", "default"]
    mic = devices["plughw:CARD=Device,DEV=0"]
    assert mic.card == Card(2, "Device", "USB PnP Sound Device")
    assert mic.alternatives == (
        "sysdefault:CARD=Device",
        "dsnoop:CARD=Device,DEV=0",
        "hw:CARD=Device,DEV=0",
    )
    assert mic.hardware is not None
    assert mic.hardware.formats == ("S16_LE",)
    assert mic.hardware.rates == (44100, 48000)  # not 16 kHz natively...
    assert mic.hardware.channels == (1,)
    assert mic.edgecap_ok  # ...but plughw converts, so edgecap's format opens
    assert mic.config_line == 'device = "plughw:CARD=Device,DEV=0"'
    # probing never used the renumber-prone hw:N,M form, and never blocked on a busy device
    assert all("CARD=" in d or d == "default" for d, *_ in system.opened)
    busy = devices["plughw:CARD=Array,DEV=0"]
    assert busy.hardware is not None
    assert busy.hardware.error is not None
    assert "busy" in busy.hardware.error
    assert not busy.edgecap_ok
    assert devices["default"].card is None  # "null" is not offered


def test_renumbered_card_keeps_its_name() -> None:
    system = FakeAlsa()
    before = [d.name for d in list_capture_devices(system)]
    renumbered = PROC_CARDS.replace(" 2 [Device", " 1 [Device")
    system.cards = lambda: parse_proc_cards(renumbered)  # type: ignore[method-assign]
    system.capture_pcms = lambda: parse_proc_pcm(  # type: ignore[method-assign]
        PROC_PCM.replace("02-00", "01-00")
    )
    after = list_capture_devices(system)
    assert [d.name for d in after] == before
    assert after[0].card is not None
    assert after[0].card.index == 1


def test_table_shows_the_config_line_and_hardware() -> None:
    text = render_devices(list_capture_devices(FakeAlsa()))
    assert "card 2 [Device], device 0: USB PnP Sound Device, USB Audio" in text
    assert "16 kHz mono S16_LE opens" in text
    assert "formats S16_LE; rates 44100, 48000 Hz; channels 1" in text
    assert '[audio] device = "plughw:CARD=Device,DEV=0"' in text
    assert "could not probe (Device or resource busy" in text
