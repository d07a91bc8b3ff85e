"""edgecap configuration: one TOML file, environment overrides, secrets from files.

Use ``load_config()``; it returns a ``LoadedConfig`` or raises ``ConfigError``
listing every problem, one line each.
"""

from edgecap.config.check import EX_CONFIG, check_config_command
from edgecap.config.load import LoadedConfig, default_config_path, load_config
from edgecap.config.model import (
    AudioConfig,
    AuthConfig,
    Config,
    EndpointingConfig,
    LoggingConfig,
    MqttConfig,
    StreamingConfig,
)
from edgecap.config.problems import ConfigError
from edgecap.config.secrets import Secrets
from edgecap.config.session import SessionConfig

__all__ = [
    "EX_CONFIG",
    "AudioConfig",
    "AuthConfig",
    "Config",
    "ConfigError",
    "EndpointingConfig",
    "LoadedConfig",
    "LoggingConfig",
    "MqttConfig",
    "Secrets",
    "SessionConfig",
    "StreamingConfig",
    "check_config_command",
    "default_config_path",
    "load_config",
]
