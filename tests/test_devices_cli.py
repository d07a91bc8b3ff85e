"""`edgecap devices` run for real against the FIFO-fed capture PCM."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from tests.daemon_proc import REPO
from tests.harness import AlsaFifoSource

pytestmark = pytest.mark.integration


async def run_devices(env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edgecap",
        "devices",
        "--json",
        env={**env, "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_cli_lists_the_real_capture_pcm(alsa_source: AlsaFifoSource) -> None:
    code, out = await run_devices({**os.environ, **alsa_source.env})
    assert code == 0
    devices = json.loads(out)
    assert [d["name"] for d in devices] == ["testcap"]
    testcap = devices[0]
    assert testcap["edgecap_format_ok"] is True  # really opened at 16 kHz mono S16_LE
    assert testcap["description"] == "edgecap test capture (testcap, FIFO)"
    assert testcap["config"] == {"section": "audio", "line": 'device = "testcap"'}


async def test_cli_reports_a_device_that_does_not_open(
    alsa_source: AlsaFifoSource, tmp_path: Path
) -> None:
    env = {**os.environ, **alsa_source.env, alsa_source.infile_var: str(tmp_path / "unplugged")}
    code, out = await run_devices(env)
    testcap = json.loads(out)[0]
    assert code == 0
    assert testcap["edgecap_format_ok"] is False
    assert "No such file or directory" in testcap["edgecap_format_error"]


async def test_cli_without_any_capture_device(tmp_path: Path) -> None:
    conf = tmp_path / "asound.conf"
    conf.write_text("pcm.null { type null }\n")
    code, out = await run_devices({**os.environ, "ALSA_CONFIG_PATH": str(conf)})
    assert code == 1
    assert json.loads(out) == []


async def test_a_device_whose_open_hangs_is_reported_and_the_listing_ends(
    tmp_path: Path,
) -> None:
    source = AlsaFifoSource(tmp_path).prepare()  # a FIFO with no writer: the open blocks
    began = asyncio.get_running_loop().time()
    code, out = await run_devices({**os.environ, **source.env})
    took = asyncio.get_running_loop().time() - began
    testcap = json.loads(out)[0]
    assert code == 0
    assert took < 10
    assert testcap["name"] == "testcap"
    assert testcap["edgecap_format_ok"] is False
    assert "did not answer within 3 s" in testcap["edgecap_format_error"]
