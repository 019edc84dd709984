"""Proof that a gateway routes to exactly a set of replicas, by their X-Instance header
(the replica's hostname). Shared by `inv scale` on the Compose stack and on Swarm."""

from __future__ import annotations

import time
from collections import Counter

from .errors import OpsError


def verify(url: str, expected: set[str], max_requests: int = 400, deadline_s: float = 20.0,
           trust: str | bool = True) -> Counter:
    """nginx re-resolves the service name every few seconds, so keep sampling windows
    until one window sees every expected replica and nothing else. Bounded by a request
    count and a deadline. `trust`: the CA file the gateway's certificate is verified
    against (True: the system's)."""
    import requests  # here: `inv health` imports this module, and needs no requests first

    window = max(12, 6 * len(expected))
    sent, deadline, seen = 0, time.monotonic() + deadline_s, Counter()
    with requests.Session() as http:
        while sent < max_requests and time.monotonic() < deadline:
            seen = Counter()
            for _ in range(window):
                sent += 1
                try:
                    # Per request: a Session's own `verify` loses to REQUESTS_CA_BUNDLE.
                    resp = http.get(url + "/", timeout=3, verify=trust)
                except requests.RequestException:
                    continue
                if resp.status_code == 200:
                    seen[resp.headers.get("X-Instance", "?")] += 1
            if set(seen) == expected:
                return seen
            time.sleep(0.5)
    raise OpsError(f"gateway at {url} did not route to all {len(expected)} replicas "
                   f"(last window saw {len(seen)}: {', '.join(sorted(seen)) or 'none'})")


def wait_maintenance(url: str, on: bool, trust: str | bool = True, timeout: float = 15.0,
                     consecutive: int = 3) -> None:
    """Until the gateway answers with maintenance mode `on` (its X-Maintenance header) on
    `consecutive` fresh connections in a row: a reload's exit 0 comes before its new
    workers take over, and until then the old ones answer as before."""
    import requests

    deadline = time.monotonic() + timeout
    streak, last = 0, "no answer"
    while streak < consecutive:
        try:
            r = requests.get(url.rstrip("/") + "/health/live", timeout=3, verify=trust,
                             headers={"Connection": "close"})
            seen = bool(r.headers.get("X-Maintenance"))
            last = f"HTTP {r.status_code}, maintenance {'on' if seen else 'off'}"
            streak = streak + 1 if seen == on else 0
        except requests.RequestException as exc:
            streak, last = 0, type(exc).__name__
        if streak < consecutive:
            if time.monotonic() > deadline:
                raise OpsError(f"the gateway at {url} does not serve maintenance mode "
                               f"{'on' if on else 'off'} after {timeout:.0f}s (last: {last})")
            time.sleep(0.1)
