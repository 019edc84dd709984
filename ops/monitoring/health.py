"""`inv health`'s lines for the monitoring stack itself, when it runs: its containers,
Prometheus' targets and the alerts firing in Alertmanager (the verdicts are pure; the
HTTP calls go to the loopback ports Compose published)."""

from __future__ import annotations

from collections.abc import Iterable

from . import status

ROLE = "monitoring"  # the ops.role label of the profile's services
TIMEOUT = 3.0


def containers_verdict(states: Iterable[tuple[str, bool, str]]) -> tuple[bool, str]:
    """(name, ok, detail) per container -> one verdict naming the ones that are not."""
    states = list(states)
    bad = [f"{name}: {detail}" for name, ok, detail in states if not ok]
    if bad:
        return False, f"{len(states) - len(bad)}/{len(states)} healthy; " + "; ".join(bad)
    return True, f"{len(states)}/{len(states)} healthy"


def targets_verdict(rows: list[status.ScrapeTarget]) -> tuple[bool, str]:
    """Every target up; one not scraped yet (just started) is not up either, but is
    said so apart from one that is down."""
    if not rows:
        return False, "no scrape target"
    down = [f"{r.job} {r.instance}" for r in rows if not r.ok and r.health != "unknown"]
    waiting = [r.job for r in rows if r.health == "unknown"]
    up = len(rows) - len(down) - len(waiting)
    detail = f"{up}/{len(rows)} up"
    if down:
        detail += f"; down: {', '.join(down)}"
    if waiting:
        detail += f"; not scraped yet: {', '.join(sorted(set(waiting)))}"
    return up == len(rows), detail


def alerts_verdict(rows: list[status.Alert]) -> tuple[bool, bool, str]:
    """Firing alerts are a warning here: each names a problem the other checks (or
    `inv monitoring.alerts`) show; the monitoring stack itself is working."""
    if not rows:
        return True, False, "none firing"
    names = sorted({f"{r.name}({r.service})" if r.service else r.name for r in rows})
    return True, True, f"{len(rows)} firing: {', '.join(names)}"


def published(container, port: int) -> str | None:
    """http://127.0.0.1:PORT for a running container's published `port`, else None."""
    bindings = (((container.attrs.get("NetworkSettings") or {}).get("Ports") or {})
                .get(f"{port}/tcp") or [])
    for b in bindings:
        if b.get("HostPort"):
            host = b.get("HostIp") or "127.0.0.1"
            wildcard = host in ("0.0.0.0", "")  # noqa: S104 - reading a binding, not binding
            return f"http://{'127.0.0.1' if wildcard else host}:{b['HostPort']}"
    return None


def _get(url: str):
    import requests

    resp = requests.get(url, timeout=TIMEOUT)
    resp.raise_for_status()
    return resp.json()


def jobs(containers, container_state) -> list:
    """(service, check, callable) for health.run_jobs; none when monitoring is not up."""
    mine = sorted((c for c in containers if c.labels.get("ops.role") == ROLE), key=lambda c: c.name)
    if not mine:
        return []
    by_service = {c.labels.get("com.docker.compose.service"): c for c in mine}
    out = [("monitoring", "containers",
            lambda: containers_verdict((c.labels.get("com.docker.compose.service", c.name),
                                        *container_state(c)) for c in mine))]
    prom = by_service.get("prometheus")
    prom_url = published(prom, 9090) if prom else None
    out.append(("monitoring", "prometheus targets",
                (lambda: targets_verdict(status.targets(_get(prom_url + "/api/v1/targets?state=active"))))
                if prom_url else (lambda: (False, "prometheus is not running"))))
    am = by_service.get("alertmanager")
    am_url = published(am, 9093) if am else None
    out.append(("monitoring", "alerts",
                (lambda: alerts_verdict(status.alerts(_get(
                    am_url + "/api/v2/alerts?active=true&silenced=false&inhibited=false"))))
                if am_url else (lambda: (False, "alertmanager is not running"))))
    return out
