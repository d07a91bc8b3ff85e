"""edgecap configuration: one TOML file, environment overrides, secrets from files.

Use ``load_config()``; it returns a ``LoadedConfig`` or raises ``ConfigError``
listing every problem, one line each.
"""

from edgecap.config.auth import ApiKeyAuth, AuthConfig, AuthMode, ProxyAuth
from edgecap.config.check import EX_CONFIG, check_config_command
from edgecap.config.load import LoadedConfig, default_config_path, load_config
from edgecap.config.model import (
    AudioConfig,
    Config,
    LoggingConfig,
    MqttConfig,
)
from edgecap.config.models_table import (
    MODEL_CAPS,
    ModelCaps,
    SpeechModel,
    StreamingMode,
    default_turn_silence,
    default_vad_threshold,
    model_caps,
)
from edgecap.config.openai import (
    OPENAI_MODELS,
    REALTIME_ONLY_MODELS,
    NoiseReduction,
    OpenAIConfig,
    OpenAIModel,
    TurnDetection,
)
from edgecap.config.problems import ConfigError
from edgecap.config.secrets import Secrets
from edgecap.config.session import SessionConfig
from edgecap.config.streaming import EndpointingConfig, Provider, StreamingConfig, VoiceFocus
from edgecap.config.sync import SyncConfig
from edgecap.config.urls import Region, region_streaming_url, region_token_url

__all__ = [
    "EX_CONFIG",
    "MODEL_CAPS",
    "OPENAI_MODELS",
    "REALTIME_ONLY_MODELS",
    "ApiKeyAuth",
    "AudioConfig",
    "AuthConfig",
    "AuthMode",
    "Config",
    "ConfigError",
    "EndpointingConfig",
    "LoadedConfig",
    "LoggingConfig",
    "ModelCaps",
    "MqttConfig",
    "NoiseReduction",
    "OpenAIConfig",
    "OpenAIModel",
    "Provider",
    "ProxyAuth",
    "Region",
    "Secrets",
    "SessionConfig",
    "SpeechModel",
    "StreamingConfig",
    "StreamingMode",
    "SyncConfig",
    "TurnDetection",
    "VoiceFocus",
    "check_config_command",
    "default_config_path",
    "default_turn_silence",
    "default_vad_threshold",
    "load_config",
    "model_caps",
    "region_streaming_url",
    "region_token_url",
]
