"""Which pgBackRest base backup is due (pure), from the `backup.pitr` settings: a full
one every `full_every_days`, a differential one (changes since the last full) every
`diff_every_days`, an incremental one (changes since the last of any) otherwise; and
how many of each the repository keeps (WAL is kept as far back as they need)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..errors import OpsError
from ..facts.pgbackrest import Stanza
from ..facts.values import number_option


@dataclass(frozen=True)
class Policy:
    enabled: bool = True
    full_every_days: float = 7
    diff_every_days: float = 1
    retention_full: int = 2
    retention_diff: int = 7


def policy(raw) -> Policy:
    """invoke.yaml `backup.pitr` (a mapping, or false to take no base backups)."""
    if raw is None or raw is True:
        return Policy()
    if raw is False:
        return Policy(enabled=False)
    if not isinstance(raw, dict):
        raise OpsError("invoke.yaml backup.pitr must be a mapping (full_every_days, "
                       "diff_every_days, retention_full, retention_diff) or false")
    unknown = sorted(set(raw) - {"enabled", "full_every_days", "diff_every_days",
                                 "retention_full", "retention_diff"})
    if unknown:
        raise OpsError(f"invoke.yaml backup.pitr: unknown key(s) {', '.join(unknown)}")
    full = number_option(raw.get("full_every_days", 7), "backup.pitr.full_every_days", 0.01, 366)
    diff = number_option(raw.get("diff_every_days", 1), "backup.pitr.diff_every_days", 0.01, 366)
    return Policy(bool(raw.get("enabled", True)), full, diff,
                  number_option(raw.get("retention_full", 2), "backup.pitr.retention_full", 1, 999,
                                integer=True),
                  number_option(raw.get("retention_diff", 7), "backup.pitr.retention_diff", 1, 999,
                                integer=True))


def due(stanza: Stanza, now: datetime, p: Policy) -> str:
    """full, diff or incr: what the next scheduled base backup of `stanza` is."""
    def age_days(kinds) -> float | None:
        times = [b.stopped for b in stanza.backups if b.kind in kinds]
        return (now - max(times)).total_seconds() / 86400 if times else None

    full = age_days({"full"})
    if full is None or full >= p.full_every_days:
        return "full"
    diff = age_days({"full", "diff"})
    if diff is None or diff >= p.diff_every_days:
        return "diff"
    return "incr"
