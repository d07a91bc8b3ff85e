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


# --- hostile files and environment: exit 78 with one line, quickly, whatever the input -----

NESTED = BASE + "[streaming]\nx = " + "[" * 1000 + "]" * 1000 + "\n"
NESTED_PROBLEM = "streaming.x: arrays or inline tables nested 1000 levels deep (line 4)"


def run_edgecap(
    command: str, config: Path | str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Like `run_cli` for any command, with bytes out (to check they are UTF-8) and a
    deadline and a memory cap, so that a regression fails instead of hanging or swapping."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)}
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "edgecap", command, "--config", str(config)],
        env=env,
        capture_output=True,
        timeout=20,
        check=False,
        preexec_fn=_cap_memory,
    )


def _cap_memory() -> None:
    import resource

    limit = 1 << 30  # 1 GiB of address space: a read of /dev/zero fails fast instead
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def problem_lines(stderr: bytes) -> list[str]:
    text = stderr.decode("utf-8")  # strict: a lone surrogate would have been written escaped
    assert "Traceback" not in text
    return [line for line in text.splitlines() if line.startswith("  - ")]


def test_cli_deeply_nested_array_exits_78_with_one_line(tmp_path: Path) -> None:
    result = run_edgecap("check-config", write(tmp_path, NESTED), ENV)
    assert result.returncode == 78
    [line] = problem_lines(result.stderr)
    assert line.startswith(f"  - {NESTED_PROBLEM}")


def test_run_deeply_nested_array_exits_78_with_one_line(tmp_path: Path) -> None:
    result = run_edgecap("run", write(tmp_path, NESTED), ENV)
    assert result.returncode == 78
    lines = result.stderr.decode("utf-8").splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"ERROR edgecap: config: {NESTED_PROBLEM}")


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_cli_config_path_fifo_or_device_exits_78_at_once(tmp_path: Path, kind: str) -> None:
    path = _fifo(tmp_path) if kind == "fifo" else Path(kind)
    result = run_edgecap("check-config", path, ENV)
    assert result.returncode == 78
    [line] = problem_lines(result.stderr)
    what = "a named pipe (FIFO)" if kind == "fifo" else "a character device"
    assert line == f"  - {path}: is {what}, not a file; pass the path of the TOML file"


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_cli_secret_file_fifo_or_device_exits_78_at_once(tmp_path: Path, kind: str) -> None:
    path = _fifo(tmp_path) if kind == "fifo" else Path(kind)
    result = run_edgecap("check-config", write(tmp_path, f'{BASE}credential_file = "{path}"\n'))
    assert result.returncode == 78
    [line] = problem_lines(result.stderr)
    assert line.startswith(f"  - auth.credential_file: {path} is a ")


def test_cli_credentials_directory_fifo_exits_78_at_once(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    os.mkfifo(creds / "token-service-credential")
    result = run_edgecap(
        "check-config", write(tmp_path, BASE), {"CREDENTIALS_DIRECTORY": str(creds)}
    )
    assert result.returncode == 78
    [line] = problem_lines(result.stderr)
    assert "token-service-credential is a named pipe (FIFO), not a file" in line


def test_cli_non_utf8_device_id_exits_78_naming_the_variable(tmp_path: Path) -> None:
    bad = b"pi-\xff".decode("utf-8", "surrogateescape")  # sent to the child as the byte 0xff
    result = run_edgecap("check-config", write(tmp_path, BASE), {**ENV, "EDGECAP_DEVICE_ID": bad})
    assert result.returncode == 78
    assert problem_lines(result.stderr) == [
        "  - environment variable EDGECAP_DEVICE_ID: is not valid UTF-8 text; "
        "set it to UTF-8 text or unset it"
    ]


def test_cli_warns_about_a_secret_file_others_can_read(tmp_path: Path) -> None:
    secret = tmp_path / "credential"
    secret.write_text("cred-123456\n")
    secret.chmod(0o644)
    result = run_edgecap("check-config", write(tmp_path, f'{BASE}credential_file = "{secret}"\n'))
    assert result.returncode == 0
    assert result.stdout.decode().startswith("config OK: ")
    assert result.stderr.decode() == (
        f"warning: auth.credential_file: file {secret} is readable by its group and other users "
        f"(mode 0644); restrict it with chmod 600 {secret} (owned by the service user), or pass "
        "it with systemd LoadCredential=\n"
    )
