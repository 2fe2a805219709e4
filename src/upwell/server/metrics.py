"""Prometheus metrics of one server (its own registry, so several apps in one process, as in
tests, do not share counters), and the event-loop lag probe."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_SIZE_BUCKETS = tuple(float(2**n) for n in range(10, 41, 2))  # 1 KiB .. 1 TiB
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)

CONTENT_TYPE = CONTENT_TYPE_LATEST

# The *_created series double every counter's lines and say nothing an operator asked for.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """The seed's upload metrics plus bytes, PATCH latency, forwards, checksums, loop lag."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "upwell_upload_requests_total",
            "Upload requests (tus and POST /upload) by method and status.",
            ["method", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "upwell_upload_duration_seconds",
            "Seconds from an upload's creation to its last byte.",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.size = Histogram(
            "upwell_upload_size_bytes",
            "Sizes of completed uploads.",
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.active = Gauge(
            "upwell_active_uploads", "Upload request bodies being received now.", registry=r
        )
        self.received = Counter(
            "upwell_received_bytes_total", "Upload body bytes received.", registry=r
        )
        self.patch_latency = Histogram(
            "upwell_patch_duration_seconds",
            "Seconds a tus PATCH took, from request to answer.",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.forward_attempts = Counter(
            "upwell_forward_attempts_total", "Forward attempts by target.", ["target"], registry=r
        )
        self.forward_failures = Counter(
            "upwell_forward_failures_total",
            "Forward attempts that failed, by target.",
            ["target"],
            registry=r,
        )
        self.checksum_mismatches = Counter(
            "upwell_checksum_mismatches_total",
            "Request bodies that did not match their Upload-Checksum.",
            registry=r,
        )
        self.loop_lag = Gauge(
            "upwell_event_loop_lag_seconds",
            "How late the event loop last ran a timer (a blocked loop shows here).",
            registry=r,
        )

    def forward_attempt(self, target: str, ok: bool) -> None:
        self.forward_attempts.labels(target=target).inc()
        if not ok:
            self.forward_failures.labels(target=target).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def probe_loop_lag(metrics: Metrics, interval: float = 1.0) -> None:
    """Measure how late a timer fires, every `interval` seconds, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(interval)
        metrics.loop_lag.set(max(0.0, loop.time() - start - interval))


def monotonic() -> float:
    return time.perf_counter()
