"""The `[control]` section: control over MQTT (the privacy mute, run-time settings)."""

from __future__ import annotations

from edgecap.config.base import _Section


class ControlConfig(_Section):
    start_muted: bool = False
    """Start with the privacy mute on when no mute state was saved (a device that must not
    send audio until someone switches the mute off)."""
