"""Steady HTTP load with per-request outcome, for the deploy tests and bench-deploy.

A fixed total rate spread over worker threads, each with its own keep-alive session
(the demanding case for a reload: nginx's old workers close idle connections).
Every response records status, latency and the X-App-Color/X-App-Version it came from.

Like curl and browsers (RFC 9110 9.2.2), a GET that dies on a reused keep-alive
connection the server closed without answering is retried once on a new connection;
such retries are counted and reported, and a request failing twice is a failure.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import requests


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the start
    ok: bool
    status: int
    latency: float
    color: str
    version: str
    error: str = ""
    retried: bool = False


@dataclass
class Load:
    url: str
    # Requests per second, all threads together. The gateway limits one client address
    # to 100 r/s (burst 200): above that, 429s are the rate limit working, not a failure.
    rate: float = 100.0
    threads: int = 16
    timeout: float = 5.0
    max_seconds: float = 900.0  # stops by itself even if nobody calls stop()
    verify: str | bool = True  # the CA file the gateway's certificate is checked against
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        self._t0 = time.monotonic()
        interval = self.threads / self.rate
        for i in range(self.threads):
            t = threading.Thread(target=self._worker, args=(interval, i * interval / self.threads),
                                 daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _worker(self, interval: float, offset: float) -> None:
        session = requests.Session()
        next_at = time.monotonic() + offset
        while not self._stop.is_set() and time.monotonic() - self._t0 < self.max_seconds:
            now = time.monotonic()
            if now < next_at:
                time.sleep(next_at - now)
            # Behind schedule (a slow response): skip the missed slots rather than burst.
            next_at = max(next_at + interval, time.monotonic())
            start = time.monotonic()
            retried = False
            try:
                try:
                    r = session.get(self.url, timeout=self.timeout, verify=self.verify)
                except requests.ConnectionError as exc:
                    if not _closed_while_idle(exc):
                        raise
                    retried = True
                    r = session.get(self.url, timeout=self.timeout, verify=self.verify)
                sample = Sample(start - self._t0, r.status_code == 200, r.status_code,
                                time.monotonic() - start, r.headers.get("X-App-Color", ""),
                                r.headers.get("X-App-Version", ""), retried=retried)
            except requests.RequestException as exc:
                sample = Sample(start - self._t0, False, 0, time.monotonic() - start, "", "",
                                f"{type(exc).__name__}: {str(exc)[-160:]}", retried)
            with self._lock:
                self.samples.append(sample)
        session.close()

    def samples_so_far(self) -> list[Sample]:
        with self._lock:
            return list(self.samples)

    def stop(self) -> Load:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timeout + 5)
        self.samples.sort(key=lambda s: s.t)
        return self

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _closed_while_idle(exc: Exception) -> bool:
    """The server closed a kept-alive connection as the request went out on it."""
    text = str(exc)
    return "RemoteDisconnected" in text or "Connection reset by peer" in text


def summary(samples: list[Sample]) -> dict:
    """Counts, failures (with their first errors), p50/p99 latency, versions seen in order."""
    lat = sorted(s.latency for s in samples)
    failed = [s for s in samples if not s.ok]
    order: list[str] = []
    for s in samples:
        ident = f"{s.color}/{s.version}" if s.ok else ""
        if ident and (not order or order[-1] != ident):
            order.append(ident)
    span = (samples[-1].t - samples[0].t) if len(samples) > 1 else 0.0
    return {
        "requests": len(samples),
        "failed": len(failed),
        "retried": sum(s.retried for s in samples),
        "errors": [f"t={s.t:.1f}s {s.status or s.error}" for s in failed[:5]],
        "rate": round(len(samples) / span, 1) if span else 0.0,
        "p50_ms": round(_pct(lat, 0.50) * 1000, 1),
        "p99_ms": round(_pct(lat, 0.99) * 1000, 1),
        "max_ms": round((lat[-1] if lat else 0) * 1000, 1),
        "sequence": order,
    }


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]
