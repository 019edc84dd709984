"""The api's wheelhouse: dependency wheels downloaded on the host, so that the image
build needs no network (no registry, no PyPI, no CA bundle inside the build)."""

from __future__ import annotations

import platform
import re
import sys
from pathlib import Path

from .errors import OpsError
from .shell import run

API_DIR = Path("compose/api")


def pinned(requirements: str) -> list[tuple[str, str]]:
    """(name, version) of every `name==version` line."""
    out = []
    for line in requirements.splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+!-]+)", line)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def missing(requirements: str, wheel_files) -> list[str]:
    """Pins with no matching wheel file (wheel names normalise `-` and `.` to `_`)."""
    have = set()
    for f in wheel_files:
        parts = Path(f).name.split("-")
        if len(parts) >= 2:
            have.add((_norm(parts[0]), parts[1]))
    return [f"{n}=={v}" for n, v in pinned(requirements) if (_norm(n), v) not in have]


def download_args(machine: str) -> list[str]:
    """pip download's target: the image's interpreter (Debian 12's CPython 3.11, glibc
    2.36) on this machine's architecture; pure wheels, or manylinux ones (psycopg's binary
    wheel, which carries libpq)."""
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine.lower(), machine.lower())
    platforms = [f"manylinux_2_{m}_{arch}" for m in (28, 17)] + [f"manylinux2014_{arch}", "any"]
    return ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
            "--abi", "cp311", "--abi", "abi3", "--abi", "none",
            *(a for p in platforms for a in ("--platform", p))]


def ensure(root: Path, out=sys.stderr) -> None:
    api = root / API_DIR
    req = (api / "requirements.txt").read_text(encoding="utf-8")
    wheels = api / "wheels"
    if not missing(req, wheels.glob("*.whl")):
        return
    print("fetching the api's dependency wheels ...", file=out)
    run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         *download_args(platform.machine()), "-d", str(wheels), "-r",
         str(api / "requirements.txt")], what="pip download (api wheelhouse)")
    still = missing(req, wheels.glob("*.whl"))
    if still:
        raise OpsError(f"api wheelhouse incomplete after download: {', '.join(still)}")
