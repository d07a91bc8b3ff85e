"""Configuration of OpenAI Realtime transcription: `streaming.provider`, the `[openai]` section,
the rules of the provider choice, OpenAI's auth and its API key, and the constants the
configuration repeats from `edgecap.providers.openai.params` (kept in step here).

Everything goes through `load_config` with a temporary file and an explicit environment, and
asserts the problem or warning line a user would read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from edgecap.config import ConfigError, LoadedConfig, check_config_command, load_config
from edgecap.config.openai import (
    MAX_OPENAI_PROMPT_CHARS,
    NO_PROMPT_MODELS,
    OPENAI_DEFAULT_MODEL,
    OPENAI_DEFAULT_URL,
    OPENAI_MODELS,
    OPENAI_SAMPLE_RATE,
    REALTIME_ONLY_MODELS,
    NoiseReduction,
    OpenAIConfig,
    check_openai_url,
)
from edgecap.config.provider_rules import ASSEMBLYAI_ENDPOINTING_KEYS, ASSEMBLYAI_STREAMING_KEYS
from edgecap.config.secrets import Secrets
from edgecap.providers.openai import params as provider

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config" / "edgecap.toml"
TOKEN_SERVICE = "https://keypool.example.com/v1/openai"
CREDENTIAL = "team-credential-Zq81x"
ENV = {"EDGECAP_TOKEN_SERVICE_CREDENTIAL": CREDENTIAL}
OPENAI_KEY = "sk-test-openai-4b1f"
BASE = (
    "[audio]\nsample_rate = 16000\n"
    f'[auth]\ntoken_service_url = "{TOKEN_SERVICE}"\n'
    '[streaming]\nprovider = "openai"\n'
)


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> LoadedConfig:
    path = tmp_path / "edgecap.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, ENV if environ is None else environ)


def problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, environ)
    return info.value.problems


def only_problem(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    found = problems(tmp_path, text, environ)
    assert len(found) == 1, found
    return found[0]


def openai(keys: str, before: str = "") -> str:
    """BASE with `before` added to the top sections and `keys` under [openai]."""
    return f"{before}{BASE}[openai]\n{keys}\n"


# --- defaults and effective values -------------------------------------------------------------


def test_default_provider_is_assemblyai_and_openai_section_is_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, '[auth]\ntoken_service_url = "https://k.example.com/v1/assemblyai"\n')
    assert cfg.config.streaming.provider == "assemblyai"
    assert cfg.config.openai == OpenAIConfig()
    assert cfg.warnings == ()


def test_openai_minimal_file_gets_documented_defaults(tmp_path: Path) -> None:
    loaded = load(tmp_path, BASE)
    o = loaded.config.openai
    assert loaded.config.streaming.provider == "openai"
    assert o.url == "wss://api.openai.com/v1/realtime?intent=transcription"
    assert o.model == "gpt-live-transcribe"
    assert (o.language, o.prompt, o.turn_detection) == (None, None, None)
    assert o.noise_reduction == "off"
    assert o.effective_noise_reduction is None
    assert (o.vad_threshold, o.prefix_padding_ms, o.silence_duration_ms) == (0.5, 300, 500)
    assert o.secret_expires_seconds == 600
    assert o.client_secrets_url == "https://api.openai.com/v1/realtime/client_secrets"
    assert o.effective_turn_detection == "manual"
    assert o.manual_commit
    assert o.realtime_only
    assert loaded.secrets.token_service_credential == CREDENTIAL
    assert loaded.warnings == ()


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-live-transcribe", "manual"),
        ("gpt-realtime-whisper", "manual"),
        ("gpt-4o-transcribe", "server_vad"),
        ("gpt-4o-mini-transcribe", "server_vad"),
        ("gpt-4o-transcribe-diarize", "server_vad"),
        ("whisper-1", "server_vad"),
    ],
)
def test_effective_turn_detection_follows_the_model(
    tmp_path: Path, model: str, expected: str
) -> None:
    o = load(tmp_path, openai(f'model = "{model}"')).config.openai
    assert o.effective_turn_detection == expected
    assert o.manual_commit == (expected == "manual")


def test_manual_turn_detection_can_be_chosen_for_any_model(tmp_path: Path) -> None:
    o = load(tmp_path, openai('model = "Whisper-1"\nturn_detection = "MANUAL"')).config.openai
    assert (o.model, o.turn_detection, o.effective_turn_detection) == (
        "whisper-1",
        "manual",
        "manual",
    )


def test_language_is_lower_cased_and_noise_reduction_sent(tmp_path: Path) -> None:
    o = load(tmp_path, openai('language = "DE"\nnoise_reduction = "far_field"')).config.openai
    assert o.language == "de"
    assert o.effective_noise_reduction == "far_field"


def test_check_config_names_the_openai_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "edgecap.toml"
    path.write_text('device_id = "pi-1"\n' + BASE, encoding="utf-8")
    assert check_config_command(str(path), environ=ENV) == 0
    assert capsys.readouterr().out == (
        f"config OK: {path} (device_id=pi-1, auth=token_service, streaming=openai "
        "wss://api.openai.com/v1/realtime?intent=transcription, mqtt=localhost:1883)\n"
    )


def test_environment_overrides_reach_the_openai_section(tmp_path: Path) -> None:
    env = {**ENV, "EDGECAP_OPENAI__MODEL": "gpt-4o-transcribe", "EDGECAP_OPENAI__LANGUAGE": "fr"}
    o = load(tmp_path, BASE, env).config.openai
    assert (o.model, o.language, o.effective_turn_detection) == (
        "gpt-4o-transcribe",
        "fr",
        "server_vad",
    )


# --- the provider choice --------------------------------------------------------------------


def test_openai_keys_with_assemblyai_are_errors_naming_each_key(tmp_path: Path) -> None:
    text = (
        '[auth]\ntoken_service_url = "https://k.example.com/v1/assemblyai"\n'
        '[openai]\nmodel = "whisper-1"\nvad_threshold = 0.7\n'
    )
    assert problems(tmp_path, text) == [
        'openai.model: set, but streaming.provider is "assemblyai", which does not use '
        '[openai] (got "whisper-1"); set streaming.provider = "openai" or remove openai.model',
        'openai.vad_threshold: set, but streaming.provider is "assemblyai", which does not use '
        '[openai] (got 0.7); set streaming.provider = "openai" or remove openai.vad_threshold',
    ]


def test_unknown_provider_is_named(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE.replace('"openai"', '"openia"'))
    assert problem == (
        'streaming.provider: must be one of "assemblyai", "openai", "assemblyai-sync" (did you '
        'mean "openai"?) (got "openia")'
    )


def test_openai_takes_16_khz_resampled_or_24_khz_as_it_is(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE.replace("sample_rate = 16000", "sample_rate = 44100"))
    assert problem == (
        'audio.sample_rate: must be 16000 or 24000 with streaming.provider = "openai" (got '
        "44100): OpenAI takes 24 kHz PCM; edgecap resamples 16 kHz capture (which the voice "
        "gate needs), or sends 24 kHz capture as it is"
    )
    problem = only_problem(tmp_path, BASE.replace("sample_rate = 16000", "sample_rate = 24000"))
    assert problem.startswith('audio.sample_rate: must be 16000 with session.gate = "voice"')


def test_openai_refuses_proxy_mode(tmp_path: Path) -> None:
    text = BASE.replace(f'token_service_url = "{TOKEN_SERVICE}"', 'mode = "proxy"')
    problem = only_problem(tmp_path, text)
    assert problem.startswith('auth.mode: "proxy" is not supported with streaming.provider = ')
    assert '(got "proxy")' in problem
    assert '"token_service"' in problem
    assert '"api_key"' in problem


def test_manual_commits_need_the_voice_gate(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE + '[session]\ngate = "always"\n')
    assert problem.startswith(
        'session.gate: must be "voice" with openai.turn_detection "manual" (the default of '
        'openai.model = "gpt-live-transcribe"; got session.gate = "always")'
    )
    set_manual = openai('model = "whisper-1"\nturn_detection = "manual"', "")
    problem = only_problem(tmp_path, set_manual + '[session]\ngate = "always"\n')
    assert problem.startswith('session.gate: must be "voice" with openai.turn_detection "manual"')
    assert 'got session.gate = "always"' in problem


def test_server_vad_may_run_with_the_always_gate(tmp_path: Path) -> None:
    loaded = load(tmp_path, openai('model = "gpt-4o-transcribe"') + '[session]\ngate = "always"\n')
    assert loaded.config.session.gate == "always"
    assert loaded.config.openai.effective_turn_detection == "server_vad"


def test_every_provider_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        '[audio]\nsample_rate = 44100\n[auth]\nmode = "proxy"\n'
        '[streaming]\nprovider = "openai"\nspeech_model = "u3-rt-pro"\n'
        '[endpointing]\nmax_turn_silence = 900\n[session]\ngate = "always"\n'
    )
    keys = [p.split(":")[0] for p in problems(tmp_path, text)]
    assert keys == [
        "auth.mode",
        "audio.sample_rate",
        "session.gate",
        "streaming.speech_model",
        "endpointing.max_turn_silence",
    ]


ASSEMBLYAI_VALUES = {
    "region": ('"eu"', '"eu"'),
    "url": (
        '"wss://streaming.eu.assemblyai.com/v3/ws"',
        '"wss://streaming.eu.assemblyai.com/v3/ws"',
    ),
    "speech_model": ('"universal-3-6-pro"', '"universal-3-6-pro"'),
    "format_turns": ("false", "false"),
    "keyterms": ('["edgecap"]', '["edgecap"]'),
    "prompt": ('"recipes"', '"recipes"'),
    "language_detection": ("true", "true"),
    "language_code": ('"de"', '"de"'),
    "language_codes": ('["de", "en"]', '["de", "en"]'),
    "mode": ('"balanced"', '"balanced"'),
    "vad_threshold": ("0.3", "0.3"),
    "voice_focus": ('"far-field"', '"far-field"'),
    "speaker_labels": ("true", "true"),
    "max_speakers": ("2", "2"),
}


def test_every_assemblyai_streaming_key_has_a_case() -> None:
    assert set(ASSEMBLYAI_VALUES) == set(ASSEMBLYAI_STREAMING_KEYS)


@pytest.mark.parametrize("key", sorted(ASSEMBLYAI_VALUES))
def test_assemblyai_streaming_keys_are_refused_with_openai(tmp_path: Path, key: str) -> None:
    value, shown = ASSEMBLYAI_VALUES[key]
    problem = only_problem(tmp_path, f"{BASE}{key} = {value}\n")
    assert problem.startswith(
        f'streaming.{key}: is AssemblyAI\'s and is not used with streaming.provider = "openai" '
        f"(got {shown}); remove it"
    )
    instead = ASSEMBLYAI_STREAMING_KEYS[key]
    assert problem.endswith(
        f"; the OpenAI setting is {instead}" if instead else " (OpenAI has none like it)"
    )


def test_the_prompt_points_at_openai_prompt(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, f'{BASE}prompt = "A kitchen"\n')
    assert problem == (
        'streaming.prompt: is AssemblyAI\'s and is not used with streaming.provider = "openai" '
        '(got "A kitchen"); remove it; the OpenAI setting is openai.prompt'
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("end_of_turn_confidence_threshold", "0.7"),
        ("min_turn_silence", "200"),
        ("max_turn_silence", "900"),
    ],
)
def test_endpointing_keys_are_refused_with_openai(tmp_path: Path, key: str, value: str) -> None:
    problem = only_problem(tmp_path, f"{BASE}[endpointing]\n{key} = {value}\n")
    assert problem.startswith(
        f"endpointing.{key}: is AssemblyAI's and is not used with streaming.provider = "
        f'"openai" (got {value}); remove it'
    )
    assert key in ASSEMBLYAI_ENDPOINTING_KEYS


def test_assemblyai_keys_at_their_defaults_are_warnings(tmp_path: Path) -> None:
    text = (
        f'{BASE}speech_model = "universal-streaming-english"\nkeyterms = []\n'
        "[endpointing]\nend_of_turn_confidence_threshold = 0.4\n"
    )
    warnings = load(tmp_path, text).warnings
    assert warnings == (
        "streaming.speech_model: is AssemblyAI's and has no effect with streaming.provider = "
        '"openai" (it is set to its default, "universal-streaming-english"); remove it; the '
        "OpenAI setting is openai.model",
        "streaming.keyterms: is AssemblyAI's and has no effect with streaming.provider = "
        '"openai" (it is set to its default, []); remove it; the OpenAI setting is openai.prompt',
        "endpointing.end_of_turn_confidence_threshold: is AssemblyAI's and has no effect with "
        'streaming.provider = "openai" (it is set to its default, 0.4); remove it (OpenAI has '
        "none like it)",
    )


def test_the_shipped_example_switched_to_openai_loads_with_leftover_warnings(
    tmp_path: Path,
) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace('provider = "assemblyai"', 'provider = "openai"', 1)
    text = text.replace(
        'token_service_url = "https://keypool.example.com/v1/assemblyai"',
        f'token_service_url = "{TOKEN_SERVICE}"',
    )
    loaded = load(tmp_path, text)
    assert loaded.config.streaming.provider == "openai"
    assert [w.split(":")[0] for w in loaded.warnings] == [
        "streaming.speech_model",
        "streaming.keyterms",
        "streaming.language_detection",
        "streaming.speaker_labels",
    ]


def test_openai_section_of_the_example_uncommented_is_the_defaults(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    section = text.split("\n[openai]\n", 1)[1].split("\n[", 1)[0]
    keys = "\n".join(m[1] for m in re.finditer(r"^# (\w+ = .*)$", section, re.MULTILINE))
    keys = keys.replace('turn_detection = "manual"\n', "")  # the model's default, not a value
    o = load(tmp_path, openai(keys)).config.openai
    assert o.model_dump() == {**OpenAIConfig().model_dump(), "language": "en", "prompt": o.prompt}


# --- [openai] keys ----------------------------------------------------------------------------


@pytest.mark.parametrize("model", sorted(REALTIME_ONLY_MODELS))
def test_server_vad_with_a_realtime_only_model_is_an_error(tmp_path: Path, model: str) -> None:
    problem = only_problem(tmp_path, openai(f'model = "{model}"\nturn_detection = "server_vad"'))
    assert problem.startswith(
        f'openai.turn_detection: "server_vad" is not available with openai.model = "{model}"'
    )
    assert "gpt-4o-transcribe" in problem  # the models that have it


def test_prompt_with_a_model_that_takes_none_is_an_error(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, openai('model = "gpt-realtime-whisper"\nprompt = "Recipes"'))
    assert problem == (
        'openai.prompt: has no effect with openai.model = "gpt-realtime-whisper", which takes '
        'no prompt (got "Recipes"); remove openai.prompt or pick another model'
    )


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ('model = "gpt-5-transcribe"', 'openai.model: must be one of "gpt-live-transcribe"'),
        ('language = "en-US"', 'openai.language: must be a two-letter ISO-639-1 code such as "en"'),
        ('language = "e"', "openai.language: must be a two-letter ISO-639-1 code"),
        ('prompt = "  "', "openai.prompt: must not be empty"),
        ('noise_reduction = "room"', 'openai.noise_reduction: must be one of "near_field"'),
        ('turn_detection = "semantic_vad"', 'openai.turn_detection: must be one of "server_vad"'),
        ("vad_threshold = 1.5", "openai.vad_threshold: must be between 0 and 1"),
        ("prefix_padding_ms = 2001", "openai.prefix_padding_ms: must be between 0 and 2000"),
        ("silence_duration_ms = 50", "openai.silence_duration_ms: must be between 100 and 5000"),
        (
            "secret_expires_seconds = 5",
            "openai.secret_expires_seconds: must be between 10 and 7200",
        ),
        (
            "secret_expires_seconds = 7201",
            "openai.secret_expires_seconds: must be between 10 and 7200",
        ),
        (
            "silence_duration_ms = true",
            "openai.silence_duration_ms: must be an integer between 100 and 5000",
        ),
    ],
)
def test_bad_openai_values_name_key_and_value(tmp_path: Path, keys: str, expected: str) -> None:
    problem = only_problem(tmp_path, openai(keys))
    assert problem.startswith(expected)
    value = keys.split(" = ", 1)[1]
    if value != '"  "':
        assert f"got {value}" in problem  # the bad value is shown


def test_prompt_is_bounded(tmp_path: Path) -> None:
    assert load(tmp_path, openai(f'prompt = "{"x" * 4000}"')).config.openai.prompt == "x" * 4000
    problem = only_problem(tmp_path, openai(f'prompt = "{"x" * 4001}"'))
    assert problem.startswith("openai.prompt: must be at most 4000 characters long (got ")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "wss://api.openai.com/v1/realtime?model=gpt-realtime",
            "openai.url: must not carry a model query parameter for api.openai.com (got model="
            '"gpt-realtime"): a model in the URL opens a conversation session, which rejects the '
            "transcription session.update; use wss://api.openai.com/v1/realtime?intent="
            "transcription and choose the model with openai.model",
        ),
        (
            "wss://api.openai.com/v1/realtime",
            "openai.url: must carry intent=transcription for api.openai.com (got no intent); use "
            "wss://api.openai.com/v1/realtime?intent=transcription",
        ),
        (
            "wss://api.openai.com/v1/realtime?intent=conversation",
            "openai.url: must carry intent=transcription for api.openai.com (got intent="
            '"conversation"); use wss://api.openai.com/v1/realtime?intent=transcription',
        ),
        (
            "ws://api.openai.com/v1/realtime?intent=transcription",
            "openai.url: plain ws:// is only allowed for loopback hosts",
        ),
        (
            "https://api.openai.com/v1/realtime?intent=transcription",
            "openai.url: must be a wss:// URL (got scheme 'https')",
        ),
    ],
)
def test_bad_openai_urls_are_named(tmp_path: Path, url: str, expected: str) -> None:
    problem = only_problem(tmp_path, openai(f'url = "{url}"'))
    assert problem.startswith(expected)


def test_credentials_in_the_url_are_refused_without_quoting_them(tmp_path: Path) -> None:
    problem = only_problem(
        tmp_path, openai('url = "wss://api.openai.com/v1/realtime?intent=transcription&key=sk-9"')
    )
    assert problem.startswith("openai.url: credentials don't belong in the URL")
    assert "sk-9" not in problem


@pytest.mark.parametrize(
    "url",
    [
        "ws://127.0.0.1:8765/v1/realtime?intent=transcription",
        "ws://localhost:8765/v1/realtime",  # a simulator: its own rules
        "wss://keypool.example.com/v1/openai/v1/realtime?intent=transcription&x=1",
    ],
)
def test_test_servers_and_proxies_are_accepted(tmp_path: Path, url: str) -> None:
    assert load(tmp_path, openai(f'url = "{url}"')).config.openai.url == url


def test_client_secrets_url_rules(tmp_path: Path) -> None:
    env = {"EDGECAP_OPENAI_API_KEY": OPENAI_KEY}
    api_key = BASE.replace(f'token_service_url = "{TOKEN_SERVICE}"', 'mode = "api_key"')
    local = "http://127.0.0.1:9/v1/realtime/client_secrets"
    cfg = load(tmp_path, f'{api_key}[openai]\nclient_secrets_url = "{local}"\n', env)
    assert cfg.config.openai.client_secrets_url == local
    problem = only_problem(
        tmp_path, f'{api_key}[openai]\nclient_secrets_url = "https://api.openai.com/v1/x"\n', env
    )
    assert problem.startswith(
        "openai.client_secrets_url: the path must end with /v1/realtime/client_secrets "
        "(got path '/v1/x')"
    )


# --- warnings ---------------------------------------------------------------------------------


def test_server_vad_keys_with_manual_turn_detection_are_warnings(tmp_path: Path) -> None:
    warnings = load(tmp_path, openai("silence_duration_ms = 800")).warnings
    assert warnings == (
        'openai.silence_duration_ms: is used only with openai.turn_detection = "server_vad" (it '
        'is "manual" with openai.model = "gpt-live-transcribe"); it has no effect, remove it',
    )
    quiet = load(tmp_path, openai('model = "whisper-1"\nsilence_duration_ms = 800')).warnings
    assert quiet == ()


def test_assemblyai_auth_keys_with_openai_are_warnings(tmp_path: Path) -> None:
    text = BASE.replace(
        "[streaming]",
        'api_key_file = "/nonexistent/assemblyai-key"\ntoken_expires_in_seconds = 120\n'
        'api_token_url = "https://streaming.assemblyai.com/v3/token"\n[streaming]',
    )
    keys = [w.split(":")[0] for w in load(tmp_path, text).warnings]
    assert keys == ["auth.api_key_file", "auth.api_token_url", "auth.token_expires_in_seconds"]


def test_token_service_base_of_the_other_provider_is_a_warning(tmp_path: Path) -> None:
    text = BASE.replace("/v1/openai", "/v1/assemblyai")
    assert load(tmp_path, text).warnings == (
        "auth.token_service_url: ends in /assemblyai, which looks like the token service's "
        'assemblyai base, but streaming.provider is "openai"; it is usually .../v1/openai',
    )
    back = f'[auth]\ntoken_service_url = "{TOKEN_SERVICE}"\n'
    assert [w.split(":")[0] for w in load(tmp_path, back).warnings] == ["auth.token_service_url"]


def test_token_service_url_must_be_the_base(tmp_path: Path) -> None:
    text = BASE.replace(TOKEN_SERVICE, TOKEN_SERVICE + "/v1/realtime/client_secrets")
    assert only_problem(tmp_path, text) == (
        "auth.token_service_url: give the base URL without /v1/realtime/client_secrets "
        "(edgecap appends it), e.g. https://keypool.example.com/v1/openai"
    )


def test_openai_key_file_with_assemblyai_is_a_warning(tmp_path: Path) -> None:
    text = (
        '[auth]\ntoken_service_url = "https://k.example.com/v1/assemblyai"\n'
        'openai_api_key_file = "/nonexistent/openai-key"\n'
    )
    assert [w.split(":")[0] for w in load(tmp_path, text).warnings] == ["auth.openai_api_key_file"]


# --- the OpenAI API key ----------------------------------------------------------------------

API_KEY = BASE.replace(f'token_service_url = "{TOKEN_SERVICE}"', 'mode = "api_key"')


def test_api_key_mode_reads_the_openai_key_not_assemblyais(tmp_path: Path) -> None:
    env = {"EDGECAP_OPENAI_API_KEY": OPENAI_KEY, "EDGECAP_ASSEMBLYAI_API_KEY": "aai-key"}
    loaded = load(tmp_path, API_KEY, env)
    s = loaded.secrets
    assert s.openai_api_key == OPENAI_KEY
    assert s.api_key is None
    assert s.token_service_credential is None
    assert s.sources == {"openai_api_key": "environment EDGECAP_OPENAI_API_KEY"}
    assert OPENAI_KEY not in repr(s)
    assert OPENAI_KEY not in str(s)
    assert "openai_api_key=<redacted>" in repr(s)
    assert s.values == (OPENAI_KEY,)
    assert loaded.config.auth.api_key_auth == "token"
    assert loaded.config.auth.mints_tokens


def test_openai_key_from_file_and_credentials_directory(tmp_path: Path) -> None:
    key_file = tmp_path / "openai-key"
    key_file.write_text(OPENAI_KEY + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    text = API_KEY.replace(
        'mode = "api_key"', f'mode = "api_key"\nopenai_api_key_file = "{key_file}"'
    )
    assert load(tmp_path, text, {}).secrets.openai_api_key == OPENAI_KEY
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "openai-api-key").write_text("sk-from-systemd", encoding="utf-8")
    (creds / "openai-api-key").chmod(0o600)
    loaded = load(tmp_path, API_KEY, {"CREDENTIALS_DIRECTORY": str(creds)})
    assert loaded.secrets.openai_api_key == "sk-from-systemd"
    assert loaded.secrets.sources["openai_api_key"] == "credential openai-api-key"


def test_missing_openai_key_names_every_source(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, API_KEY, {"EDGECAP_ASSEMBLYAI_API_KEY": "aai-key"})
    assert problem == (
        "auth.openai_api_key_file: no OpenAI API key found, and it is required when auth.mode = "
        '"api_key" and streaming.provider = "openai"; set auth.openai_api_key_file to a file '
        "holding it, or provide $CREDENTIALS_DIRECTORY/openai-api-key (systemd "
        "LoadCredential=) or the environment variable EDGECAP_OPENAI_API_KEY"
    )


def test_missing_openai_key_is_reported_with_other_problems(tmp_path: Path) -> None:
    found = problems(tmp_path, API_KEY + "[openai]\nvad_threshold = 2\n", {})
    assert [p.split(":")[0] for p in found] == ["openai.vad_threshold", "auth.openai_api_key_file"]


def test_header_auth_to_a_foreign_host_is_a_warning(tmp_path: Path) -> None:
    text = API_KEY.replace('mode = "api_key"', 'mode = "api_key"\napi_key_auth = "header"')
    text += '[openai]\nurl = "wss://relay.example.com/v1/realtime"\nsecret_expires_seconds = 60\n'
    warnings = load(tmp_path, text, {"EDGECAP_OPENAI_API_KEY": OPENAI_KEY}).warnings
    assert [w.split(":")[0] for w in warnings] == ["openai.secret_expires_seconds", "openai.url"]
    assert warnings[1] == (
        'openai.url: auth.api_key_auth = "header" sends the OpenAI API key itself to '
        "relay.example.com, which is not api.openai.com; make sure that server may have it"
    )


def test_client_secrets_url_unused_is_a_warning(tmp_path: Path) -> None:
    text = openai('client_secrets_url = "https://api.openai.com/v1/realtime/client_secrets"')
    warnings = load(tmp_path, text).warnings
    assert [w.split(":")[0] for w in warnings] == ["openai.client_secrets_url"]


@pytest.mark.parametrize(
    ("section", "key"), [("openai", "api_key"), ("auth", "openai_api_key"), ("openai", "key")]
)
def test_inline_openai_key_points_at_the_openai_secret(
    tmp_path: Path, section: str, key: str
) -> None:
    line = f'{key} = "sk-inline-123"\n'
    if section == "openai":
        text = f"{BASE}[openai]\n{line}"
    else:  # [auth] comes before [streaming] in BASE
        text = BASE.replace("[streaming]", f"{line}[streaming]")
    problem = only_problem(tmp_path, text)
    assert problem.startswith(f"{section}.{key}: secrets are not accepted inline; ")
    assert "auth.openai_api_key_file" in problem
    assert "EDGECAP_OPENAI_API_KEY" in problem
    assert "sk-inline-123" not in problem


def test_secrets_values_list_every_secret() -> None:
    s = Secrets("cred", "aai", "mqtt", "oai")
    assert s.values == ("cred", "aai", "oai", "mqtt")
    assert Secrets().values == ()


# --- in step with edgecap.providers.openai.params ----------------------------------------------


def test_constants_match_the_provider() -> None:
    assert OPENAI_DEFAULT_URL == provider.DEFAULT_URL
    assert OPENAI_DEFAULT_MODEL == provider.DEFAULT_MODEL
    assert OPENAI_MODELS == provider.MODELS
    assert REALTIME_ONLY_MODELS == provider.REALTIME_ONLY
    assert NO_PROMPT_MODELS == provider.NO_PROMPT
    assert OPENAI_SAMPLE_RATE == provider.SAMPLE_RATE
    assert MAX_OPENAI_PROMPT_CHARS == provider.MAX_PROMPT_CHARS
    assert set(get_args(NoiseReduction)) - {"off"} == set(provider.NOISE_REDUCTIONS)
    vad = OpenAIConfig()
    assert (vad.vad_threshold, vad.prefix_padding_ms, vad.silence_duration_ms) == (
        provider.ServerVad().threshold,
        provider.ServerVad().prefix_padding_ms,
        provider.ServerVad().silence_duration_ms,
    )


def _params(o: OpenAIConfig) -> provider.OpenAIParams:
    """What the wiring will build from the section (raises if the provider refuses it)."""
    vad = None
    if o.effective_turn_detection == "server_vad":
        vad = provider.ServerVad(o.vad_threshold, o.prefix_padding_ms, o.silence_duration_ms)
    return provider.OpenAIParams(
        url=o.url,
        model=o.model,
        language=o.language,
        prompt=o.prompt,
        noise_reduction=o.effective_noise_reduction,
        turn_detection=vad,
    )


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_every_valid_section_is_accepted_by_the_provider(model: str) -> None:
    prompt = None if model in NO_PROMPT_MODELS else "p" * MAX_OPENAI_PROMPT_CHARS
    for extremes in (
        {"vad_threshold": 0.0, "prefix_padding_ms": 0, "silence_duration_ms": 100},
        {"vad_threshold": 1.0, "prefix_padding_ms": 2000, "silence_duration_ms": 5000},
    ):
        o = OpenAIConfig.model_validate(
            {"model": model, "language": "EN", "prompt": prompt, "noise_reduction": "near_field"}
            | extremes
        )
        params = _params(o)
        assert params.manual_commit == o.manual_commit
        assert params.warnings() == []


@pytest.mark.parametrize(
    "url",
    [
        OPENAI_DEFAULT_URL,
        "wss://api.openai.com/v1/realtime?model=gpt-realtime",
        "wss://api.openai.com/v1/realtime?intent=transcription&model=whisper-1",
        "wss://api.openai.com/v1/realtime",
        "wss://api.openai.com/v1/realtime?intent=conversation",
        "ws://api.openai.com/v1/realtime?intent=transcription",
        "ws://127.0.0.1:9/v1/realtime?intent=transcription",
        "wss://proxy.example.com/v1/openai/v1/realtime?x=1",
        "https://api.openai.com/v1/realtime?intent=transcription",
    ],
)
def test_url_rule_matches_the_provider(url: str) -> None:
    """The configuration is at least as strict as the provider: what it accepts the provider
    accepts, and for api.openai.com they agree."""
    config_ok = not check_openai_url(url)
    provider_ok = provider.check_url(url) is None
    if config_ok:
        assert provider_ok
    if "api.openai.com" in url:
        assert config_ok == provider_ok
