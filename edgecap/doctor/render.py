"""Renderers for the doctor's report: a readable table and JSON (no I/O)."""

from __future__ import annotations

import json
import textwrap

from edgecap.doctor.result import CheckResult, Report

_SHOWN = {"pass": "pass", "warn": "WARN", "fail": "FAIL", "skip": "skip"}
_GAP = "  "
NAME_WIDTH = len("systemd (info)")
RESULT_WIDTH = len("RESULT")
MIN_WIDTH = 72


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        wrapped = textwrap.wrap(
            paragraph,
            width,
            subsequent_indent="  " if paragraph.startswith("- ") else "",
            break_long_words=False,
            break_on_hyphens=False,
        )
        lines.extend(wrapped or [""])
    return lines


def _text_width(width: int) -> int:
    return max(width, MIN_WIDTH) - NAME_WIDTH - RESULT_WIDTH - 2 * len(_GAP)


def render_header(width: int = 100) -> str:
    return _GAP.join(["CHECK".ljust(NAME_WIDTH), "RESULT", "DETAIL (and FIX)"]) + "\n"


def render_row(result: CheckResult, width: int = 100) -> str:
    """One check: name, result, the detail wrapped, then ``fix: ...`` under it."""
    text_width = _text_width(width)
    label = result.check + ("" if result.required else " (info)")
    body = _wrap(result.detail, text_width)
    if result.fix:
        fix = _wrap("fix: " + result.fix, text_width - 2)
        body += [fix[0]] + ["  " + line for line in fix[1:]]
    head = _GAP.join([label.ljust(NAME_WIDTH), _SHOWN[result.result].ljust(RESULT_WIDTH)])
    indent = " " * (len(head) + len(_GAP))
    lines = [head + _GAP + body[0]] + [indent + line for line in body[1:]]
    return "\n".join(lines) + "\n"


def summary_line(report: Report) -> str:
    required = [r for r in report.results if r.required]
    bad = report.not_passed
    if not bad:
        warnings = [r.check for r in report.results if r.result == "warn"]
        extra = f" (warnings: {', '.join(warnings)})" if warnings else ""
        return f"all {len(required)} required checks passed{extra}\n"
    names = ", ".join(f"{r.check} ({r.result})" for r in bad)
    return f"{len(bad)} of {len(required)} required checks did not pass: {names}\n"


def render_table(report: Report, width: int = 100) -> str:
    """The whole report: header, one row per check, and the summary."""
    rows = "".join(render_row(r, width) for r in report.results)
    summary = "\n".join(_wrap(summary_line(report), max(width, MIN_WIDTH)))
    return render_header(width) + rows + "\n" + summary + "\n"


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
