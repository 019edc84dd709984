"""The deploy audit log: one JSON object per line on the manager (append-only), so every
laptop that deploys sees the same history. Building and reading records is pure."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from .. import owner


def record(action: str, env: str, outcome: str, **fields) -> dict:
    who = owner.record()
    rec = {"ts": datetime.now(UTC).isoformat(timespec="seconds"), "action": action, "env": env,
           "user": who["user"], "from_host": who["host"], "outcome": outcome}
    rec.update({k: v for k, v in fields.items() if v is not None})
    return rec


def line(rec: dict) -> str:
    return json.dumps(rec, sort_keys=True, separators=(",", ":"))


def parse(text: str) -> list[dict]:
    """Records in file order; a damaged line is shown as such, never dropped silently."""
    out = []
    for raw in (text or "").splitlines():
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
            out.append(rec if isinstance(rec, dict) else {"damaged": raw[:200]})
        except json.JSONDecodeError:
            out.append({"damaged": raw[:200]})
    return out


def describe(rec: dict) -> str:
    if "damaged" in rec:
        return f"(damaged line: {rec['damaged']!r})"
    move = ""
    if rec.get("to_color"):
        move = (f"{rec.get('from_color') or '-'}({rec.get('from_tag') or '-'}) -> "
                f"{rec['to_color']}({rec.get('to_tag') or '-'})")
    elif isinstance(rec.get("services"), dict):
        move = " ".join(f"{k}={v}" for k, v in sorted(rec["services"].items()))
    elif rec.get("state"):
        move = str(rec["state"])  # maintenance on/off
    tail = f" at {rec['step']}: {rec.get('error', '')}" if rec.get("outcome") != "ok" else ""
    took = f" {rec['seconds']:.1f}s" if isinstance(rec.get("seconds"), int | float) else ""
    return (f"{rec.get('ts', '?'):25} {rec.get('action', '?'):8} {rec.get('outcome', '?'):6} "
            f"{rec.get('user', '?')}@{rec.get('from_host', '?')} {move}{took}{tail}").rstrip()
