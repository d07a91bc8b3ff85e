"""The state directory failing under the real daemon (subprocess) on real parts: tone bursts
through ALSA (file plugin + FIFO) -> the daemon -> the v3 streaming simulator -> mosquitto.

- the spool and the ledger deleted while the daemon runs: later turns are still durable (a
  turn the broker never acknowledged survives a SIGKILL and is delivered after a restart),
  and so is the open session's billing;
- a full disk (the daemon in its own mount namespace with a small tmpfs as state_dir, filled
  from the test): turns are still delivered, the status says why and `durable: false`, the
  stats count it; once space is freed the spool is on disk again within the retry period;
- a read-only file system (an ext4 image on a loop device that the kernel makes read-only
  after an error, as an SD card does): the same, then the file system is repaired
  (umount, e2fsck, mount) and the daemon goes back to it by itself.

A plain `mount -o remount,ro` cannot be used for the last case: the kernel refuses it
(EBUSY) while the daemon holds its SQLite files open for writing.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from edgecap.billing.store import FILENAME as LEDGER
from edgecap.mqtt.spooldb import FILENAME as SPOOL
from edgecap.sim.streaming import StreamingSimulator
from edgecap.sim.tokens import TokenServiceSimulator
from tests.daemon_proc import DaemonProcess, write_config
from tests.harness import AlsaFifoSource, MosquittoBroker, MqttCollector, silence, tone

pytestmark = pytest.mark.faults

CREDENTIAL = "team-credential-state-faults-7d1e"
DEVICE = "state-dev"
LOCAL = "127.0.0.1"
TRANSCRIPT = f"edgecap/{DEVICE}/transcript"
STATUS = f"edgecap/{DEVICE}/status"
STATS = f"edgecap/{DEVICE}/stats"
RECOVERY_SECONDS = 30.0 + 5.0  # the retry period, and the check that runs it


def burst() -> bytes:
    """Loud enough for the simulator to call it speech, then silence that ends the turn."""
    return tone(0.6, 440.0, amplitude=0.3) + silence(1.0)


def config(
    tmp_path: Path, state: Path, broker: int, sim: StreamingSimulator, tokens_url: str
) -> Path:
    return write_config(
        tmp_path / "edgecap.toml",
        {"device_id": DEVICE, "state_dir": str(state)},
        {
            "audio": {"device": "testcap"},
            "auth": {"token_service_url": tokens_url},
            "streaming": {"url": sim.url},
            "session": {"gate": "always"},  # a session (and its ledger heartbeat) all along
            "mqtt": {
                "host": LOCAL,
                "port": broker,
                "keepalive_seconds": 5,
                "reconnect_min_seconds": 1,
                "reconnect_max_seconds": 1,
                "stats_interval_seconds": 5,
            },
        },
    )


class NamespacedDaemon(DaemonProcess):
    """The daemon in its own mount namespace, after `setup` (shell) mounted its state_dir."""

    def __init__(self, config: Path, env: dict[str, str], setup: str) -> None:
        super().__init__(config, env)
        self.setup = setup

    def command(self) -> list[str]:
        run = shlex.join(super().command())
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-ec",
            f"{self.setup}\nexec {run}",
        ]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def inside(self, path: Path) -> Path:
        """`path` as the daemon sees it (its mount namespace)."""
        return Path(f"/proc/{self.pid}/root") / path.relative_to("/")

    async def nsenter(self, *command: str) -> str:
        """Run `command` in the daemon's mount namespace (off the loop); its output."""
        done = await asyncio.to_thread(
            subprocess.run,
            ["nsenter", "-t", str(self.pid), "-m", *command],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
        return done.stdout

    async def spooled_ids(self, spool: Path) -> list[str]:
        """What a restart would find in the spool (SQLite resolves /proc/<pid>/root to /,
        so it is read from inside the namespace)."""
        out = await self.nsenter(sys.executable, "-c", READ_SPOOL, str(spool))
        ids: list[str] = json.loads(out)
        return ids


READ_SPOOL = """
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(json.dumps([row[0] for row in db.execute("SELECT id FROM turns ORDER BY seq")]))
"""


def namespace_problem(script: str) -> str | None:
    """Why `script` cannot run in a mount namespace of its own (None: it can)."""
    try:
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-ec", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr or done.stdout).strip()


def fill(directory: Path) -> int:
    """Write into `directory` until its file system is full; the bytes written."""
    written = 0
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            written += os.write(fd, bytes(65536))
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    return written


def spooled_ids(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("SELECT id FROM turns ORDER BY seq")]
    finally:
        db.close()


def expected_ids(sim: StreamingSimulator) -> list[str]:
    return [
        f"{record.session_id}:{turn['turn_order']}"
        for record in sim.sessions
        for turn in record.final_turns
        if turn["turn_is_formatted"]
    ]


async def speak(alsa: AlsaFifoSource, sim: StreamingSimulator, n: int) -> str:
    """Play the `n`-th turn (from 1) and return its id once the simulator finalized it."""
    alsa.play_pcm(burst())
    await sim.wait_for_final_turns(n, formatted=True)
    return expected_ids(sim)[n - 1]


async def logged(daemon: DaemonProcess, fragment: str, timeout: float = 20) -> str:  # noqa: ASYNC109
    """The daemon's first log line containing `fragment` (fails after `timeout`)."""
    try:
        return await asyncio.wait_for(daemon.wait_log(fragment), timeout)
    except TimeoutError:
        raise AssertionError(f"no {fragment!r} logged within {timeout} s:\n{daemon.log}") from None


async def delivered(sub: MqttCollector, turn_id: str, timeout: float = 20) -> None:  # noqa: ASYNC109
    await sub.await_for(lambda m: m.topic == TRANSCRIPT and m.json()["id"] == turn_id, timeout)


async def status_where(
    sub: MqttCollector,
    check: Callable[[dict[str, Any]], bool],
    timeout: float,  # noqa: ASYNC109
) -> dict[str, Any]:
    found = await sub.await_for(lambda m: m.topic == STATUS and check(m.json()), timeout)
    payload: dict[str, Any] = found[0].json()
    return payload


async def stats_where(
    sub: MqttCollector,
    check: Callable[[dict[str, Any]], bool],
    timeout: float,  # noqa: ASYNC109
) -> dict[str, Any]:
    found = await sub.await_for(lambda m: m.topic == STATS and check(m.json()), timeout)
    payload: dict[str, Any] = found[0].json()
    return payload


async def next_turn_is_on_disk(
    daemon: NamespacedDaemon,
    broker: MosquittoBroker,
    alsa: AlsaFifoSource,
    sim: StreamingSimulator,
    sub: MqttCollector,
    state: Path,
) -> None:
    """With the broker down, the third turn must be in the spool file, not only in memory;
    once the broker is back all three are delivered."""
    broker.stop()
    third = await speak(alsa, sim, 3)
    await logged(daemon, f"turn {third} spooled")
    assert third in await daemon.spooled_ids(state / SPOOL)
    broker.start()
    await stats_where(sub, all_delivered(3), 30)


def in_memory(part: str) -> Callable[[dict[str, Any]], bool]:
    return lambda s: part in s["conditions"] and s["durable"] is False


def durable_again(s: dict[str, Any]) -> bool:
    return s["conditions"] == {} and s["durable"] is True


def all_delivered(turns: int) -> Callable[[dict[str, Any]], bool]:
    return lambda s: s["turns"] == s["delivered"] == turns and s["spool_depth"] == 0


def spool_in_memory_and_counted(s: dict[str, Any]) -> bool:
    spool = s.get("storage", {}).get("spool", {})
    return (
        spool.get("durable") is False
        and spool.get("fallbacks", 0) >= 1
        and spool.get("memory_writes", 0) >= 1
        and s["delivered"] == s["turns"]  # turns kept in memory are counted like the others
    )


@pytest.fixture
async def simulators() -> AsyncIterator[tuple[StreamingSimulator, TokenServiceSimulator]]:
    script = [f"turn number {n}" for n in range(40)]
    async with (
        StreamingSimulator(script=script) as sim,
        TokenServiceSimulator(sim, credential=CREDENTIAL) as tokens,
    ):
        yield sim, tokens


async def test_deleted_spool_and_ledger_are_written_anew_and_survive_a_kill(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    simulators: tuple[StreamingSimulator, TokenServiceSimulator],
) -> None:
    sim, tokens = simulators
    state = tmp_path / "state"
    env = {**alsa_source.env, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": CREDENTIAL}
    path = config(tmp_path, state, mqtt_broker.port, sim, tokens.base_url)
    with MqttCollector(LOCAL, mqtt_broker.port, TRANSCRIPT) as sub:
        daemon = await DaemonProcess(path, env).start()
        try:
            await logged(daemon, "MQTT connected")
            begin = await sim.wait_for_begin(0)
            await delivered(sub, await speak(alsa_source, sim, 1))
            for name in (SPOOL, LEDGER):  # rm /var/lib/edgecap/*
                for suffix in ("", "-wal", "-shm"):
                    (state / f"{name}{suffix}").unlink(missing_ok=True)
            deleted = time.monotonic()
            await logged(daemon, f"billing ledger {state / LEDGER} was deleted")
            ledger_back = time.monotonic() - deleted
            mqtt_broker.stop()  # nothing can be acknowledged from now on
            second = await speak(alsa_source, sim, 2)
            await logged(daemon, f"turn {second} spooled")
            warning = await logged(daemon, f"transcript spool {state / SPOOL} was deleted")
            spool_back = time.monotonic() - deleted
            assert spooled_ids(state / SPOOL) == [second]  # on disk, where a restart looks
            assert await daemon.stop(signal.SIGKILL) == -signal.SIGKILL
        finally:
            await daemon.ensure_stopped()
    assert warning.startswith("WARNING ")

    mqtt_broker.start()
    with MqttCollector(LOCAL, mqtt_broker.port, TRANSCRIPT) as sub:
        again = await DaemonProcess(path, env).start()
        try:
            await delivered(sub, second)  # never acknowledged before the kill
            await logged(again, "1 undelivered turn(s) from a previous run")
            # the session open at the kill was billed in the ledger written anew
            await logged(again, f"session {begin.session_id} was still open")
            assert await again.stop(signal.SIGTERM) == 0
        finally:
            await again.ensure_stopped()
    print(
        f"\nstate files deleted: ledger written anew after {ledger_back:.2f} s, spool after "
        f"{spool_back:.2f} s (the periodic check or the next turn); the unacknowledged turn "
        "was delivered after SIGKILL and restart"
    )


@pytest.fixture
def tmpfs_namespace(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    problem = namespace_problem(f"mount -t tmpfs -o size=64k tmpfs {probe}")
    if not problem and not shutil.which("nsenter"):
        problem = "nsenter is not installed"
    if problem:
        pytest.skip(
            "needs a mount namespace of its own and a tmpfs mount (root, or CAP_SYS_ADMIN; "
            f"`unshare -m` refused: {problem})"
        )


@pytest.mark.usefixtures("tmpfs_namespace")
async def test_full_disk_keeps_delivering_reports_it_and_recovers_when_space_is_freed(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    simulators: tuple[StreamingSimulator, TokenServiceSimulator],
) -> None:
    sim, tokens = simulators
    state = tmp_path / "state"
    state.mkdir()
    env = {**alsa_source.env, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": CREDENTIAL}
    path = config(tmp_path, state, mqtt_broker.port, sim, tokens.base_url)
    setup = f"mount -t tmpfs -o size=4m,mode=0700 tmpfs {shlex.quote(str(state))}"
    with MqttCollector(LOCAL, mqtt_broker.port, [TRANSCRIPT, STATUS, STATS]) as sub:
        daemon = NamespacedDaemon(path, env, setup)
        await daemon.start()
        try:
            await logged(daemon, "MQTT connected")
            await sim.wait_for_begin(0)
            await delivered(sub, await speak(alsa_source, sim, 1))
            filled = await asyncio.to_thread(fill, daemon.inside(state))

            await delivered(sub, await speak(alsa_source, sim, 2))  # still delivered
            status = await status_where(sub, in_memory("spool"), 10)
            assert status["conditions"]["spool"].startswith("kept in memory: the disk is full")
            line = await logged(daemon, "cannot write: the disk is full")
            assert line.startswith("ERROR ")
            assert "Free space on the file system of" in line
            await status_where(sub, in_memory("ledger"), 15)  # the next heartbeat
            stats = await stats_where(sub, spool_in_memory_and_counted, 15)

            sub.clear()  # from now on
            (daemon.inside(state) / "filler").unlink()
            freed = time.monotonic()
            await status_where(sub, durable_again, RECOVERY_SECONDS)
            recovery = time.monotonic() - freed
            await logged(daemon, "the disk works again")

            await next_turn_is_on_disk(daemon, mqtt_broker, alsa_source, sim, sub, state)
            assert await daemon.stop(signal.SIGTERM) == 0
        finally:
            await daemon.ensure_stopped()
    print(
        f"\nfull disk ({filled // 1024} KiB written to fill the 4 MiB tmpfs): turns delivered "
        f"from memory (stats: storage.spool {stats['storage']['spool']}); space freed -> "
        f"status durable again after {recovery:.1f} s"
    )


def ext4_problem(image: Path, mount_point: Path) -> str | None:
    """Why an ext4 image cannot be loop-mounted and made to fail here (None: it can)."""
    missing = [t for t in ("mkfs.ext4", "e2fsck", "findmnt", "nsenter") if not shutil.which(t)]
    if missing:
        return f"not installed: {', '.join(missing)}"
    try:
        subprocess.run(
            ["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, check=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"mkfs.ext4: {exc}"
    return namespace_problem(
        f"mount -o loop,errors=remount-ro {image} {mount_point}\n"
        f'dev=$(findmnt -n -o SOURCE {mount_point}); test -w "/sys/fs/ext4/${{dev#/dev/}}/'
        'trigger_fs_error"'
    )


@pytest.fixture
def ext4_image(tmp_path: Path) -> Path:
    image = tmp_path / "state.img"
    with image.open("wb") as f:
        f.truncate(16 * 1024 * 1024)
    probe = tmp_path / "probe"
    probe.mkdir()
    problem = ext4_problem(image, probe)
    if problem:
        pytest.skip(
            "needs a mount namespace, loop devices and ext4 with trigger_fs_error (root "
            f"on a Linux host): {problem}"
        )
    return image


async def test_read_only_file_system_keeps_delivering_reports_it_and_recovers_after_repair(
    tmp_path: Path,
    ext4_image: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    simulators: tuple[StreamingSimulator, TokenServiceSimulator],
) -> None:
    sim, tokens = simulators
    base = tmp_path / "base"
    base.mkdir()
    state = base / "state"
    env = {**alsa_source.env, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": CREDENTIAL}
    path = config(tmp_path, state, mqtt_broker.port, sim, tokens.base_url)
    img, st = shlex.quote(str(ext4_image)), shlex.quote(str(state))
    mount = f"mount -o loop,errors=remount-ro {img} {st}"
    # state_dir's mount point sits on a read-only tmpfs, so nothing lands under it while
    # the ext4 image is unmounted for repair
    setup = (
        f"mount -t tmpfs -o size=64k tmpfs {shlex.quote(str(base))}\n"
        f"mkdir -m 0700 {st}\nmount -o remount,ro {shlex.quote(str(base))}\n{mount}"
    )
    with MqttCollector(LOCAL, mqtt_broker.port, [TRANSCRIPT, STATUS, STATS]) as sub:
        daemon = NamespacedDaemon(path, env, setup)
        await daemon.start()
        try:
            await logged(daemon, "MQTT connected")
            await sim.wait_for_begin(0)
            await delivered(sub, await speak(alsa_source, sim, 1))
            await daemon.nsenter(  # what the kernel does after an I/O error with errors=remount-ro
                "sh",
                "-c",
                f"dev=$(findmnt -n -o SOURCE {st}); "
                'echo edgecap-test > "/sys/fs/ext4/${dev#/dev/}/trigger_fs_error"',
            )

            await delivered(sub, await speak(alsa_source, sim, 2))  # still delivered
            status = await status_where(sub, in_memory("spool"), 10)
            assert "the file system is read-only" in status["conditions"]["spool"]
            line = await logged(daemon, f"transcript spool {state / SPOOL}: cannot write")
            assert line.startswith("ERROR ")
            assert "the file system is read-only" in line
            await status_where(sub, in_memory("ledger"), 15)  # the next heartbeat
            stats = await stats_where(sub, spool_in_memory_and_counted, 15)

            sub.clear()  # from now on
            await daemon.nsenter(  # the repair: umount, fsck, mount
                "sh",
                "-c",
                f"for i in 1 2 3 4 5 6 7 8 9 10; do umount {st} && break; sleep 0.2; done\n"
                f"e2fsck -fy {img} >/dev/null 2>&1; rc=$?; [ $rc -le 1 ] || exit $rc\n{mount}",
            )
            repaired = time.monotonic()
            await status_where(sub, durable_again, RECOVERY_SECONDS)
            recovery = time.monotonic() - repaired
            await logged(daemon, "the disk works again")

            await next_turn_is_on_disk(daemon, mqtt_broker, alsa_source, sim, sub, state)
            assert await daemon.stop(signal.SIGTERM) == 0
        finally:
            await daemon.ensure_stopped()
    print(
        "\nread-only file system (ext4, errors=remount-ro, error triggered): turns delivered "
        f"from memory (stats: storage.spool {stats['storage']['spool']}); after umount, "
        f"e2fsck, mount -> status durable again after {recovery:.1f} s"
    )
