"""Topic names (no I/O). Documented in docs/mqtt.md."""

from __future__ import annotations

from dataclasses import dataclass

ONLINE = b"online"
OFFLINE = b"offline"


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    device_id: str

    def _t(self, leaf: str) -> str:
        return f"{self.prefix}/{self.device_id}/{leaf}"

    @property
    def transcript(self) -> str:
        return self._t("transcript")

    @property
    def availability(self) -> str:
        return self._t("availability")

    @property
    def status(self) -> str:
        return self._t("status")
