"""Topic names (no I/O). Documented in docs/mqtt.md."""

from __future__ import annotations

from dataclasses import dataclass

ONLINE = b"online"
OFFLINE = b"offline"

HERMES_TEXT_CAPTURED = "hermes/asr/textCaptured"


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    device_id: str
    discovery_prefix: str = "homeassistant"

    def _t(self, leaf: str) -> str:
        return f"{self.prefix}/{self.device_id}/{leaf}"

    @property
    def transcript(self) -> str:
        return self._t("transcript")

    @property
    def partial(self) -> str:
        return self._t("partial")

    @property
    def availability(self) -> str:
        return self._t("availability")

    @property
    def status(self) -> str:
        return self._t("status")

    @property
    def stats(self) -> str:
        return self._t("stats")

    @property
    def discovery(self) -> str:
        """Home Assistant device discovery: `<discovery_prefix>/device/edgecap_<id>/config`."""
        return f"{self.discovery_prefix}/device/edgecap_{self.device_id}/config"

    @property
    def ha_status(self) -> str:
        """Where Home Assistant publishes its birth (`online`) and last will (`offline`)."""
        return f"{self.discovery_prefix}/status"

    @property
    def hermes_text_captured(self) -> str:
        return HERMES_TEXT_CAPTURED
