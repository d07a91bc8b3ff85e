"""The doctor's result record and the report over all checks (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Result = Literal["pass", "warn", "fail", "skip"]

EX_OK = 0
EX_FAILED = 1  # at least one required check did not pass


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: what was checked, the verdict, what was seen, what to do.

    ``required`` checks decide the exit status; a ``warn`` counts as passed (it works, but
    something deserves attention), a ``skip`` of a required check does not (it could not be
    verified). ``data`` holds the measured figures for ``--json``.
    """

    check: str
    result: Result
    detail: str
    fix: str = ""
    required: bool = True
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.result in ("pass", "warn")

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "result": self.result,
            "detail": self.detail,
            "fix": self.fix,
            "required": self.required,
            "data": dict(self.data),
        }


def passed(check: str, detail: str, **data: Any) -> CheckResult:
    return CheckResult(check, "pass", detail, data=data)


def warned(check: str, detail: str, fix: str, **data: Any) -> CheckResult:
    return CheckResult(check, "warn", detail, fix, data=data)


def failed(check: str, detail: str, fix: str, **data: Any) -> CheckResult:
    return CheckResult(check, "fail", detail, fix, data=data)


def skipped(check: str, detail: str, fix: str = "", **data: Any) -> CheckResult:
    return CheckResult(check, "skip", detail, fix, data=data)


@dataclass(frozen=True)
class Report:
    """Every check's result, in the order they ran."""

    results: tuple[CheckResult, ...]

    @classmethod
    def of(cls, results: Sequence[CheckResult]) -> Report:
        return cls(tuple(results))

    @property
    def not_passed(self) -> list[CheckResult]:
        """The required checks that failed or could not run."""
        return [r for r in self.results if r.required and not r.passed]

    @property
    def ok(self) -> bool:
        return not self.not_passed

    @property
    def exit_status(self) -> int:
        return EX_OK if self.ok else EX_FAILED

    def get(self, check: str) -> CheckResult | None:
        return next((r for r in self.results if r.check == check), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "exit_status": self.exit_status,
            "failed": [r.check for r in self.not_passed],
            "checks": [r.to_dict() for r in self.results],
        }
