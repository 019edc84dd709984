"""Which backups to keep: last N, plus the newest of each of the last D days, W ISO weeks
and M months (grandfather-father-son). Pure: takes (id, time, verified) and decides.

Never deletes the newest verified backup, whatever the policy says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Policy:
    last: int = 7
    daily: int = 7
    weekly: int = 4
    monthly: int = 6

    def __post_init__(self):
        for name in ("last", "daily", "weekly", "monthly"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"retention {name} must be a whole number >= 0, got {value!r}")
        if self.last < 1:
            raise ValueError("retention last must be at least 1")


@dataclass(frozen=True)
class Item:
    key: str
    taken_at: datetime
    verified: bool


def _buckets(items, key_fn, count):
    """Newest item of each of the `count` newest distinct periods."""
    kept, seen = set(), []
    for item in items:  # newest first
        period = key_fn(item.taken_at)
        if period not in seen:
            if len(seen) == count:
                break
            seen.append(period)
            kept.add(item.key)
    return kept


def keep(items, policy: Policy) -> set[str]:
    items = sorted(items, key=lambda i: i.taken_at, reverse=True)
    kept = {i.key for i in items[: policy.last]}
    kept |= _buckets(items, lambda t: t.date(), policy.daily)
    kept |= _buckets(items, lambda t: tuple(t.isocalendar())[:2], policy.weekly)
    kept |= _buckets(items, lambda t: (t.year, t.month), policy.monthly)
    newest_verified = next((i for i in items if i.verified), None)
    if newest_verified:
        kept.add(newest_verified.key)
    return kept


def to_delete(items, policy: Policy) -> list[str]:
    kept = keep(items, policy)
    return [i.key for i in sorted(items, key=lambda i: i.taken_at) if i.key not in kept]
