"""Load benchmark of edgecap-tokens (`scripts/bench-tokens`): N simulated devices on
loopback minting AssemblyAI tokens through one replica as fast as it answers (closed loop),
against the streaming simulator's token endpoint in its own process. Reports requests/s,
p50/p99 latency, the replica's CPU and peak RSS, with SQLite and, where Debian's postgresql
server is installed, PostgreSQL. Prints a Markdown table for docs/benchmarks.md."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import postgres
from bench.proc import own_cpu_times
from bench.stats import parse_proc_status, percentile
from edgecap.tokenservice.credentials import credential_hash, new_credential
from edgecap.tokenservice.store import Store
from tests.harness.ports import free_port, wait_for_listener

REPO = Path(__file__).resolve().parents[1]
API_KEY = "sim-api-key"


@dataclass
class Result:
    backend: str
    devices: int
    seconds: float
    ok: int
    errors: int
    p50_ms: float
    p99_ms: float
    cpu_percent: float
    rss_mb: float

    @property
    def rps(self) -> float:
        return self.ok / self.seconds

    def row(self) -> str:
        return (
            f"| {self.backend} | {self.devices} | {self.rps:.0f} | {self.p50_ms:.1f} | "
            f"{self.p99_ms:.1f} | {self.cpu_percent:.0f} % | {self.rss_mb:.1f} | {self.errors} |"
        )


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def start_simulator() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecap", "simulate", "--streaming-port", str(port)],
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_listener("127.0.0.1", port, 20, proc)
    return proc, port


def write_config(directory: Path, database: str, sim_port: int) -> tuple[Path, int]:
    port = free_port()
    key = directory / "key"
    key.write_text(API_KEY)
    key.chmod(0o600)
    config = directory / "edgecap-tokens.toml"
    config.write_text(
        f'listen = "127.0.0.1:{port}"\ndatabase = "{database}"\nlog_level = "warning"\n'
        f'[assemblyai]\napi_key_file = "{key}"\n'
        f'token_url = "http://127.0.0.1:{sim_port}/v3/token"\n'
        f'streaming_url = "ws://127.0.0.1:{sim_port}/v3/ws"\n'
        "[limits.device]\ntoken_requests_per_minute = 0\n"
    )
    return config, port


def add_devices(database: str, count: int) -> list[str]:
    store = Store(database)
    store.create_schema()
    credentials = [new_credential() for _ in range(count)]
    for i, credential in enumerate(credentials):
        store.add_device(f"bench-{i:05d}", credential_hash(credential), time.time())
    store.close()
    return credentials


def rss_kb(pid: int) -> int:
    return parse_proc_status(Path(f"/proc/{pid}/status").read_text()).get("VmRSS", 0)


async def load(url: str, credentials: list[str], seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=len(credentials), max_keepalive_connections=None)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def device(credential: str) -> None:
            nonlocal errors
            headers = {"Authorization": f"Bearer {credential}"}
            while time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    response = await client.get(
                        url, params={"expires_in_seconds": 60}, headers=headers
                    )
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.monotonic() - started)
                else:
                    errors += 1

        await asyncio.gather(*(device(c) for c in credentials))
    return latencies, errors


async def sample_rss(pid: int, stop: asyncio.Event) -> int:
    peak = 0
    while not stop.is_set():
        peak = max(peak, rss_kb(pid))
        await asyncio.sleep(0.25)
    return peak


async def measure(url: str, pid: int, credentials: list[str], seconds: float) -> Result:
    await load(url, credentials[: min(10, len(credentials))], 1.0)  # warm up
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(pid, stop))
    before, started = own_cpu_times(pid).total, time.monotonic()
    latencies, errors = await load(url, credentials, seconds)
    wall = time.monotonic() - started
    cpu = (own_cpu_times(pid).total - before) / os.sysconf("SC_CLK_TCK")
    stop.set()
    peak = await sampler
    ms = [x * 1000 for x in latencies] or [0.0]
    return Result(
        "",
        len(credentials),
        wall,
        len(latencies),
        errors,
        percentile(ms, 50),
        percentile(ms, 99),
        100 * cpu / wall,
        peak / 1024,
    )


def run_backend(name: str, database: str, args: argparse.Namespace, sim_port: int) -> Result:
    with tempfile.TemporaryDirectory(prefix="bench-tokens-") as tmp:
        if name == "SQLite":
            database = str(Path(tmp) / "tokens.sqlite3")
        config, port = write_config(Path(tmp), database, sim_port)
        credentials = add_devices(database, args.devices)
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgecap.tokenservice", "--config", str(config), "serve"],
            env=env(),
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_for_listener("127.0.0.1", port, 20, proc)
            url = f"http://127.0.0.1:{port}/v1/assemblyai/v3/token"
            result = asyncio.run(measure(url, proc.pid, credentials, args.seconds))
        finally:
            proc.terminate()
            proc.wait(30)
    result.backend = name
    return result


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench-tokens", description=__doc__)
    parser.add_argument("--devices", type=int, default=100, help="simulated devices (100)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per backend (20)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    sim, sim_port = start_simulator()
    results = []
    try:
        results.append(run_backend("SQLite", "", args, sim_port))
        why = "--no-postgres" if args.no_postgres else postgres.available()
        if why is None:
            with postgres.TempPostgres(free_port()) as pg:
                results.append(run_backend("PostgreSQL", pg.url, args, sim_port))
        else:
            print(f"PostgreSQL skipped: {why}", file=sys.stderr)
    finally:
        sim.terminate()
        sim.wait(10)
    print(
        "| database | devices | tokens/s | p50 ms | p99 ms | CPU (one replica) | RSS MB | errors |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for result in results:
        print(result.row())
    return 0


if __name__ == "__main__":
    sys.exit(main())
