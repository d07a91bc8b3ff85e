"""Prometheus metrics of one replica (its own registry, served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "edgecap_tokens_requests",
            "Requests by route and outcome (ok, a refusal code, or an upstream failure)",
            ["route", "outcome"],
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "edgecap_tokens_upstream_seconds",
            "Time the provider took to answer (token mint, Sync forward, WebSocket open)",
            ["route"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.sessions_open = Gauge(
            "edgecap_tokens_sessions_open",
            "Proxied streaming sessions open on this replica",
            registry=self.registry,
        )
        self.billed_seconds = Counter(
            "edgecap_tokens_billed_seconds",
            "Billed seconds by device: metered (proxy, Sync) or estimated (tokens' maximum "
            "session duration)",
            ["device", "kind"],
            registry=self.registry,
        )
