"""What a disaster-recovery drill promises and what it measured (pure).

RTO: from the drill's start to the restored stack's health green. RPO: the newest row
written at the source when the drill started (a heartbeat row it writes) against the
newest commit the off-site copy gave back (the restored server's last replayed
transaction): what a site lost whole at that moment would have lost."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import OpsError


@dataclass(frozen=True)
class Targets:
    rto_s: float = 300.0
    rpo_s: float = 10.0


def targets(raw) -> Targets:
    """`dr:` of invoke.yaml: rto_target and rpo_target in seconds (or "5m", "10s")."""
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise OpsError("dr must be a mapping (rto_target, rpo_target)")
    return Targets(seconds(raw.get("rto_target", 300), "dr.rto_target"),
                   seconds(raw.get("rpo_target", 10), "dr.rpo_target"))


def seconds(value, what: str) -> float:
    text = str(value).strip()
    scale = {"s": 1, "m": 60, "h": 3600}.get(text[-1:], None)
    try:
        n = float(text[:-1]) * scale if scale else float(text)
    except ValueError:
        raise OpsError(f"{what}: seconds, or a number with s, m or h, not {value!r}") from None
    if not 0 < n <= 7 * 86400:
        raise OpsError(f"{what}: between 0 and 7 days, not {value!r}")
    return n


@dataclass(frozen=True)
class Database:
    service: str
    source_newest: float  # epoch: the heartbeat written at the source at the drill's start
    restored_newest: float | None  # epoch: the last transaction the copy replayed
    heartbeat_restored: bool  # the drill's own heartbeat came back (nothing lost)

    @property
    def rpo_s(self) -> float | None:
        if self.heartbeat_restored:
            return 0.0
        if self.restored_newest is None:
            return None
        return max(0.0, self.source_newest - self.restored_newest)


def verdict(rto_s: float, dbs: list[Database], t: Targets) -> list[str]:
    """The targets missed, one phrase each (empty: the drill passed)."""
    missed = []
    if rto_s > t.rto_s:
        missed.append(f"RTO {rto_s:.0f}s is over the target {t.rto_s:.0f}s")
    for d in dbs:
        if d.rpo_s is None:
            missed.append(f"{d.service}: the copy replayed no transaction (RPO unknown)")
        elif d.rpo_s > t.rpo_s:
            missed.append(f"{d.service}: RPO {d.rpo_s:.1f}s is over the target {t.rpo_s:.0f}s")
    return missed
