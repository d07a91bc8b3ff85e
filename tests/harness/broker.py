"""A test-owned mosquitto broker on 127.0.0.1 and a free port, run in the foreground."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tests.harness.ports import LOOPBACK, free_port, wait_for_listener

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TlsListener:
    """An extra TLS listener (paths to PEM files). Not exercised by the harness tests yet."""

    port: int
    cafile: Path
    certfile: Path
    keyfile: Path
    require_certificate: bool = False

    def render(self, host: str) -> list[str]:
        return [
            f"listener {self.port} {host}",
            f"cafile {self.cafile}",
            f"certfile {self.certfile}",
            f"keyfile {self.keyfile}",
            f"require_certificate {'true' if self.require_certificate else 'false'}",
        ]


@dataclass
class BrokerConfig:
    """Builds mosquitto.conf. Listener-scoped lines follow the listener they belong to."""

    port: int
    data_dir: Path
    host: str = LOOPBACK
    allow_anonymous: bool = True
    password_file: Path | None = None
    tls: TlsListener | None = None
    extra_lines: Sequence[str] = field(default_factory=tuple)

    def render(self) -> str:
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            "persistence true",
            # mosquitto requires the trailing slash on the directory.
            f"persistence_location {self.data_dir}/",
            "autosave_interval 1",
            "log_dest stdout",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        ]
        if os.geteuid() == 0:
            # Otherwise mosquitto drops to user `mosquitto` and cannot write the tmp dir.
            lines.append("user root")
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file}")
        lines.extend(self.extra_lines)
        if self.tls is not None:
            lines.extend(self.tls.render(self.host))
        return "\n".join(lines) + "\n"


class MosquittoBroker:
    """`mosquitto -c <tmp>/mosquitto.conf` in the foreground; started by the constructor.

    `stop()` (SIGTERM: the broker saves its persistence file) and `kill()` (SIGKILL) end it;
    `start()` starts it again on the same port with the same persistence directory.
    """

    def __init__(
        self,
        tmp_path: Path,
        *,
        port: int | None = None,
        users: Mapping[str, str] | None = None,
        allow_anonymous: bool | None = None,
        tls: TlsListener | None = None,
        extra_lines: Sequence[str] = (),
        start: bool = True,
    ) -> None:
        self.host = LOOPBACK
        self.port = port if port is not None else free_port()
        self.dir = tmp_path / f"mosquitto-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.dir / "mosquitto.conf"
        self.log_path = self.dir / "mosquitto.log"
        password_file = self._write_password_file(users) if users else None
        self.config = BrokerConfig(
            port=self.port,
            data_dir=self.dir,
            host=self.host,
            allow_anonymous=allow_anonymous if allow_anonymous is not None else not users,
            password_file=password_file,
            tls=tls,
            extra_lines=tuple(extra_lines),
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        if start:
            self.start()

    def _write_password_file(self, users: Mapping[str, str]) -> Path:
        path = self.dir / "passwd"
        path.unlink(missing_ok=True)
        for user, password in users.items():
            create = [] if path.exists() else ["-c"]
            subprocess.run(
                ["mosquitto_passwd", *create, "-b", str(path), user, password],
                check=True,
                capture_output=True,
            )
        return path

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        if self.running:
            raise RuntimeError("broker already running")
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.config_path.write_text(self.config.render(), encoding="utf-8")
        with self.log_path.open("ab") as log:
            log.write(f"--- harness: start #{self.starts + 1} ---\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                [binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        try:
            wait_for_listener(self.host, self.port, START_TIMEOUT_S, self._proc)
            if self.config.tls is not None:
                wait_for_listener(self.host, self.config.tls.port, START_TIMEOUT_S, self._proc)
        except (TimeoutError, RuntimeError) as exc:
            self.kill()
            raise RuntimeError(f"mosquitto did not start: {exc}\n{self.log_text()}") from exc

    def stop(self) -> int | None:
        """SIGTERM and wait (the broker writes mosquitto.db). Returns the exit status."""
        return self._end(signal.SIGTERM)

    def kill(self) -> int | None:
        """SIGKILL and wait: a crash, nothing saved since the last autosave."""
        return self._end(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _end(self, sig: signal.Signals) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                return proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
        return proc.wait()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def persistence_file(self) -> Path:
        return self.dir / "mosquitto.db"

    def __enter__(self) -> MosquittoBroker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"MosquittoBroker({self.host}:{self.port}, {state})"
