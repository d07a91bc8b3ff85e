"""Settings of the MQTT client and the service (built by `app/wiring.py`), and TLS."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edgecap.mqtt.discovery_control import ControlChoices
from edgecap.mqtt.spool import SpoolBounds
from edgecap.mqtt.topics import Topics

Protocol = Literal["3.1.1", "5"]


@dataclass(frozen=True, slots=True)
class TlsSettings:
    ca_file: Path | None = None  # None: the system CA store
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False  # skip only the host name check; the chain is still verified


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str
    port: int
    client_id: str
    topics: Topics
    username: str | None = None
    password: str | None = None
    keepalive: int = 60
    reconnect_min_seconds: int = 1
    reconnect_max_seconds: int = 30
    protocol: Protocol = "3.1.1"
    tls: TlsSettings | None = None


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Everything `MqttService` publishes and where: the connection, the topics, the spool
    in the state directory, and which optional outputs are on."""

    device_id: str
    connection: MqttSettings
    state_dir: Path
    spool: SpoolBounds
    stats_interval_seconds: float = 60.0
    partials: bool = False
    hermes: bool = False
    discovery: bool = False
    currency: str = "USD"
    """Of the cost estimate in the stats (Home Assistant's cost sensors)."""
    controls: ControlChoices | None = None
    """The control entities discovery announces (None: none)."""

    @property
    def topics(self) -> Topics:
        return self.connection.topics


class TlsSetupError(ValueError):
    """A TLS file that cannot be used; the message names the config key."""


def tls_context(tls: TlsSettings) -> ssl.SSLContext:
    """A client context that verifies the broker (chain always, host name unless insecure)."""
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=None if tls.ca_file is None else str(tls.ca_file)
        )
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError(
            f"mqtt.ca_file: cannot load CA certificates from {tls.ca_file}: {exc}"
        ) from exc
    if tls.cert_file is not None:
        try:
            context.load_cert_chain(
                str(tls.cert_file), None if tls.key_file is None else str(tls.key_file)
            )
        except (OSError, ssl.SSLError) as exc:
            raise TlsSetupError(
                f"mqtt.cert_file/mqtt.key_file: cannot load the client certificate "
                f"{tls.cert_file} with key {tls.key_file or '(in the certificate file)'}: {exc}"
            ) from exc
    if tls.insecure:
        context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    return context
