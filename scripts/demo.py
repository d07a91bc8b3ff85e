"""The demo driver behind scripts/demo (run with the project's virtualenv)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgecap.sim.microphone import AlsaFifoSource
from edgecap.sim.streaming import StreamingSimulator
from edgecap.sim.tokens import TokenServiceSimulator

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "tests" / "fixtures" / "speech"
DEVICE_ID = "demo"


def say(text: str) -> None:
    print(text, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = workdir / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false"]
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)  # waiting for the broker's listener to appear
    proc.kill()
    raise SystemExit("mosquitto did not start")


class TurnPrinter:
    """Subscribes to the device's topics and prints turns as they arrive."""

    def __init__(self, host: str, port: int, prefix: str, device_id: str) -> None:
        self.topic = f"{prefix}/{device_id}/#"
        self.turns: list[dict[str, object]] = []
        self.loop = asyncio.get_running_loop()
        self.changed = asyncio.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"edgecap-demo-{os.getpid()}"
        )
        self.client.on_connect = lambda c, *_: c.subscribe(self.topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/transcript"):
            turn = json.loads(msg.payload)
            self.turns.append(turn)
            say(
                f"  TURN {turn['turn_order']}: {turn['text']!r}  ({turn['started_at']} .. "
                f"{turn['ended_at']}, confidence {turn['confidence']})"
            )
        else:
            say(f"  {msg.topic} = {msg.payload.decode(errors='replace')}")
        self.loop.call_soon_threadsafe(self.changed.set)

    async def wait_turns(self, n: int) -> None:
        while len(self.turns) < n:
            self.changed.clear()
            await self.changed.wait()

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def run_daemon(config: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edgecap",
        "run",
        "--config",
        str(config),
        env={**os.environ, **env},
        stdin=asyncio.subprocess.DEVNULL,
    )


async def stop_daemon(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proc.wait(), 30)


async def simulated(workdir: Path, samples: int) -> int:
    manifest = json.loads((SAMPLES / "manifest.json").read_text())[:samples]
    broker, port = start_broker(workdir)
    mic = AlsaFifoSource(workdir).start()
    try:
        async with (
            StreamingSimulator(script=[m["text"] for m in manifest]) as sim,
            TokenServiceSimulator(sim, credential="demo-team-credential") as tokens,
        ):
            say(f"SIMULATOR streaming server: {sim.url}")
            say(f"SIMULATOR token service:    {tokens.base_url}")
            say(f"mosquitto:                  127.0.0.1:{port}")
            config = workdir / "edgecap.toml"
            config.write_text(
                f'device_id = "{DEVICE_ID}"\nstate_dir = "{workdir / "state"}"\n'
                f'[audio]\ndevice = "{mic.device}"\n'
                f'[auth]\ntoken_service_url = "{tokens.base_url}"\n'
                f'[streaming]\nurl = "{sim.url}"\n'
                f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
            )
            printer = TurnPrinter("127.0.0.1", port, "edgecap", DEVICE_ID)
            env = {**mic.env, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": "demo-team-credential"}
            daemon = await run_daemon(config, env)
            try:
                mic.wait_reader(timeout=15)
                say(f"\nplaying the bundled speech sample through ALSA (device {mic.device!r}):")
                for i, m in enumerate(manifest, 1):
                    say(f"  sample {i}: {m['text']!r}")
                    mic.play_silence(1.0)
                    mic.play_wav(SAMPLES / m["file"])
                mic.play_silence(2.0)
                total = sum(m["duration_ms"] for m in manifest) / 1000 + len(manifest) + 15
                say("\nturns received on MQTT:")
                async with asyncio.timeout(total):
                    await printer.wait_turns(len(manifest))
            finally:
                code = await stop_daemon(daemon)
                printer.stop()
            say(
                f"\ndaemon stopped with exit status {code}; "
                f"{len(printer.turns)} of {len(manifest)} turns received"
            )
            return 0 if code == 0 and len(printer.turns) == len(manifest) else 1
    finally:
        mic.stop()
        broker.terminate()
        broker.wait(5)


async def real(workdir: Path, config: Path | None, seconds: float) -> int:
    env: dict[str, str] = {}
    broker = None
    if config is None:
        broker, port = start_broker(workdir)
        config = workdir / "edgecap.toml"
        config.write_text(
            f'device_id = "{DEVICE_ID}"\nstate_dir = "{workdir / "state"}"\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
        )
        host, prefix, device = "127.0.0.1", "edgecap", DEVICE_ID
    else:
        from edgecap.config import load_config

        cfg = load_config(config).config
        host, port, prefix, device = cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.prefix, cfg.device_id
    say(f"REAL service; config {config}; speak into the default microphone for {seconds:g} s")
    printer = TurnPrinter(host, port, prefix, device)
    daemon = await run_daemon(config, env)
    try:
        await asyncio.sleep(seconds)  # the demo's listening window
    finally:
        code = await stop_daemon(daemon)
        printer.stop()
        if broker is not None:
            broker.terminate()
            broker.wait(5)
    say(f"daemon stopped with exit status {code}; {len(printer.turns)} turn(s)")
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, help="use this config (real service)")
    parser.add_argument("--seconds", type=float, default=30, help="listening time (real mode)")
    parser.add_argument("--samples", type=int, default=3, help="speech samples (simulated mode)")
    args = parser.parse_args()
    if shutil.which("mosquitto") is None:
        raise SystemExit("mosquitto is not installed (scripts/demo installs it)")
    has_creds = any(
        os.environ.get(k)
        for k in ("EDGECAP_TOKEN_SERVICE_CREDENTIAL", "EDGECAP_ASSEMBLYAI_API_KEY")
    )
    with tempfile.TemporaryDirectory(prefix="edgecap-demo-") as tmp:
        if args.config is not None or has_creds:
            return asyncio.run(real(Path(tmp), args.config, args.seconds))
        return asyncio.run(simulated(Path(tmp), args.samples))


if __name__ == "__main__":
    sys.exit(main())
