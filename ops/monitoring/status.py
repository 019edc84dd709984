"""What Prometheus and Alertmanager answer, as rows (pure parsers of their API JSON)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import OpsError


@dataclass(frozen=True)
class Target:
    job: str
    instance: str
    health: str  # up | down | unknown
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.health == "up"


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    service: str
    summary: str
    since: str


def targets(answer) -> list[Target]:
    """/api/v1/targets -> one row per active target, sorted by job and instance."""
    try:
        active = answer["data"]["activeTargets"]
        rows = [Target(t["labels"].get("job", t.get("scrapePool", "?")),
                       t["labels"].get("instance", t.get("scrapeUrl", "?")), t["health"],
                       t.get("lastError") or "") for t in active]
    except (KeyError, TypeError) as exc:
        raise OpsError(f"Prometheus: unexpected /api/v1/targets answer ({exc})") from exc
    return sorted(rows, key=lambda r: (r.job, r.instance))


def alerts(answer) -> list[Alert]:
    """Alertmanager /api/v2/alerts -> the active ones, most severe first."""
    if not isinstance(answer, list):
        raise OpsError("Alertmanager: unexpected /api/v2/alerts answer")
    order = {"critical": 0, "warning": 1}
    rows = []
    for a in answer:
        labels, notes = a.get("labels") or {}, a.get("annotations") or {}
        state = (a.get("status") or {}).get("state", "active")
        if state != "active":
            continue
        rows.append(Alert(labels.get("alertname", "?"), labels.get("severity", ""),
                          labels.get("service", labels.get("job", "")), notes.get("summary", ""),
                          a.get("startsAt", "")))
    return sorted(rows, key=lambda r: (order.get(r.severity, 2), r.name, r.service))


def jobs_missing(rows: list[Target], expected: set[str]) -> list[str]:
    """Jobs the configuration asks for that have no target at all (DNS found nothing)."""
    return sorted(expected - {r.job for r in rows})
