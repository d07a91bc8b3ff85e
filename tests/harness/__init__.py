"""Test harness: a real mosquitto broker, real ALSA capture fed through a FIFO, MQTT
observers and speech fixtures. Import as `from tests.harness import ...` (`tests` is a
package, so plain `pytest` from the repository root puts the root on sys.path)."""

from edgecap.sim.microphone import AlsaFifoSource, PlayHandle
from edgecap.sim.microphone.pcm import (
    RATE,
    pcm_duration_s,
    read_wav_pcm,
    silence,
    tone,
)
from tests.harness.audio import SPEECH_DIR, SpeechFixture, load_manifest
from tests.harness.broker import BrokerConfig, MosquittoBroker, TlsListener
from tests.harness.mosquitto_cli import mosquitto_pub, mosquitto_sub_one
from tests.harness.mqtt import Message, MqttCollector, publish, read_retained
from tests.harness.ports import LOOPBACK, free_port, wait_for_listener

__all__ = [
    "LOOPBACK",
    "RATE",
    "SPEECH_DIR",
    "AlsaFifoSource",
    "BrokerConfig",
    "Message",
    "MosquittoBroker",
    "MqttCollector",
    "PlayHandle",
    "SpeechFixture",
    "TlsListener",
    "free_port",
    "load_manifest",
    "mosquitto_pub",
    "mosquitto_sub_one",
    "pcm_duration_s",
    "publish",
    "read_retained",
    "read_wav_pcm",
    "silence",
    "tone",
    "wait_for_listener",
]
