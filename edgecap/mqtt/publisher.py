"""paho-mqtt adapter: connection (TLS, MQTT 3.1.1 or 5), last will, retained messages.

paho runs its network loop in its own thread (`loop_start`), so a slow or dead broker never
blocks capture or streaming: `publish()` only queues. The connection is made in the
background and retried with paho's backoff (`reconnect_*_seconds`). On every connect the
client publishes `online` (retained; `offline` is the last will), publishes again every
retained message it sent (the broker may have lost them), and renews its subscriptions.

Events for the rest of the daemon (`on_connected`, `on_disconnected`, `on_acked`,
`on_message`) are handed to `dispatch`, which the service sets to the event loop's
`call_soon_threadsafe`, so they run on the loop, never on paho's thread.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgecap.mqtt.errors import explain_connack as _explain_connack
from edgecap.mqtt.errors import explain_connect_error
from edgecap.mqtt.settings import MqttSettings, TlsSettings, tls_context
from edgecap.mqtt.topics import OFFLINE, ONLINE

log = logging.getLogger(__name__)

MAX_INFLIGHT = 20

Dispatch = Callable[..., object]


def explain_connack(reason: ReasonCode, settings: MqttSettings) -> str:
    """One line for a refused MQTT connection."""
    return _explain_connack(reason, settings.host, settings.port, settings.client_id)


def _direct(fn: Callable[..., object], *args: Any) -> None:
    fn(*args)


def _disconnect_reason(reason: ReasonCode) -> str:
    text = str(reason)
    # paho reports a socket closed by the broker or the network as "Unspecified error".
    return "the broker or the network closed it" if text == "Unspecified error" else text


@dataclass(slots=True)
class _Retained:
    payload: bytes
    qos: int
    mid: int | None = None  # of the latest publish of this payload


class MqttPublisher:
    def __init__(
        self, settings: MqttSettings, on_state: Callable[[bool, str], None] | None = None
    ) -> None:
        self.settings = settings
        self.on_state = on_state  # (connected, one line), called on paho's thread
        self.connected = threading.Event()
        self.dispatch: Dispatch = _direct
        self.on_connected: Callable[[], None] | None = None
        self.on_disconnected: Callable[[], None] | None = None
        self.on_acked: Callable[[int, bool, str], None] | None = None
        self.on_message: Callable[[str, bytes], None] | None = None
        self.connects = 0
        self.failures = 0
        """Connection attempts that failed with an answer (refused, TLS, CONNACK, ...)."""
        self.published = 0
        self._retained: dict[str, _Retained] = {}
        self._subscriptions: dict[str, int] = {}
        self._lock = threading.Lock()  # retained/subscriptions; never held by paho callbacks
        # QoS 1 retained copies in flight: mid -> (topic, the payload entry it carries)
        self._retained_mids: dict[int, tuple[str, _Retained]] = {}
        self._mids_lock = threading.Lock()
        self._stopping = False
        self._last_failure: str | None = None
        self.client = self._make_client(settings)

    def _make_client(self, s: MqttSettings) -> mqtt.Client:
        if s.protocol == "5":
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=s.client_id, protocol=mqtt.MQTTv5
            )
        else:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=s.client_id,
                clean_session=False,  # the broker keeps our subscriptions across reconnects
                protocol=mqtt.MQTTv311,
            )
        if s.username:
            client.username_pw_set(s.username, s.password)
        if s.tls is not None:
            client.tls_set_context(tls_context(s.tls))
        client.will_set(s.topics.availability, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(s.reconnect_min_seconds, s.reconnect_max_seconds)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    @property
    def tls(self) -> TlsSettings | None:
        return self.settings.tls

    def start(self) -> None:
        """Start the network thread and connect in the background."""
        self.client.connect_async(
            self.settings.host, self.settings.port, keepalive=self.settings.keepalive
        )
        self.client.loop_start()

    # -- paho callbacks (paho's network thread) ----------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._failed(explain_connack(reason, self.settings))
            return
        self._last_failure = None
        self.connects += 1
        client.publish(self.settings.topics.availability, ONLINE, qos=1, retain=True)
        with self._lock:
            self.connected.set()
            for topic in self._retained:
                self._send_retained(topic)
            subscriptions = list(self._subscriptions.items())
        if subscriptions:
            client.subscribe(subscriptions)
        log.info(
            "MQTT connected to %s:%s%s",
            self.settings.host,
            self.settings.port,
            " (TLS)" if self.settings.tls else "",
        )
        if self.on_state:
            self.on_state(True, "connected")
        if self.on_connected:
            self.dispatch(self.on_connected)

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        # paho calls this from inside its `except OSError:` block: the error is current.
        settings = self.settings
        line = explain_connect_error(
            sys.exception(), settings.host, settings.port, settings.tls is not None
        )
        self._failed(line)

    def _failed(self, line: str) -> None:
        self.failures += 1
        if line != self._last_failure:
            log.error("MQTT: %s; retrying in the background", line)
            self._last_failure = line
        else:
            log.debug("MQTT: %s", line)
        if self.on_state:
            self.on_state(False, line)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was and not self._stopping:
            log.warning(
                "MQTT connection to %s:%s lost (%s); reconnecting in the background, "
                "transcripts stay in the spool",
                self.settings.host,
                self.settings.port,
                _disconnect_reason(reason),
            )
            if self.on_state:
                self.on_state(False, _disconnect_reason(reason))
        if was and self.on_disconnected:
            self.dispatch(self.on_disconnected)

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._mids_lock:
            acked = self._retained_mids.pop(mid, None)
            in_flight = {id(entry) for _, entry in self._retained_mids.values()}
        if acked is not None:
            topic, entry = acked
            latest = self._retained.get(topic)
            if latest is not None and latest is not entry and id(latest) not in in_flight:
                # An older payload (re-sent by paho after a reconnect) landed after the
                # current one: publish the current one again so it is what is retained.
                # (Only once per ack of an older payload: a copy of the current one still
                # in flight will land after it anyway.)
                self.dispatch(self._republish, topic)
        if self.on_acked:
            self.dispatch(self.on_acked, mid, not reason.is_failure, str(reason))

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if self.on_message:
            self.dispatch(self.on_message, msg.topic, bytes(msg.payload))

    # -- for the daemon (any thread) ---------------------------------------------------

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> int | None:
        """Queue a message; paho sends it now or after reconnecting.

        A retained message is remembered and published again after every reconnect; while
        disconnected it is only remembered (so a stale copy can never be sent after a
        fresher one). Returns the message id, or None when paho did not take it.
        """
        if retain:
            with self._lock:
                self._retained[topic] = _Retained(payload, qos)
                return self._send_retained(topic) if self.connected.is_set() else None
        if qos == 0 and not self.connected.is_set():
            return None  # QoS 0 is live-only: paho would drop it anyway
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.error("MQTT publish to %s failed: %s", topic, mqtt.error_string(info.rc))
            return None
        self.published += 1
        return info.mid

    def _send_retained(self, topic: str) -> int | None:
        """Publish the current retained message of `topic` (caller holds `_lock`)."""
        entry = self._retained[topic]
        info = self.client.publish(topic, entry.payload, qos=entry.qos, retain=True)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.error("MQTT publish to %s failed: %s", topic, mqtt.error_string(info.rc))
            return None
        self.published += 1
        entry.mid = info.mid
        if entry.qos > 0:
            with self._mids_lock:
                self._retained_mids[info.mid] = (topic, entry)
        return info.mid

    def _republish(self, topic: str) -> None:
        with self._lock:
            if topic in self._retained and self.connected.is_set():
                self._send_retained(topic)

    def retained(self, topic: str) -> bytes | None:
        """The last retained payload published (or remembered) for `topic`."""
        with self._lock:
            entry = self._retained.get(topic)
            return None if entry is None else entry.payload

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe now (if connected) and after every reconnect."""
        with self._lock:
            self._subscriptions[topic] = qos
        if self.connected.is_set():
            self.client.subscribe(topic, qos)

    def stop(self, timeout: float = 3.0) -> None:
        """Publish `offline`, wait briefly for it, disconnect (blocking: run it in a thread)."""
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


__all__ = ["MqttPublisher", "MqttSettings", "TlsSettings", "explain_connack"]
