"""Hostile and broken configuration: every bad file, secret file or environment gives
`ConfigError` with one printable line per problem (exit 78), never a traceback, a hang or
unbounded memory. The FIFO and device cases, which would hang or eat memory on a regression,
run as subprocesses with a deadline in tests/test_config_cli.py."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgecap.app import daemon
from edgecap.config import Config, ConfigError, check_config_command, load_config
from edgecap.config.model import SECTION_MODELS
from tests.test_config import BASE, ENV, load, only_problem, problems, write

pytestmark = pytest.mark.unit

BAD = b"\xff".decode("utf-8", "surrogateescape")  # what os.environ holds for the byte 0xff


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def assert_printable(line: str) -> None:
    line.encode("utf-8")  # no lone surrogate
    assert line.isprintable(), repr(line)  # no control characters, no line break


# --- nesting deeper than the TOML reader follows --------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        (BASE + f"[streaming]\nx = {nested(1000)}\n", "streaming.x", 4),
        (f"x = {nested(1000)}\n" + BASE, "x", 1),
        (BASE + "[mqtt]\nhost = " + "{a = " * 700 + "1" + "}" * 700 + "\n", "mqtt.host", 4),
        (BASE + f'["m]q"]\ny = "]]"  # [[\nx = {nested(600)}\n', '"m]q".x', 5),
    ],
    ids=["under-a-section", "top-level", "inline-tables", "brackets-in-strings"],
)
def test_deeply_nested_value_is_one_problem_naming_the_key(
    tmp_path: Path, text: str, key: str, line: int
) -> None:
    problem = only_problem(tmp_path, text)
    assert problem.startswith(f"{key}: arrays or inline tables nested ")
    assert f"(line {line})" in problem
    assert "fix or remove it" in problem


def test_deeply_nested_tables_are_an_unknown_key(tmp_path: Path) -> None:
    # [a.a.a....] parses (no recursion in the reader) but was deep-copied for the overrides
    text = BASE + "[" + ".".join(["a"] * 1000) + "]\n"
    assert only_problem(tmp_path, text).startswith("a: unknown key; remove it")


def test_number_longer_than_python_reads_is_one_problem(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE + "[mqtt]\nport = " + "9" * 5000 + "\n")
    assert "a number has more than 4300 digits (line 4)" in problem


# --- any other failure is still one line -----------------------------------------------------


def _explode(*args: object, **kwargs: object) -> Config:
    raise RuntimeError("boom-7")


def test_unexpected_exception_is_one_problem_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(Config, "model_validate", _explode)
    path = write(tmp_path, BASE)
    with pytest.raises(ConfigError) as info:
        load_config(path, ENV)
    [problem] = info.value.problems
    assert problem.startswith(f"{path}: could not be checked: unexpected RuntimeError: boom-7 at ")
    assert "tests/test_config_hostile.py:" in problem  # where it was raised
    assert "edgecap/config/load.py:" in problem  # and the innermost edgecap frame
    assert "please report this line" in problem
    assert isinstance(info.value.__cause__, RuntimeError)  # kept for a debugger

    assert check_config_command(str(path), environ=ENV) == 78
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 2  # "config invalid: ..." and the problem


# --- the environment --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variable",
    [
        "EDGECAP_DEVICE_ID",
        "EDGECAP_STATE_DIR",
        "EDGECAP_MQTT__HOST",
        "EDGECAP_TOKEN_SERVICE_CREDENTIAL",
        "CREDENTIALS_DIRECTORY",
    ],
)
def test_non_utf8_environment_value_is_refused_naming_the_variable(
    tmp_path: Path, variable: str
) -> None:
    problem = only_problem(tmp_path, BASE, {**ENV, variable: f"/x{BAD}y"})
    assert variable in problem.split(":")[0]
    assert "is not valid UTF-8 text" in problem
    assert "/x" not in problem
    assert "\\xff" not in problem
    assert_printable(problem)


def test_non_utf8_variable_name_is_shown_escaped(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE, {**ENV, f"EDGECAP_MQTT__HO{BAD}ST": "broker"})
    assert problem.startswith("environment variable EDGECAP_MQTT__HO\\xffST: is not valid UTF-8")
    assert_printable(problem)


def test_non_utf8_config_variable_is_refused(tmp_path: Path) -> None:
    write(tmp_path, BASE, f"{BAD}.toml")
    with pytest.raises(ConfigError) as info:
        load_config(None, {**ENV, "EDGECAP_CONFIG": f"{tmp_path}/{BAD}.toml"})
    assert info.value.problems == [
        "environment variable EDGECAP_CONFIG: is not valid UTF-8 text; set it to a UTF-8 path"
    ]


def test_non_utf8_state_directory_makes_state_dir_invalid(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE, {**ENV, "STATE_DIRECTORY": f"/var/lib/{BAD}"})
    assert problem == (
        "state_dir: must be valid UTF-8 text (from environment variable STATE_DIRECTORY)"
    )


# --- problem lines stay printable and short ---------------------------------------------------


def test_control_characters_in_keys_are_escaped(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE + '[mqtt]\n"a\\u001b[2Jb\\nnew" = 1\n')
    assert problem.startswith("mqtt.a\\x1b[2Jb\\x0anew: unknown key")
    assert_printable(problem)


def test_long_values_and_keys_are_cut(tmp_path: Path) -> None:
    found = problems(tmp_path, f'device_id = "{"d" * 100_000}"\n{"k" * 100_000} = 1\n' + BASE)
    assert len(found) == 2
    assert all(len(p) < 400 for p in found), [len(p) for p in found]
    assert found[0].endswith(f'got "{"d" * 56}...')
    assert found[1].startswith(f"{'k' * 57}...: unknown key")


# --- secret files -----------------------------------------------------------------------------


def secret(tmp_path: Path, content: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "credential"
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_oversized_secret_file_is_refused(tmp_path: Path) -> None:
    path = secret(tmp_path, b"c" * (64 * 1024 + 1))
    problem = only_problem(tmp_path, f'{BASE}credential_file = "{path}"\n', {})
    assert problem == (
        f"auth.credential_file: {path} is larger than 64 KiB (65537 bytes); "
        "keep only the secret in it"
    )


def test_secret_file_with_nul_byte_is_refused(tmp_path: Path) -> None:
    path = secret(tmp_path, b"cred\x00ential\n")
    problem = only_problem(tmp_path, f'{BASE}credential_file = "{path}"\n', {})
    assert problem == f"auth.credential_file: file {path} contains a NUL byte; keep only the secret"


def test_secret_directory_is_refused(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    (creds / "token-service-credential").mkdir(parents=True)
    problem = only_problem(tmp_path, BASE, {"CREDENTIALS_DIRECTORY": str(creds)})
    assert "token-service-credential is a directory, not a file" in problem


@pytest.mark.parametrize(
    ("mode", "readers"),
    [(0o644, "its group and other users"), (0o640, "its group"), (0o604, "other users")],
)
def test_secret_file_readable_by_others_warns(tmp_path: Path, mode: int, readers: str) -> None:
    path = secret(tmp_path, b"cred-123456\n", mode)
    loaded = load(tmp_path, f'{BASE}credential_file = "{path}"\n', {})
    assert loaded.secrets.token_service_credential == "cred-123456"
    assert loaded.warnings == (
        f"auth.credential_file: file {path} is readable by {readers} (mode {mode:04o}); "
        f"restrict it with chmod 600 {path} (owned by the service user), or pass it with "
        "systemd LoadCredential=",
    )


def test_private_secret_file_gives_no_warning(tmp_path: Path) -> None:
    path = secret(tmp_path, b"cred-123456\n", 0o400)
    assert load(tmp_path, f'{BASE}credential_file = "{path}"\n', {}).warnings == ()


def test_check_config_prints_warnings_even_when_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = secret(tmp_path, b"cred-123456\n", 0o644)
    good = write(tmp_path, f'{BASE}credential_file = "{path}"\n')
    assert check_config_command(str(good), environ={}) == 0
    out, err = capsys.readouterr()
    assert out.startswith("config OK: ")
    assert len(out.splitlines()) == 1
    assert err.startswith(f"warning: auth.credential_file: file {path} is readable by")
    assert f"chmod 600 {path}" in err

    bad = write(tmp_path, f'{BASE}credential_file = "{path}"\n[mqtt]\nport = 0\n')
    assert check_config_command(str(bad), environ={}) == 78
    err = capsys.readouterr().err
    assert "  - mqtt.port: must be between 1 and 65535 (got 0)" in err
    assert f"warning: auth.credential_file: file {path} is readable by" in err


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_run_logs_warnings_at_start(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    class Started:
        def __init__(self, loaded: object) -> None:
            pass

        async def run(self) -> int:
            return 0

    monkeypatch.setattr(daemon, "Daemon", Started)
    for name in [n for n in os.environ if n.startswith(("EDGECAP_", "CREDENTIALS_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("JOURNAL_STREAM", "")
    path = secret(tmp_path, b"cred-123456\n", 0o644)
    config = write(tmp_path, f'{BASE}credential_file = "{path}"\n[logging]\ntarget = "stderr"\n')
    assert daemon.run_command(str(config)) == 0
    err = capsys.readouterr().err
    assert f"WARNING edgecap: config: auth.credential_file: file {path} is readable" in err


# --- ranges and values that would fail later --------------------------------------------------


def test_every_seconds_key_has_a_maximum() -> None:
    unbounded = [
        f"{section}.{name}"
        for section, model in SECTION_MODELS.items()
        for name, info in model.model_fields.items()
        if name.endswith("_seconds")
        and not any(getattr(m, "le", None) is not None for m in info.metadata)
        and not any(getattr(m, "lt", None) is not None for m in info.metadata)
    ]
    assert unbounded == []


@pytest.mark.parametrize(
    ("section", "key", "high"),
    [
        ("auth", "request_timeout_seconds", 60),
        ("streaming", "connect_timeout_seconds", 60),
        ("streaming", "begin_timeout_seconds", 60),
        ("streaming", "terminate_timeout_seconds", 30),
    ],
)
def test_timeouts_have_a_maximum(tmp_path: Path, section: str, key: str, high: int) -> None:
    header = "" if section == "auth" else f"[{section}]\n"  # BASE ends inside [auth]
    problem = only_problem(tmp_path, f"{BASE}{header}{key} = 1e9\n")
    assert (
        problem == f"{section}.{key}: must be greater than 0 and at most {high} (got 1000000000.0)"
    )
    loaded = load(tmp_path, f"{BASE}{header}{key} = {high}\n")
    assert getattr(getattr(loaded.config, section), key) == high


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'state_dir = "/var/lib/a\\u0000b"\n' + BASE,
            "state_dir: must not contain a NUL character (\\x00)",
        ),
        (
            BASE + 'credential_file = "/etc/a\\u0000b"\n',
            "auth.credential_file: must not contain a NUL character (\\x00)",
        ),
        (
            BASE + f'[mqtt]\nhost = "{"h" * 64}.lan"\n',
            "mqtt.host: is not a valid host name: each dot-separated part must be 1 to 63 "
            f'characters (got "{"h" * 56}...)',
        ),
        (
            BASE + '[mqtt]\nhost = "broker..lan"\n',
            "mqtt.host: is not a valid host name: each dot-separated part must be 1 to 63 "
            'characters (got "broker..lan")',
        ),
        (
            BASE + '[mqtt]\nhost = "bro\\u001bker"\n',
            "mqtt.host: must be a host name or address without spaces or control characters "
            '(got "bro\\u001bker")',
        ),
        (
            BASE + f'[mqtt]\nprefix = "{"p" * 2000}"\n',
            f'mqtt.prefix: must be at most 1024 characters long (got "{"p" * 56}...)',
        ),
        (
            BASE + '[streaming]\nurl = "wss://h.example/v3\\n/ws\\u001b"\n',
            "streaming.url: must not contain spaces or control characters (encode them as %XX)",
        ),
        (
            BASE + f'[streaming]\nurl = "wss://{"s" * 70}.example/v3/ws"\n',
            "streaming.url: the host is not a valid host name: each dot-separated part must be "
            "1 to 63 characters",
        ),
    ],
    ids=[
        "state_dir-nul",
        "secret-path-nul",
        "mqtt-host-long-label",
        "mqtt-host-empty-label",
        "mqtt-host-control",
        "mqtt-prefix-long",
        "url-control",
        "url-host-long-label",
    ],
)
def test_values_the_system_would_refuse_later_are_problems(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert only_problem(tmp_path, text) == expected


def test_mqtt_password_longer_than_mqtt_carries_is_refused(tmp_path: Path) -> None:
    env = {**ENV, "EDGECAP_MQTT_PASSWORD": "p" * 65536}
    problem = only_problem(tmp_path, BASE + '[mqtt]\nusername = "u"\n', env)
    assert problem.startswith(
        "mqtt.password_file: the MQTT password (environment EDGECAP_MQTT_PASSWORD) is longer "
        "than 65535 bytes"
    )


def test_config_file_over_1_mib_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + ("# padding\n" * 110_000))
    size = path.stat().st_size
    with pytest.raises(ConfigError) as info:
        load_config(path, ENV)
    assert info.value.problems == [
        f"{path}: is larger than 1 MiB ({size} bytes); is it the right file?"
    ]
