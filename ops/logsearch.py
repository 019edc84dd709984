"""`inv logs --request ID` / `--grep TEXT`: the lines of every service that mention a
request, merged in time order (pure: parsing and ordering; the tasks fetch the lines).

`docker compose logs --timestamps` prints `SOURCE | TIMESTAMP MESSAGE` (SOURCE `api-1`),
on a Swarm each node's `docker logs --timestamps` prints `TIMESTAMP MESSAGE`, given the
source `docker service logs` would name (`stack_api-blue.1.<task>@node`); all RFC 3339
in UTC, from the engine that received each line."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from .commands.line import Line
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
    """One `docker compose logs --timestamps` line, or None when it is not one."""
    source, sep, rest = line.partition("|")
    if not sep or not source.strip():
        return None
    token, _, text = rest.strip(" ").partition(" ")
    ts = _timestamp(token)
    if ts is None:
        return None
    return Entry(ts, source.strip(), text.rstrip("\r\n"))


def matching(lines: Iterable[str], text: str) -> list[Entry]:
    """The entries whose message contains `text`, oldest first (ties keep their order)."""
    found = [e for e in map(entry, lines) if e is not None and text in e.text]
    return sorted(found, key=lambda e: e.ts)


CONTAINER_LOG_WAIT = 120  # seconds one container's `docker logs` may take before it is called hung
_TASK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Incomplete(OpsError):
    """Some logs could not be searched: the lines that were found are still worth
    showing, before the one line that says what is missing."""

    def __init__(self, found: list[Entry], missing: list[str]):
        super().__init__("not searched: " + "; ".join(missing))
        self.found = found


def node_search(app: str, services: list[str], text: str, tail: str | None = None,
                since: str | None = None, wait: int = CONTAINER_LOG_WAIT) -> Line:
    """On one Swarm node: the timestamped logs of each of this node's containers (running
    or ended) of the stack's chosen services, reduced to the lines holding `text` there.

    Each container's `docker logs` runs on the node that has it, not `docker service
    logs` on the manager: that one can hang for good after a node came back
    (docker/cli#4678), and a hung search is worse than a short one that says so. Each
    read is bounded by `timeout`; the output is, per container, a `#task NAME EXIT`
    line then its matching lines (read by node_entries)."""
    from .commands.compose import log_flags
    from .commands.line import script

    # A script: a loop over the node's containers, each read in the background into
    # its own temporary file, then printed in order.
    flags = " ".join(shlex.quote(o) for o in log_flags(False, tail, since, True))
    fmt = shlex.quote("{{.ID}} {{.Label \"com.docker.swarm.service.name\"}} "
                      "{{.Label \"com.docker.swarm.task.name\"}}")
    label = shlex.quote(f"label=com.docker.stack.namespace={app}")
    wanted = "|".join(shlex.quote(s) for s in services) or "''"
    return script(
        "d=$(mktemp -d) || exit 1; trap 'rm -rf \"$d\"' EXIT; "
        f"docker ps -a --no-trunc --filter {label} --format {fmt} > \"$d/ps\" || exit 1; "
        "n=0; while read -r id svc task; do "
        f"case \"$svc\" in {wanted}) ;; *) continue ;; esac; "
        "n=$((n+1)); echo \"$task\" > \"$d/$n.task\"; "
        f"( {{ timeout -k 5 {int(wait)} docker logs {flags} \"$id\" 2>&1; echo $? > \"$d/$n.rc\"; }} "
        f"| grep -F -e {shlex.quote(text)} > \"$d/$n.out\" ) < /dev/null & "
        "done < \"$d/ps\"; wait; "
        "i=0; while [ $i -lt $n ]; do i=$((i+1)); "
        "echo \"#task $(cat \"$d/$i.task\") $(cat \"$d/$i.rc\" 2>/dev/null)\"; cat \"$d/$i.out\"; done")


def node_entries(output: str, node: str, text: str, wait: int = CONTAINER_LOG_WAIT
                 ) -> tuple[list[Entry], list[str]]:
    """node_search's output on `node` -> (its matching entries with Swarm's source
    `TASK@NODE`, what could not be read whole)."""
    found, missing, source = [], [], None
    for line in output.splitlines():
        if line.startswith("#task "):
            _, task, *rc = line.split(" ")
            source = f"{task}@{node}" if _TASK.match(task) else None
            if rc and rc[0] in ("124", "137"):
                missing.append(f"the logs of {task}@{node} (docker logs did not finish "
                               f"within {wait} s)")
            continue
        first, _, rest = line.partition(" ")
        ts = _timestamp(first)
        if source is None or ts is None or text not in rest:
            continue
        found.append(Entry(ts, source, rest.rstrip("\r\n")))
    return found, missing
