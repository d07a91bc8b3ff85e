"""The shipped systemd unit: systemd accepts it without a single warning, its hardening
scores at most 2.5 in `systemd-analyze security`, and it matches what the daemon does."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edgecap.config import EX_CONFIG
from edgecap.config.load import DEFAULT_CONFIG_PATH
from edgecap.config.secrets import TOKEN_SERVICE_CREDENTIAL

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "edgecap.service"
INSTALLED_EXEC = "/opt/edgecap/venv/bin/edgecap"
MAX_EXPOSURE = 2.5

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)"
)


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as ordered (key, value) lists; keys may repeat."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"assignment outside a section: {raw!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {raw!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def single(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}= should be set once, found {found}"
    return found[0]


def seconds(value: str) -> float:
    """A systemd time span limited to the forms this unit uses: '30s', '5min', '20'."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|min)?", value)
    assert match, f"unexpected time span {value!r}"
    number = float(match.group(1))
    return {"ms": number / 1000, "min": number * 60}.get(match.group(2) or "s", number)


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def verifiable_copy(directory: Path, text: str | None = None) -> Path:
    """The unit with ExecStart's binary replaced by one that exists on this machine
    (/opt/edgecap is not installed here; systemd-analyze rejects a missing executable)."""
    true_bin = shutil.which("true")
    assert true_bin is not None
    source = UNIT.read_text(encoding="utf-8") if text is None else text
    assert f"ExecStart={INSTALLED_EXEC} " in source
    copy = directory / "edgecap.service"
    copy.write_text(source.replace(f"ExecStart={INSTALLED_EXEC} ", f"ExecStart={true_bin} "))
    return copy


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args], capture_output=True, text=True, timeout=60, check=False
    )


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_unit_without_any_warning(tmp_path: Path) -> None:
    result = analyze("verify", str(verifiable_copy(tmp_path)))
    # verify exits 0 even for unknown keys or unparsable values; only stderr tells.
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@needs_systemd_analyze
def test_verify_check_would_catch_a_typo_in_the_unit(tmp_path: Path) -> None:
    """Guards the test above: the same check reports a misspelt key and a bad value."""
    broken = UNIT.read_text(encoding="utf-8").replace(
        "NotifyAccess=main", "NotifyAcess=main\nWatchdogSec=thirty"
    )
    result = analyze("verify", str(verifiable_copy(tmp_path, broken)))
    assert "NotifyAcess" in result.stderr
    assert "thirty" in result.stderr


@needs_systemd_analyze
def test_security_exposure_is_at_most_2_5(tmp_path: Path) -> None:
    result = analyze("security", "--offline=true", "--no-pager", str(verifiable_copy(tmp_path)))
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout[-2000:]
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, result.stdout


def test_runs_the_installed_daemon_with_the_installed_config(
    unit: dict[str, list[tuple[str, str]]],
) -> None:
    assert single(unit, "Service", "ExecStart") == (
        f"{INSTALLED_EXEC} run --config {DEFAULT_CONFIG_PATH}"
    )
    assert single(unit, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert single(unit, "Install", "WantedBy") == "multi-user.target"


def test_is_a_notify_service_with_a_watchdog(unit: dict[str, list[tuple[str, str]]]) -> None:
    assert single(unit, "Service", "Type") == "notify"
    assert single(unit, "Service", "NotifyAccess") == "main"
    assert seconds(single(unit, "Service", "WatchdogSec")) == 30


def test_restarts_after_crashes_but_not_for_a_bad_config(
    unit: dict[str, list[tuple[str, str]]],
) -> None:
    assert single(unit, "Service", "Restart") == "on-failure"
    assert seconds(single(unit, "Service", "RestartSec")) >= 1
    prevented = " ".join(values(unit, "Service", "RestartPreventExitStatus")).split()
    assert str(EX_CONFIG) in prevented
    # A missing microphone must never end in "start request repeated too quickly".
    assert single(unit, "Unit", "StartLimitIntervalSec") == "0"


def test_leaves_time_for_a_clean_stop(unit: dict[str, list[tuple[str, str]]]) -> None:
    # Terminate waits up to 5 s for AssemblyAI's final messages, then MQTT says offline.
    assert seconds(single(unit, "Service", "TimeoutStopSec")) >= 10
    assert values(unit, "Service", "KillSignal") in ([], ["SIGTERM"])


def test_reaches_alsa_devices_and_nothing_else(unit: dict[str, list[tuple[str, str]]]) -> None:
    assert single(unit, "Service", "DynamicUser") == "yes"
    assert single(unit, "Service", "SupplementaryGroups") == "audio"
    assert single(unit, "Service", "PrivateDevices") == "no"
    assert single(unit, "Service", "DevicePolicy") == "closed"
    assert values(unit, "Service", "DeviceAllow") == ["char-alsa rw"]


def test_gets_its_secret_as_a_credential_and_keeps_state(
    unit: dict[str, list[tuple[str, str]]],
) -> None:
    name = TOKEN_SERVICE_CREDENTIAL.credential
    assert values(unit, "Service", "LoadCredential") == [f"{name}:/etc/edgecap/credentials/{name}"]
    assert single(unit, "Service", "StateDirectory") == "edgecap"
    assert single(unit, "Service", "ConfigurationDirectory") == "edgecap"
    assert single(unit, "Service", "UMask") == "0077"


def test_is_hardened(unit: dict[str, list[tuple[str, str]]]) -> None:
    expected = {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "ProtectClock": "yes",
        "ProtectHostname": "yes",
        "ProtectProc": "invisible",
        "ProcSubset": "pid",
        "RestrictNamespaces": "yes",
        "RestrictRealtime": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "RemoveIPC": "yes",
        "PrivateTmp": "yes",
        "SystemCallArchitectures": "native",
        "SystemCallErrorNumber": "EPERM",
    }
    actual = {key: single(unit, "Service", key) for key in expected}
    assert actual == expected
    assert "@system-service" in values(unit, "Service", "SystemCallFilter")
    families = set(single(unit, "Service", "RestrictAddressFamilies").split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}
