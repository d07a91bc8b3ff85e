"""What the checks share: the configuration, the options, and results passed along
(the token for the streaming check, whether the microphone works)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from edgecap.auth.tokens import CredentialSource, Token
from edgecap.doctor.loading import DoctorConfig

DEFAULT_RECORD_SECONDS = 2.0
DEFAULT_MQTT_TIMEOUT = 5.0
UNIT_NAME = "edgecap.service"


def _ignore(line: str) -> None:
    """The default for ``on_line``: progress lines go nowhere."""


@dataclass(frozen=True)
class DoctorOptions:
    """How the doctor runs.

    ``timeout`` replaces every network timeout (token request, WebSocket connect, Begin,
    Termination, MQTT) when set; otherwise the configured ones apply (MQTT: 5 s).
    ``on_line`` receives progress output such as the turns heard with ``--listen``.
    """

    timeout: float | None = None
    record_seconds: float = DEFAULT_RECORD_SECONDS
    listen_seconds: float | None = None
    on_line: Callable[[str], None] = _ignore
    unit: str = UNIT_NAME
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def network_timeout(self, configured: float) -> float:
        return self.timeout if self.timeout is not None else configured

    @property
    def mqtt_timeout(self) -> float:
        return self.timeout if self.timeout is not None else DEFAULT_MQTT_TIMEOUT


@dataclass
class DoctorContext:
    """Passed to every check, in order; earlier checks leave what later ones need."""

    cfg: DoctorConfig
    options: DoctorOptions
    tokens: CredentialSource | None = None
    token: Token | None = None
    token_problem: str = ""
    audio_ok: bool = False
    streaming_problem: str = ""
