"""`[sync]` and `streaming.provider = "assemblyai-sync"`: where the POST goes per auth mode,
the rules across sections (each problem naming its key), and the constants kept in step
with the provider module (the configuration may not import it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecap.app.wiring_sync import sync_protocol, sync_settings
from edgecap.config import ConfigError, LoadedConfig, load_config
from edgecap.config import sync as config_sync
from edgecap.providers.assemblyai import sync as provider

pytestmark = pytest.mark.unit

SERVICE = "https://keypool.example.com/v1/assemblyai"
SYNC = '[streaming]\nprovider = "assemblyai-sync"\n'
TEAM = {"EDGECAP_TOKEN_SERVICE_CREDENTIAL": "team-cred"}
KEY = {"EDGECAP_ASSEMBLYAI_API_KEY": "k-123"}


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> LoadedConfig:
    path = tmp_path / "edgecap.toml"
    path.write_text(text)
    return load_config(path, env if env is not None else TEAM)


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env)
    return list(caught.value.problems)


def test_constants_are_the_providers() -> None:
    assert config_sync.SYNC_LIVE_URL == provider.SYNC_LIVE_URL
    assert config_sync.SYNC_DEFAULT_MODEL == provider.SYNC_DEFAULT_MODEL
    assert config_sync.SYNC_TOKEN_SERVICE_PATH == provider.SYNC_TOKEN_SERVICE_PATH


def test_through_the_token_service_the_post_goes_to_its_sync_path(tmp_path: Path) -> None:
    cfg = load(tmp_path, f'[auth]\ntoken_service_url = "{SERVICE}/"\n{SYNC}').config
    p = sync_protocol(cfg.audio, cfg.auth, cfg.sync)
    assert p.url == f"{SERVICE}/sync"
    assert p.way_in == "bearer"
    assert p.model == "universal-3-5-pro"
    assert p.params.config() == {"sample_rate": 16000, "channels": 1, "timestamps": True}
    s = sync_settings(cfg)
    assert (s.segments.max_ms, s.segments.split_after_ms) == (120_000, 90_000)
    assert s.segments.tail_ms == 300
    assert s.segments.quiet_limit > 0


def test_with_an_api_key_it_goes_to_the_sync_api(tmp_path: Path) -> None:
    cfg = load(tmp_path, f'[auth]\nmode = "api_key"\n{SYNC}', KEY)
    p = sync_protocol(cfg.config.audio, cfg.config.auth, cfg.config.sync)
    assert p.url == "https://sync.assemblyai.com/v1/transcribe/live"
    assert p.way_in == "api_key"
    assert cfg.secrets.api_key == "k-123"


def test_sync_keys_with_another_provider_are_problems_naming_them(tmp_path: Path) -> None:
    found = problems(tmp_path, f'[auth]\ntoken_service_url = "{SERVICE}"\n[sync]\nmodel = "x"\n')
    assert found == [
        'sync.model: set, but streaming.provider is "assemblyai", which does not use [sync]; '
        'set streaming.provider = "assemblyai-sync" or remove sync.model'
    ]


def test_cross_section_rules_of_the_sync_provider(tmp_path: Path) -> None:
    text = (
        '[auth]\nmode = "proxy"\n[audio]\nsample_rate = 24000\n'
        f'{SYNC}[session]\ngate = "always"\n[openai]\nmodel = "whisper-1"\n'
    )
    found = problems(tmp_path, text)
    assert any(p.startswith("openai.model: set, but") for p in found)
    assert any(p.startswith('sync.url: required with auth.mode = "proxy"') for p in found)
    assert any(p.startswith('session.gate: must be "voice"') for p in found)


def test_split_after_above_the_maximum_is_a_problem(tmp_path: Path) -> None:
    text = f'[auth]\ntoken_service_url = "{SERVICE}"\n{SYNC}[sync]\nmax_utterance_seconds = 30\n'
    [found] = problems(tmp_path, text)
    assert found.startswith("sync.split_after_seconds: must not be above")


def test_streaming_model_keys_are_a_warning(tmp_path: Path) -> None:
    text = f'[auth]\ntoken_service_url = "{SERVICE}"\n{SYNC}speech_model = "u3-rt-pro"\n'
    loaded = load(tmp_path, text)
    assert any("streaming.speech_model" in w and "no effect" in w for w in loaded.warnings)
