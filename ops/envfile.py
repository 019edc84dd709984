"""Create and edit .env files without losing lines, comments or file mode.

`.env` is made from `.env.example`: every value written `__RANDOM__` there becomes a
fresh random secret, and the file is created 0600 (it holds passwords).
"""

from __future__ import annotations

import re
import secrets
import sys
from pathlib import Path

from .config import parse_env_text
from .errors import OpsError
from .files import write_atomic

RANDOM = "__RANDOM__"


def render_from_example(example: str, token=lambda: secrets.token_urlsafe(24)) -> str:
    return re.sub(re.escape(RANDOM), lambda _m: token(), example)


def set_values(text: str, updates: dict[str, str]) -> str:
    """Replace `KEY=...` lines in place (first occurrence), append keys not present."""
    lines = text.splitlines()
    done = set()
    for i, line in enumerate(lines):
        m = re.match(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", line)
        if m and m.group(1) in updates and m.group(1) not in done:
            lines[i] = f"{m.group(1)}={updates[m.group(1)]}"
            done.add(m.group(1))
    lines += [f"{k}={v}" for k, v in updates.items() if k not in done]
    return "\n".join(lines) + "\n"


def new_secrets(example: str, current: dict[str, str], token=lambda: secrets.token_urlsafe(24)
                ) -> dict[str, str]:
    """Secrets .env.example has gained since .env was made (an upgrade added a service):
    fresh random values for the `__RANDOM__` keys .env lacks."""
    wanted = [k for k, v in parse_env_text(example, ".env.example").items() if v == RANDOM]
    return {k: token() for k in wanted if k not in current}


def init(root: Path) -> bool | list[str]:
    """Create .env from .env.example when absent (True); else add the secrets it lacks
    (their names), or nothing (False)."""
    target, example = root / ".env", root / ".env.example"
    if target.exists():
        current = parse_env_text(target.read_text(encoding="utf-8"), str(target))  # fail early
        added = new_secrets(example.read_text(encoding="utf-8"), current) if example.exists() else {}
        if added:
            update(target, added)
            return sorted(added)
        return False
    if not example.exists():
        raise OpsError(f"{example} is missing: cannot create {target}")
    text = render_from_example(example.read_text(encoding="utf-8"))
    parse_env_text(text, str(example))
    write_atomic(target, text)
    return True


def update(path: Path, updates: dict[str, str]) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    parse_env_text(text, str(path))
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    write_atomic(path, set_values(text, updates), mode)


if __name__ == "__main__":  # used by scripts/ before the package's tasks can run
    from .config import ROOT

    try:
        created = init(ROOT)
    except OpsError as exc:
        sys.exit(f"error: {exc}")
    if isinstance(created, list):
        print(f".env present; added new random secret(s) from .env.example: {', '.join(created)}")
    else:
        print(".env created from .env.example (random secrets, mode 0600)" if created
              else ".env present")
