"""A throwaway PostgreSQL server on loopback (Debian's postgresql package), for the token
service's benchmark and its PostgreSQL test. `available()` says why not when it cannot run."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
RUN_AS = "postgres"  # initdb and postgres refuse to run as root


def _binary(name: str) -> str | None:
    for directory in BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    return shutil.which(name)


def available() -> str | None:
    """None when a server can be started here, else why not."""
    if _binary("initdb") is None or _binary("pg_ctl") is None:
        return "no PostgreSQL server binaries (apt-get install postgresql)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser to start PostgreSQL as another user"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam(RUN_AS)
        except KeyError:
            return f"running as root and there is no {RUN_AS!r} user to run PostgreSQL"
    return None


class TempPostgres:
    """`with TempPostgres(port) as pg: pg.url` - initdb, start, stop, remove."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="edgecap-pg-"))
        self.data = self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://edgecap@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", RUN_AS, "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=60)

    def start(self) -> TempPostgres:
        if os.geteuid() == 0:
            shutil.chown(self.root, RUN_AS)
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        assert initdb is not None
        assert pg_ctl is not None
        self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "edgecap", "--no-sync")
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off -c max_connections=200"
        )
        log = str(self.root / "log")
        self._run(pg_ctl, "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        return self

    def stop(self) -> None:
        pg_ctl = _binary("pg_ctl")
        if pg_ctl is not None and (self.data / "postmaster.pid").exists():
            self._run(pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> TempPostgres:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
