"""Streaming sessions: buffering, pacing, the WebSocket adapter and the supervisor."""
