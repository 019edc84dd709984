"""Shell lines for the deploy lock on the manager. The record is JSON, shlex-quoted."""

from __future__ import annotations

import re
import shlex

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


def _metric(app: str, base: str, value: str) -> str:
    """Write the textfile (temporary name, then rename: the collector never reads half
    of it); best effort, so that the lock itself never depends on it. `value` is a
    shell word (`0`, or `$(date +%s)`)."""
    path = metric_path(app, base)
    q, tmp = shlex.quote(path), shlex.quote(f"{path}.tmp")
    text = f"# TYPE {METRIC} gauge\\n{METRIC} %s\\n"
    return (f"{{ {{ mkdir -p {shlex.quote(path.rsplit('/', 1)[0])} && "
            f"printf '{text}' \"{value}\" > {tmp} && mv -f {tmp} {q}; }} 2>/dev/null || true; }}")


def acquire(app: str, record_json: str, base: str = BASE) -> str:
    """Exit 0 only if this call created the lock file (noclobber: O_EXCL, atomic)."""
    path = lock_path(app, base)
    return (f"mkdir -p {shlex.quote(path.rsplit('/', 1)[0])} && "
            f"(set -C; printf '%s\\n' {shlex.quote(record_json)} > {shlex.quote(path)}) 2>/dev/null"
            f" && {_metric(app, base, '$(date +%s)')}")


def metric_free(app: str, base: str = BASE) -> str:
    """The textfile saying `free` when there is none yet (a stack never deployed since
    monitoring started); a held lock's value is left alone."""
    path = shlex.quote(metric_path(app, base))
    lock = shlex.quote(lock_path(app, base))
    return f"if [ ! -e {path} ] && [ ! -e {lock} ]; then {_metric(app, base, '0')}; fi"


def read(app: str, base: str = BASE) -> str:
    path = shlex.quote(lock_path(app, base))
    return f"if [ -e {path} ]; then cat {path}; fi"


def release_if(app: str, token: str, base: str = BASE) -> str:
    """Remove the lock only while it still carries this token (never someone else's)."""
    if not re.fullmatch(r"[0-9a-f]{16,64}", token):
        raise ValueError("invalid lock token")
    path = shlex.quote(lock_path(app, base))
    return (f"if grep -q {shlex.quote(token)} {path} 2>/dev/null; then rm -f {path} && "
            f"{_metric(app, base, '0')}; fi")


def remove(app: str, base: str = BASE) -> str:
    return f"rm -f {shlex.quote(lock_path(app, base))} && {_metric(app, base, '0')}"
