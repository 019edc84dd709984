"""`monitoring:` of invoke.yaml, validated into one value (one line per mistake)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import OpsError
from ..facts.values import parse_duration

THRESHOLDS = {
    # name: (default, low, high, what)
    "api_5xx_ratio": (0.05, 0.0, 1.0, "share of api responses that are 5xx"),
    "api_p99_seconds": (1.0, 0.001, 600.0, "api p99 latency in seconds"),
    "queue_depth_max": (1000, 0, 10**9, "messages ready in the broker's queues"),
    "consumers_min": (1, 0, 10**6, "consumers on the broker's queues"),
    "disk_used_ratio": (0.85, 0.01, 1.0, "used share of a node's filesystem"),
    "backup_max_age_hours": (26, 1, 24 * 365, "hours since the newest verified backup"),
    "drill_max_age_hours": (48, 1, 24 * 365, "hours since the last passed restore drill"),
    "base_backup_max_age_hours": (36, 1, 24 * 365, "hours since a service's newest base backup"),
    "deploy_lock_ttl_seconds": (1800, 60, 7 * 86400, "seconds a deploy lock may be held"),
}


@dataclass(frozen=True)
class Monitoring:
    scrape_interval: float = 15.0
    evaluation_interval: float = 15.0
    # How long a condition holds before its alert fires: with 15 s evaluations, seen at
    # two evaluations in a row (one failed scrape never pages; a fault is notified in
    # under a minute: scripts/bench-monitoring).
    alert_for: float = 15.0
    group_wait: float = 10.0  # Alertmanager: wait for more alerts of a new group
    group_interval: float = 60.0  # ... and between notices about a group that changed
    thresholds: Mapping[str, float] = None  # type: ignore[assignment]
    webhook_url: str = ""

    def threshold(self, name: str) -> float:
        return self.thresholds[name]


def _seconds(raw, key: str, low: float, high: float) -> float:
    try:
        value = parse_duration(raw)
    except (OpsError, ValueError, TypeError):
        value = None
    if value is None or not low <= value <= high:
        raise OpsError(f"invoke.yaml monitoring.{key}: expected a duration between {low:g}s and "
                       f"{high:g}s (e.g. 15s, 1m), not {raw!r}")
    return value


def load(raw: Mapping | None, variables: Mapping[str, str]) -> Monitoring:
    """Settings from invoke.yaml's `monitoring:`; the webhook from ALERT_WEBHOOK_URL, else
    the backup job's BACKUP_WEBHOOK_URL (.env or the environment: it may hold a token)."""
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise OpsError("invoke.yaml monitoring: must be a mapping")
    given = raw.get("thresholds")
    given = {} if given is None else given
    if not isinstance(given, Mapping):
        raise OpsError("invoke.yaml monitoring.thresholds: must be a mapping")
    unknown = sorted(set(given) - set(THRESHOLDS))
    if unknown:
        raise OpsError(f"invoke.yaml monitoring.thresholds: unknown {', '.join(unknown)} "
                       f"(known: {', '.join(THRESHOLDS)})")
    thresholds = {}
    for name, (default, low, high, what) in THRESHOLDS.items():
        value = given.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise OpsError(f"invoke.yaml monitoring.thresholds.{name} ({what}): expected a number "
                           f"between {low:g} and {high:g}, not {value!r}")
        thresholds[name] = value
    return Monitoring(
        scrape_interval=_seconds(raw.get("scrape_interval", "15s"), "scrape_interval", 1, 600),
        evaluation_interval=_seconds(raw.get("evaluation_interval", "15s"), "evaluation_interval",
                                     1, 600),
        alert_for=_seconds(raw.get("alert_for", "15s"), "alert_for", 0, 86400),
        group_wait=_seconds(raw.get("group_wait", "10s"), "group_wait", 0, 3600),
        group_interval=_seconds(raw.get("group_interval", "1m"), "group_interval", 1, 86400),
        thresholds=thresholds,
        webhook_url=(variables.get("ALERT_WEBHOOK_URL") or variables.get("BACKUP_WEBHOOK_URL") or ""),
    )
