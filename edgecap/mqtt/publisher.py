"""paho-mqtt adapter: connection, last will, retained availability, QoS 1 transcripts.

paho runs its network loop in its own thread (`loop_start`), so a slow or dead broker never
blocks capture or streaming: `publish()` only queues. The broker connection is made
asynchronously and retried by paho with its reconnect backoff. `offline` is the retained
last will and is published explicitly on a clean stop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from edgecap.mqtt.topics import OFFLINE, ONLINE, Topics

log = logging.getLogger(__name__)


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


def explain_connack(reason: ReasonCode, settings: MqttSettings) -> str:
    """One line for a refused MQTT connection."""
    name = str(reason)
    where = f"broker {settings.host}:{settings.port}"
    low = name.lower()
    if "not authorized" in low or "bad user name or password" in low:
        return (
            f"{where} refused the connection ({name}): check mqtt.username and the password "
            "(mqtt.password_file, $CREDENTIALS_DIRECTORY/mqtt-password or EDGECAP_MQTT_PASSWORD)"
        )
    if "identifier" in low:
        return f"{where} rejected client id {settings.client_id!r} ({name}); set mqtt.client_id"
    return f"{where} refused the connection: {name}"


class MqttPublisher:
    def __init__(
        self, settings: MqttSettings, on_state: Callable[[bool, str], None] | None = None
    ) -> None:
        self.settings = settings
        self._on_state = on_state
        self.connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            clean_session=False,  # the broker keeps QoS 1 state across our reconnects
            protocol=mqtt.MQTTv311,
        )
        if settings.username:
            self.client.username_pw_set(settings.username, settings.password)
        self.client.will_set(settings.topics.availability, OFFLINE, qos=1, retain=True)
        self.client.reconnect_delay_set(
            settings.reconnect_min_seconds, settings.reconnect_max_seconds
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.published = 0
        self._stopping = False

    def start(self) -> None:
        """Start the network thread and connect in the background."""
        self.client.connect_async(
            self.settings.host, self.settings.port, keepalive=self.settings.keepalive
        )
        self.client.loop_start()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: object,
    ) -> None:
        if reason.is_failure:
            line = explain_connack(reason, self.settings)
            log.error("%s", line)
            if self._on_state:
                self._on_state(False, line)
            return
        self.connected.set()
        client.publish(self.settings.topics.availability, ONLINE, qos=1, retain=True)
        log.info("MQTT connected to %s:%s", self.settings.host, self.settings.port)
        if self._on_state:
            self._on_state(True, "connected")

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: object,
    ) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was and not self._stopping:
            log.warning(
                "MQTT connection to %s:%s lost (%s); reconnecting in the background, "
                "transcripts are queued",
                self.settings.host,
                self.settings.port,
                reason,
            )
            if self._on_state:
                self._on_state(False, str(reason))

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Queue a message; paho sends it now or after reconnecting."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.error("MQTT publish to %s failed: %s", topic, mqtt.error_string(info.rc))
        self.published += 1

    def stop(self, timeout: float = 3.0) -> None:
        """Publish `offline`, wait briefly for it and queued messages, disconnect."""
        self._stopping = True
        if self.connected.is_set():
            info = self.client.publish(
                self.settings.topics.availability, OFFLINE, qos=1, retain=True
            )
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                log.warning("could not publish 'offline' before stopping")
        self.client.disconnect()
        self.client.loop_stop()
