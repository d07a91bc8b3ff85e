"""Strict JSON for payload tests: what a subscriber in another language would accept.

Python's `json.loads` takes `NaN`, `Infinity` and `-Infinity`, which are not JSON, and a
`str` holding lone surrogates; `strict_loads` rejects all of them, so a payload that only
Python could read fails the test that reads it."""

from __future__ import annotations

import json
from typing import Any


class NotStrictJson(ValueError):
    """The payload is not strict JSON in UTF-8."""


def _reject_constant(name: str) -> Any:
    raise NotStrictJson(f"{name} is not JSON")


def strict_loads(payload: bytes | str) -> Any:
    """Parse `payload` as UTF-8 JSON without NaN/Infinity (raises `NotStrictJson` or a
    `UnicodeDecodeError`)."""
    text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    try:
        text.encode("utf-8")  # a str payload with lone surrogates cannot be sent
    except UnicodeEncodeError as exc:
        raise NotStrictJson(f"not encodable as UTF-8: {exc}") from exc
    return json.loads(text, parse_constant=_reject_constant)
