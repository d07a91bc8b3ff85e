"""Configuration: the file a user writes, the problems they are shown, where secrets come from.

Most tests go through `load_config` with a temporary file and an explicit environment;
a few run the real `edgecap check-config` command in a subprocess.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from edgecap.config import (
    AuthConfig,
    Config,
    ConfigError,
    LoadedConfig,
    MqttConfig,
    Secrets,
    check_config_command,
    default_config_path,
    load_config,
)
from edgecap.config.model import SECTION_MODELS

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "edgecap.toml"
DOCS = REPO / "docs" / "configuration.md"

TOKEN_SERVICE = "https://keypool.example.com/v1/assemblyai"
BASE = f'[auth]\ntoken_service_url = "{TOKEN_SERVICE}"\n'
CREDENTIAL = "team-credential-Zq81x"
ENV = {"EDGECAP_TOKEN_SERVICE_CREDENTIAL": CREDENTIAL}


def write(tmp_path: Path, text: str, name: str = "edgecap.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> LoadedConfig:
    return load_config(write(tmp_path, text), ENV if environ is None else environ)


def problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, environ)
    return info.value.problems


def only_problem(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    found = problems(tmp_path, text, environ)
    assert len(found) == 1, found
    return found[0]


# --- a valid file -------------------------------------------------------------------------


def test_minimal_file_gets_documented_defaults(tmp_path: Path) -> None:
    loaded = load(tmp_path, BASE, {**ENV, "STATE_DIRECTORY": "/var/lib/private/edgecap"})
    cfg = loaded.config
    assert loaded.path == tmp_path / "edgecap.toml"
    assert cfg.auth.token_service_url == TOKEN_SERVICE
    assert cfg.audio.sample_rate == 16000
    assert cfg.audio.frame_ms == 50
    assert cfg.streaming.url == "wss://streaming.assemblyai.com/v3/ws"
    assert cfg.streaming.speech_model == "universal-streaming-english"
    assert cfg.endpointing.effective_turn_silence(cfg.streaming.speech_model) == (400, 1280)
    assert cfg.endpointing.effective_confidence_threshold(cfg.streaming.speech_model) == 0.4
    assert cfg.streaming.effective_format_turns is True
    assert cfg.streaming.effective_vad_threshold == 0.4
    assert loaded.warnings == ()
    assert cfg.mqtt.host == "localhost"
    assert cfg.mqtt.port == 1883
    assert cfg.state_dir == Path("/var/lib/private/edgecap")
    assert loaded.secrets.token_service_credential == CREDENTIAL
    assert loaded.secrets.sources == {
        "token_service_credential": "environment EDGECAP_TOKEN_SERVICE_CREDENTIAL"
    }


def test_state_dir_falls_back_to_var_lib(tmp_path: Path) -> None:
    assert load(tmp_path, BASE).config.state_dir == Path("/var/lib/edgecap")


def test_device_id_defaults_to_sanitised_hostname(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "Kitchen Pi.local")
    cfg = load(tmp_path, BASE).config
    assert cfg.device_id == "Kitchen-Pi-local"
    assert cfg.mqtt_client_id == "edgecap-Kitchen-Pi-local"


def test_mqtt_client_id_uses_explicit_value() -> None:
    assert MqttConfig(client_id="my-client").effective_client_id("pi") == "my-client"
    assert MqttConfig().effective_client_id("pi") == "edgecap-pi"


def test_models_are_immutable() -> None:
    cfg = Config(auth=AuthConfig(token_service_url=TOKEN_SERVICE))
    with pytest.raises(ValueError, match="frozen"):
        cfg.mqtt.port = 1  # type: ignore[misc]


def test_token_service_url_trailing_slash_is_dropped(tmp_path: Path) -> None:
    text = f'[auth]\ntoken_service_url = "{TOKEN_SERVICE}/"\n'
    assert load(tmp_path, text).config.auth.token_service_url == TOKEN_SERVICE


def test_loopback_test_servers_may_use_plain_ws_and_http(tmp_path: Path) -> None:
    text = (
        '[auth]\ntoken_service_url = "http://127.0.0.1:8080/v1/assemblyai"\n'
        '[streaming]\nurl = "ws://[::1]:9000/v3/ws"\n'
    )
    cfg = load(tmp_path, text).config
    assert cfg.streaming.url == "ws://[::1]:9000/v3/ws"
    assert cfg.auth.token_service_url == "http://127.0.0.1:8080/v1/assemblyai"


def test_api_key_mode_needs_no_token_service(tmp_path: Path) -> None:
    loaded = load(tmp_path, '[auth]\nmode = "api_key"\n', {"EDGECAP_ASSEMBLYAI_API_KEY": "k-123"})
    assert loaded.secrets.api_key == "k-123"
    assert loaded.secrets.token_service_credential is None


# --- the example file cannot drift --------------------------------------------------------


def _example_keys() -> dict[str, set[str]]:
    """Keys per section ("" = top level) written in the example, commented out or not."""
    keys: dict[str, set[str]] = {"": set()}
    section = ""
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"^\[(\w+)\]", line):
            section = m.group(1)
            keys[section] = set()
        elif m := re.match(r"^#?\s?(\w+) = ", line):
            keys[section].add(m.group(1))
    return keys


def _defaults(model: type[BaseModel]) -> dict[str, object]:
    return {
        name: info.get_default(call_default_factory=False)
        for name, info in model.model_fields.items()
    }


def test_example_file_values_equal_model_defaults() -> None:
    loaded = load_config(EXAMPLE, ENV)
    for section, model in SECTION_MODELS.items():
        actual = getattr(loaded.config, section).model_dump()
        expected = _defaults(model)
        if section == "auth":
            assert actual.pop("token_service_url") == TOKEN_SERVICE
            expected.pop("token_service_url")
        assert actual == expected, section


def test_example_file_shows_every_key() -> None:
    written = _example_keys()
    assert written[""] == {"device_id", "state_dir"}
    for section, model in SECTION_MODELS.items():
        assert written[section] == set(model.model_fields), section
    raw = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert "device_id" not in raw
    assert "state_dir" not in raw  # computed defaults stay commented out


def test_docs_describe_every_key() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for section, model in SECTION_MODELS.items():
        assert f"### `[{section}]`" in text
        for name in model.model_fields:
            assert f"| `{name}` |" in text, f"{section}.{name}"
    assert "| `device_id` |" in text
    assert "| `state_dir` |" in text


# --- problems: unknown keys, types, ranges ------------------------------------------------


def test_typo_is_named_with_suggestion(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE + "[endpointing]\nmax_turn_silnce = 900\n")
    assert problem == "endpointing.max_turn_silnce: unknown key (did you mean max_turn_silence?)"


def test_unknown_section_and_misplaced_key(tmp_path: Path) -> None:
    found = problems(tmp_path, "port = 1884\n" + BASE + "[endpointng]\n")
    assert "endpointng: unknown key (did you mean endpointing?)" in found
    assert any(p.startswith("port: unknown key") and "mqtt.port" in p for p in found)


def test_unknown_key_value_is_not_echoed(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE + '[mqtt]\nzzz = "value-Xq9"\n')
    assert problem.startswith("mqtt.zzz: unknown key")
    assert "value-Xq9" not in problem


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE + '[mqtt]\nport = "abc"\n')
    assert problem == 'mqtt.port: must be an integer between 1 and 65535 (got "abc")'


def test_out_of_range_names_the_range(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE + "[audio]\nframe_ms = 20\n")
    assert problem == "audio.frame_ms: must be between 50 and 1000 (got 20)"


def test_boolean_is_not_a_number(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE + "[session]\nmax_session_seconds = true\n")
    assert problem.startswith("session.max_session_seconds: must be an integer")


def test_section_must_be_a_table(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, 'mqtt = "broker"\n' + BASE)
    assert problem.startswith("mqtt: must be a table")


def test_literal_choices_with_suggestion(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE + '[logging]\nlevel = "warn"\n')
    assert problem.startswith('logging.level: must be one of "debug", "info", "warning"')
    assert 'did you mean "warning"?' in problem


def test_deprecated_speech_model_names_replacement(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE + '[streaming]\nspeech_model = "u3-pro"\n')
    assert problem.startswith("streaming.speech_model:")
    assert '"u3-rt-pro"' in problem


@pytest.mark.parametrize(
    ("keys", "key", "needle"),
    [
        ("quick_failure_seconds = 40.0", "quick_failure_seconds", "stable_session_seconds (30)"),
        ("cooldown_seconds = 10.0", "cooldown_seconds", "reconnect_max_seconds (30)"),
        ("catchup_rate = 1.0", "catchup_rate", "greater than 1"),
        ("replay_buffer_seconds = 0.5", "replay_buffer_seconds", "1"),
        ("quick_failure_count = 1", "quick_failure_count", "2"),
    ],
)
def test_resilience_keys_are_checked(tmp_path: Path, keys: str, key: str, needle: str) -> None:
    problem = only_problem(tmp_path, f"{BASE}[streaming]\n{keys}\n")
    assert problem.startswith(f"streaming.{key}:")
    assert needle in problem


@pytest.mark.parametrize(
    ("section", "text", "key", "needle"),
    [
        ("endpointing", "min_turn_silence = 900\nmax_turn_silence = 500", "max_turn_silence", ">="),
        ("audio", "reopen_min_seconds = 60\nreopen_max_seconds = 5", "reopen_max_seconds", ">="),
        ("audio", "sample_rate = 11025\nframe_ms = 50", "frame_ms", "whole number of samples"),
    ],
)
def test_cross_field_rules_blame_a_key(
    tmp_path: Path, section: str, text: str, key: str, needle: str
) -> None:
    problem = only_problem(tmp_path, f"{BASE}[{section}]\n{text}\n")
    assert problem.startswith(f"{section}.{key}: ")
    assert needle in problem


def test_token_service_url_required_in_token_service_mode(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, "[auth]\n")
    assert problem.startswith("auth.token_service_url: required when auth.mode")


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("edge/#", "wildcards"),
        ("/edgecap", "start or end with '/'"),
        ("", "must not be empty"),
    ],
)
def test_mqtt_prefix_rules(tmp_path: Path, value: str, needle: str) -> None:
    problem = only_problem(tmp_path, f'{BASE}[mqtt]\nprefix = "{value}"\n')
    assert problem.startswith("mqtt.prefix: ")
    assert needle in problem


def test_mqtt_host_without_scheme(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE + '[mqtt]\nhost = "mqtt://broker"\n')
    assert problem.startswith("mqtt.host: give only the broker's host name")


def test_device_id_pattern(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, 'device_id = "kitchen/pi"\n' + BASE)
    assert problem.startswith("device_id: must be 1-64 characters")


def test_toml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE + "[mqtt]\nport = = 1\n")
    assert "TOML syntax error" in problem
    assert "line 4" in problem
    assert "column" in problem


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(missing, ENV)
    assert info.value.problems == [
        f"{missing}: config file not found; copy config/edgecap.toml from the edgecap "
        "sources there and edit it, or pass --config PATH (or set EDGECAP_CONFIG)"
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        '[auth]\nmode = "token_service"\n'
        "[endpointing]\nmax_turn_silnce = 900\n"
        '[mqtt]\nport = "abc"\n'
        '[streaming]\nurl = "wss://api.assemblyai.com/v2/realtime/ws"\n'
    )
    found = problems(tmp_path, text, {"EDGECAP_MQTT__PROT": "1"})
    starts = sorted(p.split(":")[0] for p in found)
    assert starts == [
        "auth.credential_file",
        "auth.token_service_url",
        "endpointing.max_turn_silnce",
        "environment variable EDGECAP_MQTT__PROT",
        "mqtt.port",
        "streaming.url",
    ]


# --- streaming and token URLs -------------------------------------------------------------


def test_v2_url_points_to_v3(tmp_path: Path) -> None:
    url = "wss://api.assemblyai.com/v2/realtime/ws?sample_rate=16000"
    found = problems(tmp_path, f'{BASE}[streaming]\nurl = "{url}"\n')
    v2 = [p for p in found if "v2" in p]
    assert len(v2) == 1
    assert v2[0].startswith("streaming.url: ")
    assert "wss://streaming.assemblyai.com/v3/ws" in v2[0]
    assert "Not authorized" in v2[0]
    assert "4001" in v2[0]


def test_credential_in_url_is_rejected_without_echo(tmp_path: Path) -> None:
    url = "wss://streaming.assemblyai.com/v3/ws?token=tok-SECRET-77"
    problem = only_problem(tmp_path, f'{BASE}[streaming]\nurl = "{url}"\n')
    assert problem.startswith("streaming.url: credentials don't belong in the URL")
    assert "single-use token" in problem
    assert "SECRET-77" not in problem


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("ws://streaming.assemblyai.com/v3/ws", "only allowed for loopback"),
        ("https://streaming.assemblyai.com/v3/ws", "must be a wss:// URL"),
        ("wss://streaming.assemblyai.com/v3/stream", "must end with /v3/ws"),
        ("wss://user:pw-Q1@streaming.assemblyai.com/v3/ws", "credentials don't belong"),
        ("wss://streaming.assemblyai.com/v3/ws?speech_model=x", "must not contain a query"),
    ],
)
def test_streaming_url_rules(tmp_path: Path, url: str, needle: str) -> None:
    problem = only_problem(tmp_path, f'{BASE}[streaming]\nurl = "{url}"\n')
    assert problem.startswith("streaming.url: ")
    assert needle in problem
    assert "pw-Q1" not in problem


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("http://keypool.example.com/v1/assemblyai", "only allowed for loopback"),
        ("https://keypool.example.com/v1/assemblyai/v3/token", "without /v3/token"),
        ("https://keypool.example.com/v1/assemblyai?key=k-SECRET", "credentials don't belong"),
        ("wss://keypool.example.com/v1/assemblyai", "must be an https:// URL"),
    ],
)
def test_token_service_url_rules(tmp_path: Path, url: str, needle: str) -> None:
    problem = only_problem(tmp_path, f'[auth]\ntoken_service_url = "{url}"\n')
    assert problem.startswith("auth.token_service_url: ")
    assert needle in problem
    assert "k-SECRET" not in problem


# --- environment overrides ----------------------------------------------------------------


def test_env_overrides_apply_case_insensitively(tmp_path: Path) -> None:
    env = {
        **ENV,
        "EDGECAP_MQTT__PORT": "1884",
        "EDGECAP_endpointing__Max_Turn_Silence": "900",
        "EDGECAP_STREAMING__FORMAT_TURNS": "false",
        "EDGECAP_DEVICE_ID": "pi-7",
        "EDGECAP_STATE_DIR": "/srv/edgecap",
        "EDGECAP_SOMETHING_ELSE": "ignored",
    }
    cfg = load(tmp_path, BASE + "[mqtt]\nport = 1883\n", env).config
    assert cfg.mqtt.port == 1884
    assert cfg.endpointing.max_turn_silence == 900
    assert cfg.streaming.format_turns is False
    assert cfg.device_id == "pi-7"
    assert cfg.state_dir == Path("/srv/edgecap")


def test_empty_override_unsets_optional_key(tmp_path: Path) -> None:
    cfg = load(tmp_path, BASE + '[mqtt]\nclient_id = "x"\n', {**ENV, "EDGECAP_MQTT__CLIENT_ID": ""})
    assert cfg.config.mqtt.client_id is None


def test_unknown_env_override_is_rejected_with_suggestion(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE, {**ENV, "EDGECAP_MQTT__PROT": "1884"})
    assert problem == (
        "environment variable EDGECAP_MQTT__PROT: unknown key mqtt.prot (did you mean mqtt.port?)"
    )


def test_unknown_env_section_is_rejected(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE, {**ENV, "EDGECAP_MQT__PORT": "1884"})
    assert problem.startswith("environment variable EDGECAP_MQT__PORT: unknown section mqt")
    assert "did you mean mqtt?" in problem


def test_bad_override_value_names_the_variable(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE, {**ENV, "EDGECAP_MQTT__PORT": "abc"})
    assert problem == (
        'mqtt.port: must be an integer between 1 and 65535 (got "abc", '
        "from environment variable EDGECAP_MQTT__PORT)"
    )


def test_secret_override_is_refused_without_echo(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE, {**ENV, "EDGECAP_MQTT__PASSWORD": "pw-Zz1"})
    assert problem.startswith("environment variable EDGECAP_MQTT__PASSWORD:")
    assert "EDGECAP_MQTT_PASSWORD" in problem
    assert "pw-Zz1" not in problem


def test_default_config_path_precedence() -> None:
    assert default_config_path({}) == Path("/etc/edgecap/edgecap.toml")
    assert default_config_path({"CONFIGURATION_DIRECTORY": "/etc/x"}) == Path("/etc/x/edgecap.toml")
    both = {"CONFIGURATION_DIRECTORY": "/etc/x", "EDGECAP_CONFIG": "/tmp/e.toml"}
    assert default_config_path(both) == Path("/tmp/e.toml")


def test_load_config_uses_edgecap_config_variable(tmp_path: Path) -> None:
    path = write(tmp_path, BASE, "other.toml")
    assert load_config(None, {**ENV, "EDGECAP_CONFIG": str(path)}).path == path


# --- secrets ------------------------------------------------------------------------------


def test_inline_secret_is_refused_without_echo(tmp_path: Path) -> None:
    found = problems(tmp_path, BASE + 'api_key = "k-INLINE-1"\n[mqtt]\npassword = "pw-INLINE-2"\n')
    assert found == [
        "auth.api_key: secrets are not accepted inline; put it in a file and set "
        "auth.api_key_file, or use $CREDENTIALS_DIRECTORY/assemblyai-api-key or "
        "EDGECAP_ASSEMBLYAI_API_KEY",
        "mqtt.password: secrets are not accepted inline; put it in a file and set "
        "mqtt.password_file, or use $CREDENTIALS_DIRECTORY/mqtt-password or EDGECAP_MQTT_PASSWORD",
    ]


def test_missing_credential_explains_all_sources(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE, {})
    assert problem.startswith("auth.credential_file: no token-service credential found")
    for source in (
        "$CREDENTIALS_DIRECTORY/token-service-credential",
        "EDGECAP_TOKEN_SERVICE_CREDENTIAL",
    ):
        assert source in problem


def test_credential_precedence_file_then_credentials_dir_then_env(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "token-service-credential").write_text("from-systemd\n")
    (tmp_path / "cred.txt").write_text("  from-file \n")
    env = {"CREDENTIALS_DIRECTORY": str(creds), "EDGECAP_TOKEN_SERVICE_CREDENTIAL": "from-env"}

    loaded = load(tmp_path, BASE, env)
    assert loaded.secrets.token_service_credential == "from-systemd"
    assert (
        loaded.secrets.sources["token_service_credential"] == "credential token-service-credential"
    )

    # a relative path is relative to the config file's directory
    loaded = load(tmp_path, BASE + 'credential_file = "cred.txt"\n', env)
    assert loaded.secrets.token_service_credential == "from-file"
    assert loaded.secrets.sources["token_service_credential"] == f"file {tmp_path / 'cred.txt'}"

    (creds / "token-service-credential").unlink()
    loaded = load(tmp_path, BASE, env)
    assert loaded.secrets.token_service_credential == "from-env"


def test_configured_secret_file_problems_name_key_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    problem = only_problem(tmp_path, f'{BASE}credential_file = "{missing}"\n')
    assert problem == f"auth.credential_file: file {missing} not found; create it or fix the path"

    empty = tmp_path / "empty"
    empty.write_text(" \n")
    problem = only_problem(tmp_path, f'{BASE}credential_file = "{empty}"\n')
    assert problem == f"auth.credential_file: file {empty} is empty; put the secret in it"


def test_multi_line_secret_file_is_refused_without_echo(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("line-ONE\nline-TWO\n")
    text = f'{BASE}[mqtt]\nusername = "u"\npassword_file = "{secret_file}"\n'
    problem = only_problem(tmp_path, text)
    assert problem.startswith(f"mqtt.password_file: file {secret_file} holds more than one line")
    assert "line-ONE" not in problem


def test_mqtt_password_requires_username(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE, {**ENV, "EDGECAP_MQTT_PASSWORD": "pw-1"})
    assert problem.startswith("mqtt.username: required when an MQTT password is configured")
    loaded = load(
        tmp_path, BASE + '[mqtt]\nusername = "u"\n', {**ENV, "EDGECAP_MQTT_PASSWORD": "pw-1"}
    )
    assert loaded.secrets.mqtt_password == "pw-1"


def test_secrets_never_appear_in_repr_or_str(tmp_path: Path) -> None:
    env = {**ENV, "EDGECAP_MQTT_PASSWORD": "mqtt-pw-Yy3"}
    loaded = load(tmp_path, BASE + '[mqtt]\nusername = "u"\n', env)
    for text in (repr(loaded), str(loaded), repr(loaded.secrets), str(loaded.secrets), f"{loaded}"):
        assert CREDENTIAL not in text
        assert "mqtt-pw-Yy3" not in text
    assert "environment EDGECAP_MQTT_PASSWORD" in repr(loaded.secrets)
    assert "Secrets(" in str(Secrets())


def test_secret_problems_found_even_when_validation_fails(tmp_path: Path) -> None:
    found = problems(tmp_path, BASE + "[mqtt]\nport = 0\n", {})
    assert [p.split(":")[0] for p in found] == ["mqtt.port", "auth.credential_file"]


# --- check-config -------------------------------------------------------------------------


def test_check_config_command_success(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, 'device_id = "pi-1"\n' + BASE + '[mqtt]\nhost = "broker.lan"\n')
    assert check_config_command(str(path), environ=ENV) == 0
    out = capsys.readouterr().out
    assert out == (
        f"config OK: {path} (device_id=pi-1, auth=token_service, "
        "streaming=wss://streaming.assemblyai.com/v3/ws, mqtt=broker.lan:1883)\n"
    )


def test_check_config_command_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASE + "[endpointing]\nmax_turn_silnce = 1\n")
    assert check_config_command(str(path), environ={}) == 78
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[0] == f"config invalid: {path}"
    assert "  - endpointing.max_turn_silnce: unknown key (did you mean max_turn_silence?)" in lines
    assert len(lines) == 3  # the typo and the missing credential
