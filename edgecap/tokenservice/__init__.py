"""edgecap-tokens: the central token service a fleet runs itself (`pip install
edgecap[server]`).

Devices hold a credential of their own (only its hash is stored); the service holds the
provider API keys and mints single-use AssemblyAI tokens, forwards Sync requests, mints
OpenAI client secrets, or proxies the streaming WebSocket, under a per-device and fleet-wide
policy. KeyPool-compatible: edgecap's `token_service` and `proxy` auth modes speak to it as
they are. Never imported by the daemon (tests/test_layering.py).
"""
