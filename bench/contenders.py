"""The contenders, their processes and configuration, and the audio they all stream.

* `edgecap` (gate off; and gate on once the billing guard adds `session.gate = "voice"`):
  the real daemon, `python -m edgecap run`, capturing through ALSA and publishing to MQTT;
  also with `streaming.provider = "openai"` (16 kHz capture resampled to 24 kHz) against
  the OpenAI Realtime simulator;
* `sdk`: the official `assemblyai` SDK's v3 `StreamingClient` (`bench.sdk_client`);
* `floor`: a bare websockets client that only sends the frames (`bench.floor_client`);
  and the asyncio floor (`bench.async_floor_client`): the same, built like edgecap (a capture
  thread handing frames to an event loop).

Each reads its own FIFO-fed ALSA device (`AlsaFifoSource`), fed the same audio by the
benchmark process at real time, and streams to its own simulator pair in the host process.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlencode, urlsplit

from bench.stack import ClientProcess, child_env
from edgecap.sim.microphone import AlsaFifoSource, silence
from tests.daemon_proc import write_config
from tests.harness.audio import load_manifest

SPEECH_MODEL = "universal-streaming-english"
STREAM_QUERY = {  # what edgecap sends with its default configuration
    "sample_rate": "16000",
    "encoding": "pcm_s16le",
    "speech_model": SPEECH_MODEL,
    "format_turns": "true",
    "end_of_turn_confidence_threshold": "0.4",
    "min_turn_silence": "400",
    "max_turn_silence": "1280",
}
Provider = Literal["assemblyai", "openai", "sync"]
# the OpenAI contender's [openai] settings (its url is the simulator's)
OPENAI_SETTINGS: dict[str, object] = {"model": "gpt-4o-transcribe", "turn_detection": "server_vad"}


@dataclass(frozen=True)
class SimUrls:
    streaming_url: str
    token_service_url: str
    api_key: str
    credential: str

    @property
    def host(self) -> str:
        """`ws://HOST:PORT`, the form the SDK's `api_host` takes."""
        parts = urlsplit(self.streaming_url)
        return f"{parts.scheme}://{parts.netloc}"


@dataclass
class Contender:
    key: str  # also the simulator pair's name and part of the ALSA device name
    label: str
    kind: str  # "edgecap", "sdk" or "floor"
    source: AlsaFifoSource
    urls: SimUrls
    process: ClientProcess
    device_id: str = ""
    notes: list[str] = field(default_factory=list)
    provider: Provider = "assemblyai"  # whose simulator it streams to


# -- audio -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Program:
    """Speech fixtures in a loop with a pause before each, then a silent tail."""

    pcm: bytes
    texts: tuple[str, ...]
    seconds: float


def speech_program(seconds: float, pause_s: float = 1.0, tail_s: float = 2.0) -> Program:
    fixtures = load_manifest()
    parts: list[bytes] = []
    texts: list[str] = []
    length = 0
    i = 0
    while length < seconds * 32000:
        fixture = fixtures[i % len(fixtures)]
        chunk = silence(pause_s) + fixture.pcm
        parts.append(chunk)
        texts.append(fixture.text)
        length += len(chunk)
        i += 1
    parts.append(silence(tail_s))
    pcm = b"".join(parts)
    return Program(pcm, tuple(texts), len(pcm) / 32000)


def sim_script(cycles: int) -> list[str]:
    """The fixtures' texts in program order, `cycles` times (the simulator's script)."""
    return [f.text for f in load_manifest()] * cycles


# -- processes ---------------------------------------------------------------------------


def gate_available() -> bool:
    """True once edgecap's config has `session.gate` (the billing-guard issue)."""
    from edgecap.config import SessionConfig

    return "gate" in SessionConfig.model_fields


def edgecap_config(
    path: Path,
    *,
    device_id: str,
    source: AlsaFifoSource,
    urls: SimUrls,
    mqtt_port: int,
    gate: str | None = None,
    frame_ms: int = 50,
    state_dir: Path | None = None,
    provider: Provider = "assemblyai",
    extra: dict[str, dict[str, object]] | None = None,
) -> Path:
    """`provider` "openai": `urls` are an OpenAI simulator's, `OPENAI_SETTINGS` apply.
    `extra`: more keys per section (merged last)."""
    sections: dict[str, dict[str, object]] = {
        "audio": {"device": source.device, "frame_ms": frame_ms},
        "auth": {"token_service_url": urls.token_service_url},
        "streaming": {"url": urls.streaming_url},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        "logging": {"target": "stderr"},
    }
    if provider == "openai":
        sections["streaming"] = {"provider": "openai"}
        sections["openai"] = {"url": urls.streaming_url, **OPENAI_SETTINGS}
    if provider == "sync":  # through the token service's /sync path (the device credential)
        sections["streaming"] = {"provider": "assemblyai-sync"}
    if gate is None and gate_available():
        gate = "always"  # streaming from the start; the gate has its own phase (billing)
    if gate is not None:
        sections["session"] = {"gate": gate}
    for section, keys in (extra or {}).items():
        sections.setdefault(section, {}).update(keys)
    state = state_dir or path.parent / f"state-{device_id}"
    top = {"device_id": device_id, "state_dir": str(state)}
    return write_config(path, top, sections)


def edgecap_process(
    name: str,
    config: Path,
    source: AlsaFifoSource,
    urls: SimUrls,
    log_path: Path,
    *,
    notify_socket: Path | None = None,
    tree: Path | None = None,
) -> ClientProcess:
    """`tree`: run the `edgecap` package found there instead of this checkout's."""
    extra = {**source.env, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": urls.credential}
    if notify_socket is not None:
        extra["NOTIFY_SOCKET"] = str(notify_socket)
    if tree is not None:
        # PYTHONSAFEPATH: `-m` would otherwise put the working directory (this checkout)
        # first on sys.path, ahead of PYTHONPATH, and run this checkout's edgecap.
        extra["PYTHONPATH"] = str(tree)
        extra["PYTHONSAFEPATH"] = "1"
    argv = [sys.executable, "-m", "edgecap", "run", "--config", str(config)]
    return ClientProcess(name, argv, child_env(extra), log_path)


def sdk_process(name: str, source: AlsaFifoSource, urls: SimUrls, log_path: Path) -> ClientProcess:
    argv = [sys.executable, "-m", "bench.sdk_client", "--host", urls.host]
    argv += ["--device", source.device, "--api-key", urls.api_key]
    return ClientProcess(name, argv, child_env(source.env), log_path)


def floor_process(
    name: str, source: AlsaFifoSource, urls: SimUrls, log_path: Path, *, asyncio: bool = False
) -> ClientProcess:
    """The bare floor, or with `asyncio` the asyncio floor (`bench.async_floor_client`)."""
    url = f"{urls.streaming_url}?{urlencode(STREAM_QUERY)}"
    module = "bench.async_floor_client" if asyncio else "bench.floor_client"
    argv = [sys.executable, "-m", module, "--url", url]
    argv += ["--device", source.device, "--api-key", urls.api_key]
    argv += ["--period-frames", str(source.period_frames)]
    return ClientProcess(name, argv, child_env(source.env), log_path)
