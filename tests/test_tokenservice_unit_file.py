"""The shipped edgecap-tokens systemd unit: accepted by systemd without a warning, hardened
to at most 2.5 in `systemd-analyze security`, and matching what the service does."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from edgecap.tokenservice.config import AAI_KEY, DEFAULT_CONFIG
from tests.test_unit_file import MAX_EXPOSURE, analyze, needs_systemd_analyze, parse_unit, single
from tests.test_unit_file import values as unit_values

pytestmark = pytest.mark.integration

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "edgecap-tokens.service"
INSTALLED_EXEC = "/opt/edgecap/venv/bin/edgecap-tokens"


def verifiable_copy(directory: Path) -> Path:
    true_bin = shutil.which("true")
    assert true_bin is not None
    source = UNIT.read_text(encoding="utf-8")
    assert f"ExecStart={INSTALLED_EXEC} " in source
    copy = directory / "edgecap-tokens.service"
    copy.write_text(source.replace(f"ExecStart={INSTALLED_EXEC} ", f"ExecStart={true_bin} "))
    return copy


@needs_systemd_analyze
def test_systemd_accepts_the_unit_and_its_exposure_is_at_most_2_5(tmp_path: Path) -> None:
    copy = verifiable_copy(tmp_path)
    verify = analyze("verify", str(copy))
    assert verify.returncode == 0, verify.stderr
    assert verify.stderr == ""
    result = analyze("security", "--offline=true", "--no-pager", str(copy))
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout[-2000:]
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_serves_the_installed_config_drains_and_reads_the_key_as_a_credential() -> None:
    unit = parse_unit(UNIT.read_text(encoding="utf-8"))
    assert (
        single(unit, "Service", "ExecStart") == f"{INSTALLED_EXEC} --config {DEFAULT_CONFIG} serve"
    )
    assert single(unit, "Service", "Type") == "notify"
    assert "78" in single(unit, "Service", "RestartPreventExitStatus").split()
    # the drain (drain_seconds, 20 s by default) fits in the stop timeout
    assert int(single(unit, "Service", "TimeoutStopSec").removesuffix("s")) >= 30
    name = AAI_KEY.credential
    assert unit_values(unit, "Service", "LoadCredential") == [
        f"{name}:/etc/edgecap-tokens/credentials/{name}"
    ]
    assert single(unit, "Service", "StateDirectory") == "edgecap-tokens"
    assert single(unit, "Service", "User") == "edgecap-tokens"
