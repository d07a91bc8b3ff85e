"""`edgecap check-config` run for real in a subprocess: exit codes and what the user reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_config import BASE, CREDENTIAL, ENV, REPO, write

pytestmark = pytest.mark.integration


def run_cli(
    config: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)}
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "edgecap", "check-config", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_valid_file_exits_0(tmp_path: Path) -> None:
    result = run_cli(write(tmp_path, BASE), ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config OK: ")


def test_cli_typo_exits_78_with_suggestion(tmp_path: Path) -> None:
    result = run_cli(write(tmp_path, BASE + "[endpointing]\nmax_turn_silnce = 900\n"), ENV)
    assert result.returncode == 78
    assert "endpointing.max_turn_silnce" in result.stderr
    assert "did you mean max_turn_silence?" in result.stderr


def test_cli_wrong_type_exits_78(tmp_path: Path) -> None:
    result = run_cli(write(tmp_path, BASE + "[streaming]\nformat_turns = 3\n"), ENV)
    assert result.returncode == 78
    assert "streaming.format_turns: must be true or false (got 3)" in result.stderr


def test_cli_missing_credential_exits_78(tmp_path: Path) -> None:
    result = run_cli(write(tmp_path, BASE))
    assert result.returncode == 78
    assert "auth.credential_file: no token-service credential found" in result.stderr


def test_cli_v2_url_names_v3_endpoint(tmp_path: Path) -> None:
    text = BASE + '[streaming]\nurl = "wss://api.assemblyai.com/v2/realtime/ws"\n'
    result = run_cli(write(tmp_path, text), ENV)
    assert result.returncode == 78
    assert "wss://streaming.assemblyai.com/v3/ws" in result.stderr


def test_cli_never_prints_secrets(tmp_path: Path) -> None:
    text = BASE + '[streaming]\nurl = "wss://streaming.assemblyai.com/v3/ws?api_key=k-LEAK-42"\n'
    result = run_cli(write(tmp_path, text), {**ENV, "EDGECAP_MQTT_PASSWORD": "pw-LEAK-43"})
    assert result.returncode == 78
    output = result.stdout + result.stderr
    assert "credentials don't belong in the URL" in output
    for secret in ("k-LEAK-42", "pw-LEAK-43", CREDENTIAL):
        assert secret not in output


def test_cli_reports_several_problems_and_env_overrides(tmp_path: Path) -> None:
    text = BASE + '[logging]\nlevel = "loud"\n'
    env = {**ENV, "EDGECAP_MQTT__PROT": "1", "EDGECAP_ENDPOINTING__MIN_TURN_SILENCE": "5"}
    result = run_cli(write(tmp_path, text), env)
    assert result.returncode == 78
    problem_lines = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert len(problem_lines) == 3
    assert "unknown key mqtt.prot (did you mean mqtt.port?)" in result.stderr
    assert "endpointing.min_turn_silence: must be between 50 and 10000" in result.stderr
    assert "logging.level: must be one of" in result.stderr


def test_cli_env_override_applies_and_credentials_directory_wins(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "token-service-credential").write_text("cred-from-systemd\n")
    # the (empty, hence invalid) variable is not consulted: the systemd credential comes first
    env = {
        "CREDENTIALS_DIRECTORY": str(creds),
        "EDGECAP_TOKEN_SERVICE_CREDENTIAL": "",
        "EDGECAP_MQTT__PORT": "1884",
    }
    result = run_cli(write(tmp_path, BASE), env)
    assert result.returncode == 0, result.stderr
    assert "mqtt=localhost:1884" in result.stdout
