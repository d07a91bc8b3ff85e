"""What the Sync pipeline needs from the rest of the daemon (protocols) and its settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from edgecap.billing.ledger import BilledBy
from edgecap.engine.controller import Counters
from edgecap.providers.assemblyai.sync import SyncTranscript
from edgecap.providers.failures import Classified
from edgecap.sync.pending import PendingBounds
from edgecap.sync.segmenter import SegmentSettings


class Reporter(Protocol):
    counters: Counters

    def set_state(
        self,
        state: str,
        *,
        session_id: str | None = None,
        detail: str = "",
        error_class: str | None = None,
        retry_in: float | None = None,
        resets_at: float | None = None,
    ) -> bool: ...

    def set_condition(self, part: str, line: str | None) -> None: ...

    def record_error(self, classified: Classified) -> None: ...


class Sender(Protocol):
    async def send(self, audio: bytes | AsyncIterator[bytes]) -> SyncTranscript: ...

    async def aclose(self) -> None: ...


class BillingStore(Protocol):
    def session_closed(
        self,
        session_id: str,
        now: float,
        billed_seconds: float,
        speech_seconds: float,
        source: BilledBy,
    ) -> object: ...


@dataclass(frozen=True, slots=True)
class SyncSettings:
    device_id: str
    model: str
    sample_rate: int
    segments: SegmentSettings
    bounds: PendingBounds
    live_upload: bool = True
