"""What Prometheus and Alertmanager answer, as rows (pure parsers of their API JSON)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import OpsError


@dataclass(frozen=True)
class ScrapeTarget:
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


def targets(answer) -> list[ScrapeTarget]:
    """/api/v1/targets -> one row per active target, sorted by job and instance."""
    try:
        active = answer["data"]["activeTargets"]
        rows = [ScrapeTarget(t["labels"].get("job", t.get("scrapePool", "?")),
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


def with_missing(rows: list[ScrapeTarget], expected: set[str]) -> list[ScrapeTarget]:
    """The rows, plus a down row for each job that has no target at all: DNS discovery
    finds nothing for a service whose containers are all stopped."""
    found = {r.job for r in rows}
    extra = [ScrapeTarget(job, "-", "missing", "no target found by DNS") for job in expected - found]
    return sorted(rows + extra, key=lambda r: (r.job, r.instance))
