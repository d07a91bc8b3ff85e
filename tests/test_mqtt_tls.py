"""TLS to a real mosquitto on loopback with a CA made by the test (openssl CLI): the right CA
connects, a wrong CA or a host name the certificate does not name is refused with a line
that says what to fix, and a broker that requires a client certificate accepts ours."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgecap.app.wiring import mqtt_service_settings
from edgecap.config import load_config
from edgecap.mqtt.service import MqttService
from edgecap.turns.transcript import TranscriptTurn
from tests.daemon_proc import write_config
from tests.harness import MosquittoBroker, MqttCollector, TlsListener, free_port, read_retained

pytestmark = pytest.mark.integration

DEVICE = "tls-dev"
LOCAL = "127.0.0.1"
AVAILABILITY = f"edgecap/{DEVICE}/availability"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    openssl(
        *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
        *("-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2"),
        *("-subj", f"/CN=edgecap test {name}"),
        *("-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
        cwd=directory,
    )
    return cert, key


def issue(directory: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    key, csr, cert = (directory / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
    ext_file = directory / f"{name}.ext"
    ext_file.write_text(extensions + "\n")
    openssl(
        *("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
        *("-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}"),
        cwd=directory,
    )
    openssl(
        *("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1])),
        *("-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext_file)),
        cwd=directory,
    )
    return cert, key


@dataclass
class Pki:
    ca: Path
    other_ca: Path
    server: tuple[Path, Path]
    client: tuple[Path, Path]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca(d, "ca")
    other = make_ca(d, "other-ca")
    server = issue(
        d,
        "server",
        ca,
        "subjectAltName=IP:127.0.0.1\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth",
    )
    client = issue(
        d, "client", ca, "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth"
    )
    return Pki(ca=ca[0], other_ca=other[0], server=server, client=client)


def tls_broker(tmp_path: Path, pki: Pki, *, require_certificate: bool = False) -> MosquittoBroker:
    listener = TlsListener(
        port=free_port(),
        cafile=pki.ca,
        certfile=pki.server[0],
        keyfile=pki.server[1],
        require_certificate=require_certificate,
    )
    return MosquittoBroker(tmp_path, tls=listener)


Failures = asyncio.Queue[str]


@pytest.fixture
async def start_service(tmp_path: Path) -> AsyncIterator[Callable[..., MqttService]]:
    started: list[MqttService] = []
    loop = asyncio.get_running_loop()

    def start(port: int, failures: Failures | None = None, **mqtt: Any) -> MqttService:
        path = write_config(
            tmp_path / "edgecap.toml",
            {"device_id": DEVICE, "state_dir": str(tmp_path / "state")},
            {
                "auth": {"token_service_url": "http://127.0.0.1:9/v1"},
                "mqtt": {
                    "port": port,
                    "tls": True,
                    "reconnect_min_seconds": 1,
                    "reconnect_max_seconds": 1,
                    **mqtt,
                },
            },
        )
        loaded = load_config(path, {"EDGECAP_TOKEN_SERVICE_CREDENTIAL": "c-12345"})
        service = MqttService(mqtt_service_settings(loaded))
        if failures is not None:
            queue = failures

            def on_state(ok: bool, line: str) -> None:  # paho's thread
                if not ok:
                    loop.call_soon_threadsafe(queue.put_nowait, line)

            service.publisher.on_state = on_state
        service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        await service.stop()


def a_turn() -> TranscriptTurn:
    return TranscriptTurn(
        id="s:0",
        device_id=DEVICE,
        session_id="s",
        turn_order=0,
        text="over tls",
        confidence=0.9,
        end_of_turn_confidence=0.6,
        words=(),
        language_code=None,
        started_at=None,
        ended_at=None,
        speech_model="universal-streaming-english",
        formatted=True,
    )


async def test_connects_with_the_right_ca(
    tmp_path: Path, pki: Pki, start_service: Callable[..., MqttService]
) -> None:
    broker = tls_broker(tmp_path, pki)
    try:
        assert broker.config.tls is not None
        topics = [AVAILABILITY, f"edgecap/{DEVICE}/transcript"]
        with MqttCollector(LOCAL, broker.port, topics) as sub:
            service = start_service(broker.config.tls.port, host=LOCAL, ca_file=str(pki.ca))
            await sub.await_for(lambda m: m.text == "online", 10)
            service.publish_turn(a_turn())
            got = await sub.await_for(lambda m: m.topic.endswith("/transcript"), 10)
        assert got[0].json()["text"] == "over tls"
    finally:
        broker.stop()


async def test_refused_when_the_ca_does_not_match(
    tmp_path: Path,
    pki: Pki,
    start_service: Callable[..., MqttService],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = tls_broker(tmp_path, pki)
    try:
        assert broker.config.tls is not None
        failures: Failures = asyncio.Queue()
        service = start_service(
            broker.config.tls.port, failures, host=LOCAL, ca_file=str(pki.other_ca)
        )
        line = await asyncio.wait_for(failures.get(), 10)
        assert "is not trusted" in line
        assert "mqtt.ca_file" in line
        assert line in caplog.text  # logged once, as an error
        assert not service.publisher.connected.is_set()
        assert read_retained(LOCAL, broker.port, AVAILABILITY) is None
    finally:
        broker.stop()


async def test_host_name_must_match_unless_tls_insecure(
    tmp_path: Path,
    pki: Pki,
    start_service: Callable[..., MqttService],
) -> None:
    broker = tls_broker(tmp_path, pki)  # its certificate names 127.0.0.1 only
    try:
        assert broker.config.tls is not None
        port = broker.config.tls.port
        failures: Failures = asyncio.Queue()
        strict = start_service(port, failures, host="localhost", ca_file=str(pki.ca))
        line = await asyncio.wait_for(failures.get(), 10)
        assert "does not name 'localhost'" in line
        assert "mqtt.tls_insecure" in line
        assert not strict.publisher.connected.is_set()
        await strict.stop()
        with MqttCollector(LOCAL, broker.port, AVAILABILITY) as sub:
            start_service(port, host="localhost", ca_file=str(pki.ca), tls_insecure=True)
            await sub.await_for(lambda m: m.text == "online", 10)
    finally:
        broker.stop()


async def test_client_certificate_for_a_broker_that_requires_one(
    tmp_path: Path, pki: Pki, start_service: Callable[..., MqttService]
) -> None:
    broker = tls_broker(tmp_path, pki, require_certificate=True)
    try:
        assert broker.config.tls is not None
        with MqttCollector(LOCAL, broker.port, AVAILABILITY) as sub:
            start_service(
                broker.config.tls.port,
                host=LOCAL,
                ca_file=str(pki.ca),
                cert_file=str(pki.client[0]),
                key_file=str(pki.client[1]),
            )
            await sub.await_for(lambda m: m.text == "online", 10)
    finally:
        broker.stop()
