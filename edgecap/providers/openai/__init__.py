"""OpenAI Realtime transcription (GA): session settings, messages, item order, errors (no I/O)."""
