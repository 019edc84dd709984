"""A release of the app built on this machine, for every kind of environment: its tags
from git (the commit, `-dirty-<changes>`, semver tags on it) and the api image built
with Compose's own build definition, whichever platform then runs it."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from . import wheelhouse
from .commands import compose
from .commands import image_refs as images_cmd
from .shell import run


def tags(root: Path) -> list[str]:
    """Tags for a release build from git: the commit (+`-dirty-<changes>`), semver tags
    on it; [] outside a git checkout."""
    git = ["git", "-C", str(root)]
    head = run([*git, "rev-parse", "--short=12", "HEAD"], check=False)
    if not head.ok:
        return []
    on_head = run([*git, "tag", "--points-at", "HEAD"]).stdout.split()
    return images_cmd.tags_from_git(head.stdout.strip(), on_head, _changes(root, git))


def _changes(root: Path, git: list[str]) -> str:
    """A hash of the uncommitted changes (tracked edits, and new files under compose/,
    where the build contexts are), or "" for a clean tree."""
    diff = run([*git, "diff", "HEAD", "--binary"]).stdout
    untracked = run([*git, "ls-files", "--others", "--exclude-standard", "-z", "--",
                     "compose"]).stdout
    if not diff and not untracked:
        return ""
    h = hashlib.sha256(diff.encode())
    for name in sorted(filter(None, untracked.split("\0"))):
        path = root / name
        h.update(b"\0" + name.encode() + b"\0")
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()[:8]


def build(settings, env: dict[str, str], out=sys.stderr) -> list[str]:
    """The api image with APP_VERSION = the commit, tagged with it and any semver;
    `env`: the variables Compose interpolates the stack with (the gateway's TLS ones
    among them). Returns the references made ([] outside a git checkout)."""
    found = tags(settings.root)
    if not found:
        return []
    name = settings.variables.get("API_IMAGE") or "ops-example/api"
    first = images_cmd.reference(name, found[0])
    # `inv deploy` reaches this on its own (no `inv build` before it), and a fresh
    # clone has no wheelhouse even when some other api image is present.
    wheelhouse.ensure(settings.root, out=out)
    run(compose.build(compose.base(settings.project, settings.compose_files), ["api"]),
        env={**env, "API_VERSION": found[0]}, stream=True, what="docker compose build (release)")
    refs = [first]
    for tag in found[1:]:
        ref = images_cmd.reference(name, tag)
        run(images_cmd.tag(first, ref), what=f"docker tag {ref}")
        refs.append(ref)
    return refs
