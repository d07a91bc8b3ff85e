"""AssemblyAI v3 Universal-Streaming protocol, without I/O."""
