"""Run the real daemon (`python -m edgecap run`) as a subprocess for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from edgecap.sim.microphone import AlsaFifoSource
from edgecap.sim.streaming import StreamingSimulator
from edgecap.sim.tokens import TokenServiceSimulator

REPO = Path(__file__).resolve().parent.parent


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, top: dict[str, Any], sections: dict[str, dict[str, Any]]) -> Path:
    lines = [f"{k} = {toml_value(v)}" for k, v in top.items()]
    for name, keys in sections.items():
        lines.append(f"\n[{name}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in keys.items())
    path.write_text("\n".join(lines) + "\n")
    return path


class DaemonProcess:
    """`edgecap run --config PATH` with a given environment; stderr kept for assertions."""

    def __init__(
        self, config: Path, env: dict[str, str], *, prefix: list[str] | None = None
    ) -> None:
        """`prefix` runs the daemon through a wrapper that ends by exec'ing its arguments
        (e.g. `unshare -m sh -c '...; exec "$0" "$@"' python`), so `pid` stays the daemon."""
        self.config = config
        self.prefix = prefix or [sys.executable]
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("EDGECAP_")},
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr_lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None
        self._new_line = asyncio.Condition()

    def command(self) -> list[str]:
        """The command line (a subclass may wrap it, e.g. in its own mount namespace)."""
        return [*self.prefix, "-m", "edgecap", "run", "--config", str(self.config)]

    async def start(self) -> DaemonProcess:
        self.proc = await asyncio.create_subprocess_exec(
            *self.command(),
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read_stderr())
        return self

    async def _read_stderr(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.stderr_lines.append(line.decode(errors="replace").rstrip("\n"))
            async with self._new_line:
                self._new_line.notify_all()
        async with self._new_line:
            self._new_line.notify_all()

    async def wait_log(self, fragment: str, after: int = 0) -> str:
        """The first log line (from line index `after`) containing `fragment`."""

        def found() -> str | None:
            return next((ln for ln in self.stderr_lines[after:] if fragment in ln), None)

        async with self._new_line:
            while (line := found()) is None:
                if self._reader is not None and self._reader.done():
                    raise AssertionError(f"daemon exited before logging {fragment!r}:\n{self.log}")
                await self._new_line.wait()
        return line

    @property
    def log(self) -> str:
        return "\n".join(self.stderr_lines)

    # A timeout argument so the failure can show the daemon's log.
    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:  # noqa: ASYNC109
        """Send `sig` and return the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"daemon did not exit within {timeout} s:\n{self.log}") from None
        if self._reader is not None:
            await self._reader
        return code

    async def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def stack_config(
    tmp_path: Path,
    *,
    device_id: str,
    alsa_device: str,
    token_service_url: str,
    streaming_url: str,
    mqtt_port: int,
    sections: dict[str, dict[str, Any]] | None = None,
    name: str = "edgecap.toml",
    gate: str = "always",
) -> Path:
    """The usual test stack: FIFO microphone, simulators, test-owned broker.

    `gate` defaults to "always" here: these tests are about streaming, delivery and
    resilience with a session open from the start; the voice gate has its own tests
    (test_billing_daemon.py) and the end-to-end test runs on the default ("voice").
    """
    base: dict[str, dict[str, Any]] = {
        "audio": {"device": alsa_device},
        "auth": {"token_service_url": token_service_url},
        "streaming": {"url": streaming_url},
        "session": {"gate": gate},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
    }
    for section, keys in (sections or {}).items():
        base.setdefault(section, {}).update(keys)
    top = {"device_id": device_id, "state_dir": str(tmp_path / "state")}
    return write_config(tmp_path / name, top, base)


@asynccontextmanager
async def simulated_stack(
    tmp_path: Path,
    *,
    device_id: str,
    credential: str,
    alsa: AlsaFifoSource,
    mqtt_port: int,
    script: Sequence[str] = (),
    sections: dict[str, dict[str, Any]] | None = None,
) -> AsyncIterator[tuple[StreamingSimulator, TokenServiceSimulator, Path, dict[str, str]]]:
    """The simulators running, the usual config written for them, and the daemon's
    environment (the ALSA device and the credential): (sim, tokens, config, env)."""
    async with (
        StreamingSimulator(script=list(script)) as sim,
        TokenServiceSimulator(sim, credential=credential) as tokens,
    ):
        config = stack_config(
            tmp_path,
            device_id=device_id,
            alsa_device=alsa.device,
            token_service_url=tokens.base_url,
            streaming_url=sim.url,
            mqtt_port=mqtt_port,
            sections=sections,
        )
        yield sim, tokens, config, {**alsa.env, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": credential}
