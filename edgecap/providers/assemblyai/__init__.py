"""AssemblyAI v3 Universal-Streaming: messages, errors, URL, turn assembly (no I/O)."""
