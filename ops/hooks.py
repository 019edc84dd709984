"""Deploy hooks (like Kamal's): executables in the project's `.ops/hooks/`, run on the
machine that runs `inv`, with what is happening in OPS_* variables. Before the switch
(pre-build, pre-deploy, pre-switch) a non-zero exit stops the deploy with the live color
untouched and names the hook; after it (post-deploy, post-rollback) a failure is
reported, never undone. A missing hook is no hook; one that is not executable is said."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from . import owner
from .errors import OpsError

NAMES = ("pre-build", "pre-deploy", "pre-switch", "post-deploy", "post-rollback")
DIR = Path(".ops") / "hooks"
TIMEOUT = 300  # seconds; then the hook's whole process group is ended


class HookFailed(OpsError):
    pass


def variables(hook: str, fields: dict) -> dict[str, str]:
    """OPS_HOOK, OPS_RECORDED_AT, OPS_USER and one OPS_<FIELD> per field (pure): env,
    app, action, tag, color, previous_tag, previous_color, hosts (comma-separated),
    url, seconds."""
    who = owner.record()
    out = {"OPS_HOOK": hook, "OPS_RECORDED_AT": datetime.now(UTC).isoformat(timespec="seconds"),
           "OPS_USER": f"{who['user']}@{who['host']}"}
    for key, value in fields.items():
        if value is None:
            continue
        out[f"OPS_{key.upper()}"] = ",".join(map(str, value)) if isinstance(value, list | tuple) \
            else str(value)
    return out


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


@dataclass
class Hooks:
    root: Path
    fields: dict = field(default_factory=dict)  # what every hook of this action is told
    say: Callable[[str], None] = print
    timeout: float = TIMEOUT

    def path(self, name: str) -> Path:
        return self.root / DIR / name

    def run(self, name: str, **more) -> None:
        """Run hook `name` if it exists; a failure of a pre- hook raises HookFailed, of a
        post- hook is said as a warning."""
        if name not in NAMES:
            raise ValueError(f"unknown hook {name!r}")
        path = self.path(name)
        if not path.exists():
            return
        problem = self._problem(path, name, {**self.fields, **more})
        if problem is None:
            return
        if name.startswith("pre-"):
            raise HookFailed(f"hook {name} ({path.relative_to(self.root)}): {problem}; nothing was switched")
        self.say(f"warning: hook {name} ({path.relative_to(self.root)}): {problem} (reported, not undone)")

    def _problem(self, path: Path, name: str, fields: dict) -> str | None:
        if not path.is_file() or not os.access(path, os.X_OK):
            return "not an executable file (chmod +x it)"
        from .runtime.runner import LOCAL

        env = {**os.environ, **variables(name, fields)}
        self.say(f"==> hook {name}")
        with tempfile.TemporaryFile(mode="w+") as err:
            # Its output on our stderr: stdout may be a --json record.
            proc = LOCAL.popen([str(path)], subprocess.DEVNULL, sys.stderr, err, env=env)
            try:
                code = proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                LOCAL.end(proc)
                return f"still running after {self.timeout:.0f}s (stopped)"
            except BaseException:
                LOCAL.end(proc)
                raise
            err.seek(0)
            detail = last_line(err.read())
        if code != 0:
            return f"exit {code}" + (f": {detail}" if detail else "")
        return None
