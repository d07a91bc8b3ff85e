"""Configuration of AssemblyAI v3 streaming: auth modes (token service, proxy, API key), the
region, the speech models and the keys each of them uses, and turn detection.

Everything goes through `load_config` with a temporary file and an explicit environment, and
asserts the problem or warning line a user would read.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecap.config import ConfigError, LoadedConfig, check_config_command, load_config
from edgecap.config.models_table import (
    SPEECH_MODELS,
    SpeechModel,
    default_turn_silence,
    default_vad_threshold,
    model_caps,
)
from edgecap.config.secrets import resolve_secrets

pytestmark = pytest.mark.unit

TOKEN_SERVICE = "https://keypool.example.com/v1/assemblyai"
BASE = f'[auth]\ntoken_service_url = "{TOKEN_SERVICE}"\n'
CREDENTIAL = "team-credential-Zq81x"
ENV = {"EDGECAP_TOKEN_SERVICE_CREDENTIAL": CREDENTIAL}
API_KEY_ENV = {"EDGECAP_ASSEMBLYAI_API_KEY": "k-123"}
API_KEY = '[auth]\nmode = "api_key"\n'
PROXY_URL = "wss://keypool.example.com/v1/assemblyai/v3/ws"
PROXY = f'[auth]\nmode = "proxy"\n[streaming]\nurl = "{PROXY_URL}"\n'


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> LoadedConfig:
    path = tmp_path / "edgecap.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, ENV if environ is None else environ)


def only_problem(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, environ)
    assert len(info.value.problems) == 1, info.value.problems
    return info.value.problems[0]


def streaming(keys: str, model: str = "universal-3-6-pro") -> str:
    return f'{BASE}[streaming]\nspeech_model = "{model}"\n{keys}\n'


# --- defaults: an existing Universal-Streaming file behaves as before -----------------------


def test_existing_file_keeps_its_effective_values(tmp_path: Path) -> None:
    loaded = load(tmp_path, BASE + "[streaming]\n[endpointing]\n")
    cfg = loaded.config
    s, ep = cfg.streaming, cfg.endpointing
    assert s.region == "global"
    assert s.url == "wss://streaming.assemblyai.com/v3/ws"
    assert not s.url_is_explicit
    assert cfg.auth.api_token_url == "https://streaming.assemblyai.com/v3/token"
    assert (ep.min_turn_silence, ep.max_turn_silence) == (None, None)
    assert ep.effective_turn_silence(s.speech_model) == (400, 1280)
    assert ep.effective_confidence_threshold(s.speech_model) == 0.4
    assert s.effective_format_turns is True
    assert s.effective_vad_threshold == 0.4
    assert s.keyterms == ()
    assert (s.prompt, s.language_code, s.language_codes, s.mode) == (None, None, None, None)
    assert (s.vad_threshold, s.voice_focus, s.max_speakers) == (None, None, None)
    assert (s.language_detection, s.speaker_labels) == (False, False)
    assert cfg.auth.proxy_auth == "header"
    assert cfg.auth.api_key_auth == "token"
    assert loaded.warnings == ()


def test_explicit_turn_silences_are_kept(tmp_path: Path) -> None:
    cfg = load(tmp_path, BASE + "[endpointing]\nmin_turn_silence = 560\nmax_turn_silence = 900\n")
    ep = cfg.config.endpointing
    assert ep.effective_turn_silence("universal-streaming-english") == (560, 900)
    assert ep.effective_turn_silence("universal-3-6-pro") == (560, 900)


# --- the model table ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "silence", "vad", "vad_speakers"),
    [
        ("universal-streaming-english", (400, 1280), 0.4, 0.4),
        ("universal-streaming-multilingual", (400, 1280), 0.4, 0.4),
        ("u3-rt-pro", (100, 1000), 0.3, 0.3),
        ("universal-3-5-pro", (None, None), 0.2, 0.5),
        ("universal-3-6-pro", (None, None), 0.2, 0.5),
    ],
)
def test_model_defaults(
    model: SpeechModel, silence: tuple[int | None, int | None], vad: float, vad_speakers: float
) -> None:
    assert model in SPEECH_MODELS
    assert default_turn_silence(model) == silence
    assert default_vad_threshold(model) == vad
    assert default_vad_threshold(model, speaker_labels=True) == vad_speakers


def test_model_capabilities() -> None:
    flags = ("is_pro", "language_detection", "language_codes", "prompt", "mode", "voice_focus")
    flags += ("format_turns", "end_of_turn_confidence_threshold")
    table = {name: [getattr(model_caps(name), f) for f in flags] for name in SPEECH_MODELS}
    assert table == {
        "universal-streaming-english": [False, False, False, False, False, False, True, True],
        "universal-streaming-multilingual": [False, True, False, False, False, False, True, True],
        "u3-rt-pro": [True, True, False, True, False, True, False, False],
        "universal-3-5-pro": [True, True, True, True, True, True, False, False],
        "universal-3-6-pro": [True, True, True, True, True, True, False, False],
    }


def test_pro_model_values_are_not_sent_unless_set(tmp_path: Path) -> None:
    cfg = load(tmp_path, streaming("speaker_labels = true")).config
    s, ep = cfg.streaming, cfg.endpointing
    assert ep.effective_turn_silence(s.speech_model) == (None, None)
    assert ep.effective_confidence_threshold(s.speech_model) is None
    assert s.effective_format_turns is None
    assert s.effective_vad_threshold == 0.5  # the diarization profile's default


# --- region and URL -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "host"),
    [
        ("global", "streaming.assemblyai.com"),
        ("us", "streaming.us.assemblyai.com"),
        ("eu", "streaming.eu.assemblyai.com"),
        ("EU", "streaming.eu.assemblyai.com"),
    ],
)
def test_region_picks_the_hosts(tmp_path: Path, region: str, host: str) -> None:
    cfg = load(tmp_path, f'{API_KEY}[streaming]\nregion = "{region}"\n', API_KEY_ENV).config
    assert cfg.streaming.url == f"wss://{host}/v3/ws"
    assert cfg.auth.api_token_url == f"https://{host}/v3/token"
    assert not cfg.streaming.url_is_explicit


def test_explicit_regional_url_sets_the_token_host(tmp_path: Path) -> None:
    text = f'{API_KEY}[streaming]\nurl = "wss://streaming.eu.assemblyai.com/v3/ws"\n'
    cfg = load(tmp_path, text, API_KEY_ENV).config
    assert cfg.streaming.effective_region == "eu"
    assert cfg.auth.api_token_url == "https://streaming.eu.assemblyai.com/v3/token"


def test_url_of_another_region_names_both_keys(tmp_path: Path) -> None:
    text = BASE + '[streaming]\nregion = "us"\nurl = "wss://streaming.eu.assemblyai.com/v3/ws"\n'
    problem = only_problem(tmp_path, text)
    assert problem.startswith('streaming.url: is the "eu" endpoint')
    assert 'streaming.region is "us"' in problem
    assert "wss://streaming.us.assemblyai.com/v3/ws" in problem


def test_unknown_region_lists_the_choices(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE + '[streaming]\nregion = "asia"\n')
    assert problem == 'streaming.region: must be one of "global", "us", "eu" (got "asia")'


def test_region_with_a_test_server_url_is_a_warning(tmp_path: Path) -> None:
    text = BASE + '[streaming]\nregion = "eu"\nurl = "ws://127.0.0.1:9000/v3/ws"\n'
    loaded = load(tmp_path, text)
    assert loaded.config.streaming.url == "ws://127.0.0.1:9000/v3/ws"
    assert loaded.warnings == (
        "streaming.region: has no effect: streaming.url (127.0.0.1) is not an AssemblyAI "
        "host, so that server decides where the audio goes",
    )


def test_explicit_token_url_is_kept_and_a_region_mismatch_warned(tmp_path: Path) -> None:
    text = (
        f'{API_KEY}api_token_url = "https://streaming.us.assemblyai.com/v3/token"\n'
        '[streaming]\nregion = "eu"\n'
    )
    loaded = load(tmp_path, text, API_KEY_ENV)
    assert loaded.config.auth.api_token_url == "https://streaming.us.assemblyai.com/v3/token"
    assert loaded.warnings == (
        'auth.api_token_url: mints tokens in the "us" region but sessions stream to the "eu" '
        "region (streaming.region / streaming.url); remove auth.api_token_url to use "
        "https://streaming.eu.assemblyai.com/v3/token",
    )


# --- proxy mode ---------------------------------------------------------------------------


def test_proxy_mode_loads_with_the_team_credential(tmp_path: Path) -> None:
    loaded = load(tmp_path, PROXY)
    cfg = loaded.config
    assert cfg.auth.mode == "proxy"
    assert cfg.auth.token_service_url is None
    assert cfg.auth.uses_team_credential
    assert not cfg.auth.mints_tokens
    assert cfg.streaming.url == PROXY_URL
    assert loaded.secrets.token_service_credential == CREDENTIAL
    assert loaded.warnings == ()


def test_proxy_mode_needs_an_explicit_url(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, '[auth]\nmode = "proxy"\n')
    assert problem == (
        'streaming.url: required when auth.mode = "proxy": the WebSocket URL of the '
        'KeyPool-compatible proxy, e.g. "wss://<keypool>/v1/assemblyai/v3/ws"'
    )


@pytest.mark.parametrize(
    "url",
    ["wss://streaming.assemblyai.com/v3/ws", "wss://streaming.eu.assemblyai.com/v3/ws"],
)
def test_proxy_url_must_not_be_assemblyai(tmp_path: Path, url: str) -> None:
    problem = only_problem(tmp_path, f'[auth]\nmode = "proxy"\n[streaming]\nurl = "{url}"\n')
    assert problem.startswith('streaming.url: must be the proxy\'s URL when auth.mode = "proxy"')
    assert "wss://<keypool>/v1/assemblyai/v3/ws" in problem
    assert f"host {url.split('/')[2]}" in problem


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("https://keypool.example.com/v1/assemblyai/v3/ws", "must be a wss:// URL"),
        ("wss://keypool.example.com/v1/assemblyai", "must end with /v3/ws"),
    ],
)
def test_proxy_url_is_a_v3_websocket_url(tmp_path: Path, url: str, needle: str) -> None:
    problem = only_problem(tmp_path, f'[auth]\nmode = "proxy"\n[streaming]\nurl = "{url}"\n')
    assert problem.startswith("streaming.url: ")
    assert needle in problem


def test_proxy_mode_with_a_token_service_url_warns(tmp_path: Path) -> None:
    text = f'{BASE}mode = "proxy"\n[streaming]\nurl = "{PROXY_URL}"\n'
    loaded = load(tmp_path, text)
    assert loaded.warnings[0].startswith(
        'auth.token_service_url: is not used when auth.mode = "proxy"'
    )


def test_proxy_mode_without_credential_names_proxy_mode(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, PROXY, {})
    assert problem.startswith(
        "auth.credential_file: no token-service credential found, and it is required when "
        'auth.mode = "proxy"'
    )
    assert "EDGECAP_TOKEN_SERVICE_CREDENTIAL" in problem


def test_proxy_credential_comes_from_the_credentials_directory(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "token-service-credential").write_text("from-systemd\n")
    loaded = load(tmp_path, PROXY, {"CREDENTIALS_DIRECTORY": str(creds)})
    assert loaded.secrets.token_service_credential == "from-systemd"
    assert loaded.secrets.api_key is None


def test_proxy_secrets_are_resolved_even_when_the_file_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, PROXY + "connect_timeout_seconds = 0\n", {})
    assert [p.split(":")[0] for p in info.value.problems] == [
        "streaming.connect_timeout_seconds",
        "auth.credential_file",
    ]


def test_resolve_secrets_for_proxy_mode(tmp_path: Path) -> None:
    secrets, problems = resolve_secrets(
        auth_mode="proxy",
        credential_file=None,
        api_key_file=None,
        password_file=None,
        environ={**ENV, **API_KEY_ENV},
        base_dir=tmp_path,
    )
    assert problems == []
    assert secrets.token_service_credential == CREDENTIAL
    assert secrets.api_key is None  # the key of another mode is not read


@pytest.mark.parametrize("value", ["header", "subprotocol", "SubProtocol"])
def test_proxy_auth_choices(tmp_path: Path, value: str) -> None:
    text = f'[auth]\nmode = "proxy"\nproxy_auth = "{value}"\n[streaming]\nurl = "{PROXY_URL}"\n'
    cfg = load(tmp_path, text).config
    assert cfg.auth.proxy_auth == value.lower()


def test_proxy_auth_bad_value(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, BASE + 'proxy_auth = "cookie"\n')
    assert problem == 'auth.proxy_auth: must be one of "header", "subprotocol" (got "cookie")'


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        (
            BASE + 'proxy_auth = "subprotocol"\n',
            'auth.proxy_auth: is used only when auth.mode = "proxy" (auth.mode is '
            '"token_service"); it has no effect, remove it',
        ),
        (
            BASE + 'api_key_auth = "header"\n',
            'auth.api_key_auth: is used only when auth.mode = "api_key" (auth.mode is '
            '"token_service"); it has no effect, remove it',
        ),
    ],
)
def test_keys_of_another_auth_mode_warn(tmp_path: Path, text: str, warning: str) -> None:
    assert load(tmp_path, text).warnings == (warning,)


def test_check_config_prints_warnings_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "edgecap.toml"
    path.write_text(BASE + 'proxy_auth = "subprotocol"\n', encoding="utf-8")
    assert check_config_command(str(path), environ=ENV) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"config OK: {path} ")
    assert captured.err == (
        'warning: auth.proxy_auth: is used only when auth.mode = "proxy" (auth.mode is '
        '"token_service"); it has no effect, remove it\n'
    )


# --- API key mode -------------------------------------------------------------------------


def test_api_key_header_mode(tmp_path: Path) -> None:
    loaded = load(tmp_path, API_KEY + 'api_key_auth = "header"\n', API_KEY_ENV)
    auth = loaded.config.auth
    assert auth.api_key_auth == "header"
    assert not auth.mints_tokens
    assert not auth.uses_team_credential
    assert loaded.secrets.api_key == "k-123"
    assert loaded.warnings == ()


def test_api_key_header_mode_warns_about_unused_token_url_and_foreign_host(
    tmp_path: Path,
) -> None:
    text = (
        f'{API_KEY}api_key_auth = "header"\n'
        'api_token_url = "https://streaming.assemblyai.com/v3/token"\n'
        '[streaming]\nurl = "wss://stt.example.net/v3/ws"\n'
    )
    assert load(tmp_path, text, API_KEY_ENV).warnings == (
        'auth.api_token_url: is not used with auth.api_key_auth = "header" (no token is '
        "minted); remove it",
        'streaming.url: auth.api_key_auth = "header" sends the AssemblyAI API key itself to '
        "stt.example.net, which is not an AssemblyAI host; make sure that server may have it",
    )


def test_api_key_header_mode_to_a_loopback_test_server_is_quiet(tmp_path: Path) -> None:
    text = f'{API_KEY}api_key_auth = "header"\n[streaming]\nurl = "ws://localhost:9/v3/ws"\n'
    assert load(tmp_path, text, API_KEY_ENV).warnings == ()


def test_api_key_auth_bad_value(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, API_KEY + 'api_key_auth = "query"\n', API_KEY_ENV)
    assert problem == 'auth.api_key_auth: must be one of "token", "header" (got "query")'


# --- keyterms -----------------------------------------------------------------------------


def test_keyterms_are_stripped(tmp_path: Path) -> None:
    cfg = load(tmp_path, streaming('keyterms = [" edgecap ", "Raspberry Pi"]')).config
    assert cfg.streaming.keyterms == ("edgecap", "Raspberry Pi")


def test_more_than_100_keyterms(tmp_path: Path) -> None:
    terms = ", ".join(f'"t{i}"' for i in range(101))
    problem = only_problem(tmp_path, streaming(f"keyterms = [{terms}]"))
    assert problem.startswith("streaming.keyterms: 101 terms, at most 100")


def test_keyterm_too_long_names_index_and_length(tmp_path: Path) -> None:
    long = "x" * 51
    problem = only_problem(tmp_path, streaming(f'keyterms = ["a", "b", "c", "  {long} "]'))
    assert problem.startswith(f'streaming.keyterms[3]: "{long[:56]}')
    assert "(51 characters, at most 50)" in problem


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('["a", "  "]', "streaming.keyterms[1]: must not be empty or only spaces"),
        ('["a", 7]', "streaming.keyterms[1]: must be a string (in quotes) (got 7)"),
        (
            '"edgecap"',
            'streaming.keyterms: must be an array, e.g. ["edgecap", "Raspberry Pi"] '
            '(got "edgecap")',
        ),
    ],
)
def test_bad_keyterms(tmp_path: Path, value: str, expected: str) -> None:
    assert only_problem(tmp_path, streaming(f"keyterms = {value}")) == expected


def test_repeated_keyterm_is_a_warning(tmp_path: Path) -> None:
    loaded = load(tmp_path, streaming('keyterms = ["edgecap", "pi", "EdgeCap"]'))
    assert loaded.config.streaming.keyterms == ("edgecap", "pi", "EdgeCap")
    assert loaded.warnings == (
        'streaming.keyterms[2]: "EdgeCap" repeats keyterms[0] ("edgecap"; case is ignored); '
        "remove the repeat, it takes one of the 100 places",
    )


def test_keyterms_from_the_environment_are_json(tmp_path: Path) -> None:
    env = {**ENV, "EDGECAP_STREAMING__KEYTERMS": '["edgecap", "Raspberry Pi"]'}
    assert load(tmp_path, BASE, env).config.streaming.keyterms == ("edgecap", "Raspberry Pi")
    env["EDGECAP_STREAMING__KEYTERMS"] = ""
    assert load(tmp_path, streaming('keyterms = ["x"]'), env).config.streaming.keyterms == ()


def test_keyterms_environment_problems_name_the_variable(tmp_path: Path) -> None:
    env = {**ENV, "EDGECAP_STREAMING__KEYTERMS": "edgecap,pi-SECRET"}
    problem = only_problem(tmp_path, BASE, env)
    assert problem.startswith(
        "environment variable EDGECAP_STREAMING__KEYTERMS: must be a JSON array"
    )
    assert "pi-SECRET" not in problem
    env["EDGECAP_STREAMING__KEYTERMS"] = '["ok", ""]'
    problem = only_problem(tmp_path, BASE, env)
    assert problem == (
        "streaming.keyterms[1]: must not be empty or only spaces "
        "(from environment variable EDGECAP_STREAMING__KEYTERMS)"
    )


# --- keys that only some models use -------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "model", "key"),
    [
        ('prompt = "Recipes."', "universal-streaming-english", "prompt"),
        ('prompt = "Recipes."', "universal-streaming-multilingual", "prompt"),
        ("language_detection = true", "universal-streaming-english", "language_detection"),
        ('language_code = "de"', "u3-rt-pro", "language_code"),
        ('language_codes = ["de"]', "universal-streaming-multilingual", "language_codes"),
        ('mode = "balanced"', "u3-rt-pro", "mode"),
        ('mode = "balanced"', "universal-streaming-english", "mode"),
        ('voice_focus = "far-field"', "universal-streaming-english", "voice_focus"),
    ],
)
def test_key_the_model_ignores_names_both_keys(
    tmp_path: Path, keys: str, model: str, key: str
) -> None:
    problem = only_problem(tmp_path, streaming(keys, model))
    assert problem.startswith(f"streaming.{key}: ")
    assert f'streaming.speech_model is "{model}", which would ignore it' in problem
    assert f"remove streaming.{key}" in problem


@pytest.mark.parametrize(
    ("keys", "model"),
    [
        ('prompt = "Recipes and kitchen timers."', "u3-rt-pro"),
        ("language_detection = true", "universal-streaming-multilingual"),
        ('language_codes = ["de", "en"]', "universal-3-5-pro"),
        ('mode = "max_accuracy"', "universal-3-6-pro"),
        ('voice_focus = "near-field"', "u3-rt-pro"),
        ("speaker_labels = true\nmax_speakers = 10", "universal-streaming-english"),
        ("vad_threshold = 0.0", "universal-streaming-english"),
    ],
)
def test_keys_the_model_uses_are_accepted(tmp_path: Path, keys: str, model: str) -> None:
    loaded = load(tmp_path, streaming(keys, model))
    assert loaded.config.streaming.speech_model == model
    assert loaded.warnings == ()


def test_prompt_limits(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, streaming(f'prompt = "{"p" * 1751}"'))
    assert problem.startswith("streaming.prompt: must be at most 1750 characters long (got")
    problem = only_problem(tmp_path, streaming('prompt = "  "'))
    assert problem.startswith("streaming.prompt: must not be empty")
    assert load(tmp_path, streaming(f'prompt = "{"p" * 1750}"')).config.streaming.prompt


def test_language_codes(tmp_path: Path) -> None:
    cfg = load(tmp_path, streaming('language_codes = ["EN", "pt-BR", "yue"]')).config
    assert cfg.streaming.language_codes == ("en", "pt-BR", "yue")
    assert cfg.streaming.effective_language_codes == ("en", "pt-BR", "yue")
    cfg = load(tmp_path, streaming('language_code = "de"')).config
    assert cfg.streaming.effective_language_codes == ("de",)
    env = {**ENV, "EDGECAP_STREAMING__LANGUAGE_CODES": '["fr", "de"]'}
    cfg = load(tmp_path, streaming(""), env).config
    assert cfg.streaming.effective_language_codes == ("fr", "de")
    env["EDGECAP_STREAMING__LANGUAGE_CODES"] = ""  # unsets it
    cfg = load(tmp_path, streaming('language_codes = ["en"]'), env).config
    assert cfg.streaming.effective_language_codes is None


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (
            'language_code = "de"\nlanguage_codes = ["en"]',
            "streaming.language_codes: set either streaming.language_code or "
            "streaming.language_codes, not both",
        ),
        (
            'language_codes = ["en", "english"]',
            'streaming.language_codes[1]: is not a language code (got "english")',
        ),
        ('language_code = "e"', 'streaming.language_code: is not a language code (got "e")'),
        ("language_codes = []", "streaming.language_codes: must not be empty"),
        (
            'language_codes = "de"',
            'streaming.language_codes: must be an array, e.g. ["de", "en"] (got "de")',
        ),
        (
            "language_codes = [" + ", ".join(['"en"'] * 11) + "]",
            "streaming.language_codes: 11 codes, at most 10",
        ),
    ],
)
def test_bad_language_codes(tmp_path: Path, keys: str, expected: str) -> None:
    assert only_problem(tmp_path, streaming(keys)).startswith(expected)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ("vad_threshold = 1.5", "streaming.vad_threshold: must be between 0 and 1 (got 1.5)"),
        (
            'mode = "fast"',
            'streaming.mode: must be one of "min_latency", "balanced", "max_accuracy" (got "fast")',
        ),
        (
            'voice_focus = "far_field"',
            'streaming.voice_focus: must be one of "near-field", "far-field" (did you mean '
            '"far-field"?) (got "far_field")',
        ),
        (
            "max_speakers = 2",
            "streaming.max_speakers: is used only with streaming.speaker_labels = true (got "
            "max_speakers = 2 with speaker_labels = false); set speaker_labels = true or "
            "remove max_speakers",
        ),
        (
            "speaker_labels = true\nmax_speakers = 11",
            "streaming.max_speakers: must be between 1 and 10 (got 11)",
        ),
    ],
)
def test_bad_values_name_key_and_value(tmp_path: Path, keys: str, expected: str) -> None:
    assert only_problem(tmp_path, streaming(keys)) == expected


# --- turn detection against the model -----------------------------------------------------


def test_confidence_threshold_on_a_pro_model_names_both_keys(tmp_path: Path) -> None:
    text = streaming("", "u3-rt-pro") + "[endpointing]\nend_of_turn_confidence_threshold = 0.7\n"
    problem = only_problem(tmp_path, text)
    assert problem.startswith(
        "endpointing.end_of_turn_confidence_threshold: has no effect with "
        'streaming.speech_model = "u3-rt-pro" (got 0.7)'
    )


def test_format_turns_true_on_a_pro_model_warns(tmp_path: Path) -> None:
    loaded = load(tmp_path, streaming("format_turns = true"))
    assert loaded.warnings == (
        "streaming.format_turns: has no effect with streaming.speech_model = "
        '"universal-3-6-pro" (the Pro models always format their finals); remove it',
    )
    assert load(tmp_path, streaming("format_turns = false")).warnings == ()


@pytest.mark.parametrize(
    ("model", "keys", "expected"),
    [
        (
            "universal-streaming-english",
            "min_turn_silence = 2000",
            "endpointing.min_turn_silence: must be <= 1280 ms, the max_turn_silence "
            "universal-streaming-english uses by default (got 2000); set "
            "endpointing.max_turn_silence too",
        ),
        (
            "u3-rt-pro",
            "max_turn_silence = 60",
            "endpointing.max_turn_silence: must be >= 100 ms, the min_turn_silence u3-rt-pro "
            "uses by default (got 60); set endpointing.min_turn_silence too",
        ),
        (
            "universal-3-6-pro",
            "min_turn_silence = 900\nmax_turn_silence = 500",
            "endpointing.max_turn_silence: must be >= endpointing.min_turn_silence (900 ms); "
            "got 500",
        ),
    ],
)
def test_min_above_max_with_model_defaults(
    tmp_path: Path, model: str, keys: str, expected: str
) -> None:
    assert only_problem(tmp_path, streaming("", model) + f"[endpointing]\n{keys}\n") == expected


def test_one_silence_on_a_preset_model_is_accepted(tmp_path: Path) -> None:
    cfg = load(tmp_path, streaming("") + "[endpointing]\nmin_turn_silence = 3000\n").config
    assert cfg.endpointing.effective_turn_silence("universal-3-6-pro") == (3000, None)
