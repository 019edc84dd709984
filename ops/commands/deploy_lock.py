"""Command lines for the deploy lock on the manager. The record is JSON, quoted."""

from __future__ import annotations

import re

from .line import Line, absent, all_of, cmd, exists, group, q, script, subshell, when

APP = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
BASE = "/var/lib/ops-toolkit"


def lock_path(app: str, base: str = BASE) -> str:
    if not APP.match(app):
        raise ValueError(f"invalid app name {app!r}")
    if not re.fullmatch(r"/[A-Za-z0-9_./-]*", base) or "/../" in base + "/":
        raise ValueError(f"invalid state directory {base!r}")
    return f"{base.rstrip('/')}/{app}/deploy.lock"


METRIC = "ops_deploy_lock_held_since_timestamp_seconds"


def metric_path(app: str, base: str = BASE) -> str:
    """The lock's textfile for node_exporter (read on the manager by the monitoring
    stack's DeployLockHeld alert): the time it was taken, 0 while free."""
    return f"{lock_path(app, base).rsplit('/', 1)[0]}/textfile/ops_deploy_lock.prom"


def _metric(app: str, base: str, value: str) -> Line:
    """Write the textfile (temporary name, then rename: the collector never reads half
    of it); best effort, so that the lock itself never depends on it. `value` is a
    shell word (`0`, or `$(date +%s)`)."""
    path = metric_path(app, base)
    tmp = f"{path}.tmp"
    text = f"# TYPE {METRIC} gauge\\n{METRIC} %s\\n"
    # A script: `value` may be a command substitution, expanded by the shell.
    write = script(f"printf '{text}' \"{value}\"").to(tmp)
    return group(group(all_of(cmd("mkdir", "-p", path.rsplit("/", 1)[0]), write,
                              cmd("mv", "-f", tmp, path))).no_errors().or_true())


def acquire(app: str, record_json: str, base: str = BASE) -> Line:
    """Exit 0 only if this call created the lock file. Written whole under a temporary
    name, then hard-linked to the lock's name (atomic; fails if it exists): a full disk
    or a kill never leaves an empty or half-written lock behind."""
    path = lock_path(app, base)
    # A script: the temporary name carries the shell's pid ($$).
    create = script(f"t={q(path)}.new.$$; printf '%s\\n' {q(record_json)} > \"$t\" "
                    f"&& ln \"$t\" {q(path)} 2>/dev/null; rc=$?; rm -f \"$t\"; exit $rc")
    return all_of(cmd("mkdir", "-p", path.rsplit("/", 1)[0]), subshell(create),
                  _metric(app, base, "$(date +%s)"))


def metric_free(app: str, base: str = BASE) -> Line:
    """The textfile saying `free` when there is none yet (a stack never deployed since
    monitoring started); a held lock's value is left alone."""
    return when(all_of(absent(metric_path(app, base)), absent(lock_path(app, base))),
                _metric(app, base, "0"))


def read(app: str, base: str = BASE) -> Line:
    path = lock_path(app, base)
    return when(exists(path), cmd("cat", path))


def release_if(app: str, token: str, base: str = BASE) -> Line:
    """Remove the lock only while it still carries this token (never someone else's)."""
    if not re.fullmatch(r"[0-9a-f]{16,64}", token):
        raise ValueError("invalid lock token")
    path = lock_path(app, base)
    return when(cmd("grep", "-q", token, path).no_errors(),
                all_of(cmd("rm", "-f", path), _metric(app, base, "0")))


def remove(app: str, base: str = BASE) -> Line:
    return all_of(cmd("rm", "-f", lock_path(app, base)), _metric(app, base, "0"))
