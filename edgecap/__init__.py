"""edgecap: ALSA capture -> AssemblyAI v3 Universal-Streaming -> finalized turns on MQTT."""

__version__ = "0.1.0"
