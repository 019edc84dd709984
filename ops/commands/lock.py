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


def acquire(app: str, record_json: str, base: str = BASE) -> str:
    """Exit 0 only if this call created the lock file (noclobber: O_EXCL, atomic)."""
    path = lock_path(app, base)
    return (f"mkdir -p {shlex.quote(path.rsplit('/', 1)[0])} && "
            f"(set -C; printf '%s\\n' {shlex.quote(record_json)} > {shlex.quote(path)}) 2>/dev/null")


def read(app: str, base: str = BASE) -> str:
    path = shlex.quote(lock_path(app, base))
    return f"if [ -e {path} ]; then cat {path}; fi"


def release_if(app: str, token: str, base: str = BASE) -> str:
    """Remove the lock only while it still carries this token (never someone else's)."""
    if not re.fullmatch(r"[0-9a-f]{16,64}", token):
        raise ValueError("invalid lock token")
    path = shlex.quote(lock_path(app, base))
    return f"if grep -q {shlex.quote(token)} {path} 2>/dev/null; then rm -f {path}; fi"


def remove(app: str, base: str = BASE) -> str:
    return f"rm -f {shlex.quote(lock_path(app, base))}"
