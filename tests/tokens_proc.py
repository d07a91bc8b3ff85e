"""Run `edgecap-tokens` as a real process on loopback for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.daemon_proc import REPO, write_config
from tests.harness import free_port


class TokenServiceProcess:
    """`python -m edgecap.tokenservice --config FILE ...` (the `edgecap-tokens` entry point)
    with its own SQLite database and the API key in a 0600 file; stderr kept."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        api_key: str,
        token_url: str,
        streaming_url: str,
        top: dict[str, Any] | None = None,
        sections: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.port = free_port()
        key = tmp_path / "assemblyai-api-key"
        key.write_text(api_key + "\n")
        key.chmod(0o600)
        base: dict[str, dict[str, Any]] = {
            "assemblyai": {
                "api_key_file": str(key),
                "token_url": token_url,
                "streaming_url": streaming_url,
            }
        }
        for name, keys in (sections or {}).items():
            base.setdefault(name, {}).update(keys)
        self.config = write_config(
            tmp_path / "edgecap-tokens.toml",
            {
                "listen": f"127.0.0.1:{self.port}",
                "database": str(tmp_path / "tokens.sqlite3"),
                **(top or {}),
            },
            base,
        )
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("EDGECAP_")},
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
        }
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr_lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "edgecap.tokenservice", "--config", str(self.config), *args]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """One admin command (device add/revoke/...), run to its end."""
        result = subprocess.run(
            self.command(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        self.stderr_lines += result.stderr.splitlines()
        return result

    def add_device(self, name: str) -> str:
        result = self.cli("device", "add", name)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == 1, "the credential alone on stdout"
        return lines[0]

    async def start(self, timeout: float = 15.0) -> TokenServiceProcess:  # noqa: ASYNC109
        self.proc = await asyncio.create_subprocess_exec(
            *self.command("serve"),
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())
        async with httpx.AsyncClient() as client, asyncio.timeout(timeout):
            while True:
                if self.proc.returncode is not None:
                    raise AssertionError("edgecap-tokens exited:\n" + "\n".join(self.stderr_lines))
                try:
                    if (await client.get(self.base_url + "/readyz")).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)  # polling with a deadline, not synchronisation

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.stderr_lines.append(line.decode(errors="replace").rstrip("\n"))

    async def stop(self, timeout: float = 30.0) -> int:  # noqa: ASYNC109
        if self.proc is None:
            return 0
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError("edgecap-tokens did not stop:\n" + self.log) from None
        if self._reader is not None:
            await self._reader
        return code

    @property
    def log(self) -> str:
        return "\n".join(self.stderr_lines)
