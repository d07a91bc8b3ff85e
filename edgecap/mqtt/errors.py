"""One line, with what to do, for every way a broker connection fails (no I/O)."""

from __future__ import annotations

import socket
import ssl

from paho.mqtt.reasoncodes import ReasonCode


def _where(host: str, port: int) -> str:
    return f"broker {host}:{port}"


def explain_connack(reason: ReasonCode | str, host: str, port: int, client_id: str) -> str:
    """A refused CONNACK."""
    name = str(reason)
    where = _where(host, port)
    low = name.lower()
    if "not authorized" in low or "bad user name or password" in low:
        return (
            f"{where} refused the connection ({name}): check mqtt.username and the password "
            "(mqtt.password_file, $CREDENTIALS_DIRECTORY/mqtt-password or EDGECAP_MQTT_PASSWORD)"
        )
    if "identifier" in low:
        return f"{where} rejected client id {client_id!r} ({name}); set mqtt.client_id"
    if "protocol" in low:
        return f'{where} refused the connection ({name}); try mqtt.protocol = "3.1.1"'
    return f"{where} refused the connection: {name}"


def explain_connect_error(exc: BaseException | None, host: str, port: int, tls: bool) -> str:
    """A connection attempt that failed before CONNACK (TCP, DNS or TLS)."""
    where = _where(host, port)
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = getattr(exc, "verify_message", None) or str(exc)
        if "hostname" in detail.lower():
            return (
                f"TLS: the certificate of {where} does not name {host!r} ({detail}); connect "
                "with the name in the certificate (mqtt.host), or set mqtt.tls_insecure = true "
                "to skip only the host name check"
            )
        return (
            f"TLS: the certificate of {where} is not trusted ({detail}); set mqtt.ca_file to "
            "the CA that signed it (unset, the system CA store is used)"
        )
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None) or str(exc)
        return (
            f"TLS handshake with {where} failed ({reason}); check that mqtt.port is the "
            "broker's TLS listener, and mqtt.cert_file/mqtt.key_file if it requires a "
            "client certificate"
        )
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve MQTT host {host!r} ({exc.strerror or exc}); check mqtt.host"
    if isinstance(exc, ConnectionRefusedError):
        hint = " (is it a TLS-only listener? set mqtt.tls = true)" if not tls else ""
        return f"{where} refused the TCP connection: is the broker running on that port?{hint}"
    if isinstance(exc, TimeoutError):
        return f"no answer from {where} (timed out); check mqtt.host, mqtt.port and the network"
    if isinstance(exc, OSError):
        return f"cannot connect to {where}: {exc.strerror or exc}"
    return f"cannot connect to {where}"
