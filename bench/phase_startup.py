"""Start-up: process start to `READY=1`, to audio flowing, and the import time of the package.

READY comes over a NOTIFY_SOCKET the benchmark owns (an AF_UNIX datagram socket), exactly as
systemd would receive it; the clock starts just before the process is spawned. Import time
is measured two ways: a fresh interpreter importing the module, minus an empty interpreter
(what a start really pays), and `python -X importtime` for the breakdown.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from dataclasses import dataclass, field

from bench.contenders import edgecap_config, edgecap_process, sim_script
from bench.context import Bench, say
from bench.stack import REPO, BenchError, child_env
from bench.stats import (
    Summary,
    cumulative_import_us,
    import_subtree,
    parse_importtime,
    summarize,
)
from tests.notify_socket import NotifySocket

IMPORTS = {  # what each contender imports before it can stream
    "edgecap": "import edgecap.app.daemon",
    "AssemblyAI SDK": "import assemblyai.streaming.v3",
    "bare floor": "import websockets.sync.client, alsaaudio",
}


IMPORT_RSS = {  # resident memory right after importing, in a fresh interpreter
    "the interpreter alone": "pass",
    "asyncio": "import asyncio",
    "pydantic + edgecap's config models": "import edgecap.config",
    "httpx": "import httpx",
    "websockets (asyncio client)": "import websockets.asyncio.client",
    "paho-mqtt": "import paho.mqtt.client",
    "sqlite3": "import sqlite3",
    "systemd-python": "import systemd.journal, systemd.daemon",
    "edgecap.app.daemon (all of edgecap)": "import edgecap.app.daemon",
    "AssemblyAI SDK (streaming v3)": "import assemblyai.streaming.v3",
    "bare floor (websockets sync, alsaaudio)": "import websockets.sync.client, alsaaudio",
}
_PRINT_RSS = (
    "\nimport re\nprint(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read())[1])"
)


@dataclass
class StartupResult:
    runs: int = 0
    ready_s: Summary | None = None
    streaming_s: Summary | None = None
    exit_codes: list[int | None] = field(default_factory=list)
    import_ms: dict[str, Summary] = field(default_factory=dict)
    importtime_daemon_ms: float = 0.0
    heaviest_imports_ms: list[tuple[str, float]] = field(default_factory=list)
    import_rss_mb: list[tuple[str, float]] = field(default_factory=list)


async def _python(*args: str) -> tuple[float, str, str]:
    """Run a fresh interpreter; (wall seconds, stderr, stdout)."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
        env=child_env(),
    )
    stdout, stderr = await proc.communicate()
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise BenchError(f"python {' '.join(args)} failed: {stderr.decode()[-500:]}")
    return elapsed, stderr.decode(), stdout.decode()


async def import_rss(result: StartupResult) -> None:
    for label, statement in IMPORT_RSS.items():
        _, _, out = await _python("-c", statement + _PRINT_RSS)
        result.import_rss_mb.append((label, int(out.strip()) / 1024))


async def import_times(result: StartupResult, repeats: int) -> None:
    empty = [(await _python("-c", "pass"))[0] for _ in range(repeats)]
    base = statistics.median(empty)
    for label, statement in IMPORTS.items():
        walls = [(await _python("-c", statement))[0] for _ in range(repeats)]
        result.import_ms[label] = summarize([(w - base) * 1000 for w in walls])
    outputs = [(await _python("-X", "importtime", "-c", IMPORTS["edgecap"]))[1] for _ in range(3)]
    rows_per_run = [parse_importtime(text) for text in outputs]
    result.importtime_daemon_ms = (
        statistics.median(cumulative_import_us(rows, "edgecap.app.daemon") for rows in rows_per_run)
        / 1000
    )
    rows = import_subtree(rows_per_run[-1], "edgecap.app.daemon")
    tops: dict[str, int] = {}
    for row in rows:  # the outermost import of each top-level package
        root = row.module.split(".")[0]
        if row.module == root and root != "edgecap":
            tops[root] = max(tops.get(root, 0), row.cumulative_us)
    heaviest = sorted(tops.items(), key=lambda kv: kv[1], reverse=True)[:8]
    result.heaviest_imports_ms = [(name, us / 1000) for name, us in heaviest]
    await import_rss(result)


async def run(bench: Bench, runs: int, import_repeats: int) -> StartupResult:
    result = StartupResult(runs=runs)
    urls = await bench.start_sim("startup", sim_script(2))
    source = bench.source("benchstartup")
    config = edgecap_config(
        bench.workdir / "startup.toml",
        device_id="bench-startup",
        source=source,
        urls=urls,
        mqtt_port=bench.broker.port,
    )
    sock_path = bench.workdir / "notify.sock"
    ready: list[float] = []
    streaming: list[float] = []
    async with NotifySocket(sock_path) as notify:
        for i in range(runs):
            process = edgecap_process(
                f"startup{i}", config, source, urls, bench.log("startup"), notify_socket=sock_path
            )
            seen = len(notify.messages)

            def ready_at(seen: int = seen) -> float | None:
                for at, datagram in notify.messages[seen:]:
                    if "READY=1" in datagram.split("\n"):
                        return at
                return None

            await process.start(bench.changes)
            try:
                async with asyncio.timeout(30):
                    await notify.wait_for(lambda: ready_at() is not None)
                stamps = await bench.host.call("wait_streaming", name="startup", index=i)
            except TimeoutError:
                raise BenchError(f"no READY=1 within 30 s:\n{process.log_tail()}") from None
            finally:
                result.exit_codes.append(await process.stop())
            assert process.started_at is not None
            at = ready_at()
            assert at is not None
            ready.append(at - process.started_at)
            streaming.append(float(stamps["first_frame"]) - process.started_at)
    result.ready_s = summarize(ready)
    result.streaming_s = summarize(streaming)
    say(f"  import times ({import_repeats} fresh interpreters each)")
    await import_times(result, import_repeats)
    return result
