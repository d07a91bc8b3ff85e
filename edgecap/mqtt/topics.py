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
    def mute(self) -> str:
        """The privacy mute's state, `ON`/`OFF` (retained)."""
        return self._t("mute")

    @property
    def mute_set(self) -> str:
        """Command: `ON`/`OFF` switches the privacy mute."""
        return self._t("mute/set")

    @property
    def settings(self) -> str:
        """The run-time settings in force, JSON `edgecap.settings/1` (retained)."""
        return self._t("settings")

    @property
    def settings_set(self) -> str:
        """Command: a JSON object of run-time settings to change."""
        return self._t("set")

    @property
    def settings_result(self) -> str:
        """The reply to each `set` command, JSON `edgecap.set_result/1`."""
        return self._t("set/result")

    @property
    def event(self) -> str:
        """Events, JSON `edgecap.event/1` (e.g. `speech_without_transcript`)."""
        return self._t("event")

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
