"""`[pricing]`: what an hour of speech service costs, for the cost estimate and a budget in
money (no I/O).

The built-in table holds the providers' published prices with the date each was read;
`[pricing] per_hour` overrides or adds entries, keyed `"<provider>:<model>"`. The basis
differs by provider and the ledger's billed seconds follow it: AssemblyAI streaming bills
every second a session is open, the Sync API and OpenAI bill the audio sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from pydantic import Field, field_validator

from edgecap.config.base import Float, _q, _Section, config_problem

Basis = Literal["session", "audio"]


@dataclass(frozen=True, slots=True)
class Price:
    per_hour: float
    basis: Basis
    source: str
    """Where the price was read, and when."""


_AAI = "assemblyai.com/pricing, read 2026-10-07"
_AAI_US = "AssemblyAI blog 'Introducing Universal-Streaming' ($0.15/h), read 2026-12-04"
_OPENAI = "openai.com/api/pricing, read 2026-12-04 (per minute of audio x 60)"

BUILTIN_PRICES = MappingProxyType(
    {
        "assemblyai:universal-streaming-english": Price(0.15, "session", _AAI_US),
        "assemblyai:universal-streaming-multilingual": Price(0.15, "session", _AAI_US),
        "assemblyai:universal-3-6-pro": Price(0.45, "session", _AAI),
        # not listed separately: priced like Universal-3.6 Pro Realtime (override if not)
        "assemblyai:universal-3-5-pro": Price(0.45, "session", _AAI + "; assumed = 3.6 Pro"),
        "assemblyai:u3-rt-pro": Price(0.45, "session", _AAI + "; assumed = 3.6 Pro"),
        "assemblyai-sync:universal-3-5-pro": Price(0.30, "audio", _AAI + " (Sync API)"),
        "openai:gpt-live-transcribe": Price(1.02, "audio", _OPENAI + " ($0.017/min)"),
        "openai:gpt-4o-transcribe": Price(0.36, "audio", _OPENAI + " ($0.006/min)"),
        "openai:gpt-4o-transcribe-diarize": Price(0.36, "audio", _OPENAI + " ($0.006/min)"),
        "openai:gpt-4o-mini-transcribe": Price(0.18, "audio", _OPENAI + " ($0.003/min)"),
        "openai:whisper-1": Price(0.36, "audio", _OPENAI + " ($0.006/min)"),
    }
)
KEYTERMS_EXTRA_MODELS = frozenset(
    {"assemblyai:universal-streaming-english", "assemblyai:universal-streaming-multilingual"}
)
"""Keyterms cost extra on Universal-Streaming ($0.04/h, AssemblyAI's keyterms page); the Pro
models include them."""

_KEY = re.compile(r"^[a-z0-9][a-z0-9-]*:[A-Za-z0-9][A-Za-z0-9._-]*$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class PricingConfig(_Section):
    currency: str = "USD"
    per_hour: dict[str, Float] = Field(default={})
    keyterms_per_hour: Float = Field(default=0.04, ge=0, le=100)

    @field_validator("currency")
    @classmethod
    def _check_currency(cls, value: str) -> str:
        if not _CURRENCY.match(value):
            raise config_problem(
                f'must be a three-letter ISO 4217 code such as "USD" or "EUR" (got {_q(value)})'
            )
        return value

    @field_validator("per_hour")
    @classmethod
    def _check_prices(cls, value: dict[str, float]) -> dict[str, float]:
        for key, price in value.items():
            if not _KEY.match(key):
                raise config_problem(
                    f'keys are "<provider>:<model>", e.g. "assemblyai:universal-3-6-pro" '
                    f"(got {_q(key)})"
                )
            if not 0 <= price <= 1000:
                raise config_problem(f"{_q(key)}: a price per hour is 0..1000 (got {price:g})")
        return value

    def price(self, provider: str, model: str, *, keyterms: bool = False) -> float | None:
        """Price per billed hour of `model` through `provider` (None: not known)."""
        key = f"{provider}:{model}"
        base = self.per_hour.get(key)
        if base is None:
            builtin = BUILTIN_PRICES.get(key)
            if builtin is None:
                return None
            base = builtin.per_hour
        if keyterms and key in KEYTERMS_EXTRA_MODELS:
            base += self.keyterms_per_hour
        return base


__all__ = ["BUILTIN_PRICES", "KEYTERMS_EXTRA_MODELS", "Basis", "Price", "PricingConfig"]
