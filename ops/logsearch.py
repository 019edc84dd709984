"""`inv logs --request ID` / `--grep TEXT`: the lines of every service that mention a
request, merged in time order (pure: parsing and ordering; the tasks fetch the lines).

`docker compose logs --timestamps` prints `SOURCE | TIMESTAMP MESSAGE` (SOURCE `api-1`),
`docker service logs --timestamps` prints `TIMESTAMP SOURCE | MESSAGE` (SOURCE
`stack_api-blue.1.<task>@node`); both RFC 3339 in UTC, from the engine that received
each line."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import OpsError

MAX_NEEDLE = 200
_TS = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


@dataclass(frozen=True, order=True)
class Entry:
    ts: str  # seconds, then nanoseconds zero-padded: sorts as time
    source: str
    text: str

    def render(self) -> str:
        return f"{self.ts} {self.source} | {self.text}"


def needle(value, option: str) -> str:
    """What --request / --grep look for: plain text, one line, not empty."""
    text = "" if value is None or isinstance(value, bool) else str(value)
    if not text.strip() or len(text) > MAX_NEEDLE or not text.isprintable():
        raise OpsError(f"{option} must be 1 to {MAX_NEEDLE} printable characters on one line, "
                       f"not {value!r}")
    return text


def _timestamp(token: str) -> str | None:
    m = _TS.match(token)
    if not m:
        return None
    whole, frac, zone = m.groups()
    if zone != "Z":  # the engine writes UTC; anything else is not ours to reorder
        return None
    return f"{whole}.{(frac or '').ljust(9, '0')}Z"


def entry(line: str) -> Entry | None:
    """One Compose or Swarm log line, or None when it is neither."""
    head, sep, rest = line.partition("|")
    if not sep:
        return None
    first, _, source = head.strip().partition(" ")
    ts = _timestamp(first)
    if ts is not None:  # Swarm: TIMESTAMP SOURCE | MESSAGE
        text = rest[1:] if rest.startswith(" ") else rest
    else:  # Compose: SOURCE | TIMESTAMP MESSAGE
        source = head
        token, _, text = rest.strip(" ").partition(" ")
        ts = _timestamp(token)
    if ts is None or not source.strip():
        return None
    return Entry(ts, source.strip(), text.rstrip("\r\n"))


def matching(lines: Iterable[str], text: str) -> list[Entry]:
    """The entries whose message contains `text`, oldest first (ties keep their order)."""
    found = [e for e in map(entry, lines) if e is not None and text in e.text]
    return sorted(found, key=lambda e: e.ts)


def remote_search(services: list[str], text: str, tail: str | None = None,
                  since: str | None = None) -> str:
    """On a Swarm manager: each service's timestamped logs (every node's), reduced to the
    lines holding `text` there, side by side into one file per service, then printed
    whole (parallel writers on one pipe could interleave long lines)."""
    from .commands.compose import log_flags

    flags = " ".join(shlex.quote(o) for o in ["--no-trunc", *log_flags(False, tail, since, True)])
    runs = "".join(f"docker service logs {flags} {shlex.quote(s)} 2>&1 "
                   f"| grep -F -e {shlex.quote(text)} > \"$d/{i}\" & "
                   for i, s in enumerate(services))
    # `;` after the setup, not `&&`: a trailing `&` would background the whole list.
    return (f"d=$(mktemp -d) || exit 1; trap 'rm -rf \"$d\"' EXIT; {runs}wait; "
            "cat \"$d\"/* 2>/dev/null; true")
