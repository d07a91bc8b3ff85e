"""Sections of docs/benchmarks.md that other scripts write: `scripts/bench` rewrites the
file and keeps them; `scripts/bench-tokens` replaces its own."""

from __future__ import annotations

TOKENS_MARKER = "<!-- section: scripts/bench-tokens -->"


def kept_section(text: str, marker: str = TOKENS_MARKER) -> str:
    """The section starting at `marker` (to the end of the file), or ""."""
    start = text.find(marker)
    return "" if start < 0 else text[start:]


def with_section(text: str, section: str, marker: str = TOKENS_MARKER) -> str:
    """`text` with its section at `marker` replaced by `section` (appended if absent)."""
    start = text.find(marker)
    head = text if start < 0 else text[:start]
    return head.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
