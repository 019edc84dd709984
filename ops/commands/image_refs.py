"""Image names and tags: validated, and derived from git for builds; the node-side
checks of which images and layers an engine has (for delivery over SSH)."""

from __future__ import annotations

import re

from .line import Line, q, script

# Docker's reference grammar, simplified: [registry[:port]/]path[:tag]
NAME = re.compile(r"^(?:[a-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*"
                  r"(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
SEMVER_TAG = re.compile(r"^v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)$")


def check_tag(tag: str) -> str:
    if not isinstance(tag, str) or not TAG.match(tag):
        raise ValueError(f"invalid image tag {tag!r}")
    return tag


def reference(name: str, tag: str) -> str:
    if not NAME.match(name):
        raise ValueError(f"invalid image name {name!r}")
    return f"{name}:{check_tag(tag)}"


def tags_from_git(short_sha: str, exact_tags: list[str], dirty: str = "") -> list[str]:
    """The tags a build gets: the commit (`-dirty-<hash of the changes>` when the tree
    has changes, so an edit is a new tag, never a stale image under an old one), and a
    semver for each `vX.Y.Z` git tag on that commit (clean trees only)."""
    if not re.fullmatch(r"[0-9a-f]{7,40}", short_sha):
        raise ValueError(f"not a git sha: {short_sha!r}")
    if dirty and not re.fullmatch(r"[0-9a-f]{8}", dirty):
        raise ValueError(f"not a change hash: {dirty!r}")
    tags = [short_sha + (f"-dirty-{dirty}" if dirty else "")]
    if not dirty:
        tags += [m.group(1) for t in exact_tags if (m := SEMVER_TAG.match(t.strip()))]
    return tags


def missing(refs: list[str]) -> Line:
    """The references the node's engine does not have, one per line: one round trip."""
    # A script: a loop over the references.
    qs = " ".join(q(r) for r in refs)
    return script(f"for r in {qs}; do docker image inspect --format '{{{{.Id}}}}' \"$r\" "
                  f">/dev/null 2>&1 || printf '%s\\n' \"$r\"; done")


def layer_lists() -> Line:
    """One JSON list of layer diff IDs per image on the node (for delta delivery)."""
    # A script: the image ids are kept in a variable, to inspect them all at once.
    return script("ids=$(docker image ls -qa --no-trunc | sort -u); if [ -n \"$ids\" ]; then "
                  "docker image inspect --format '{{json .RootFS.Layers}}' $ids; fi")


def tag(source: str, target: str) -> Line:
    """`docker tag`: one more name for an image this engine has."""
    from .line import cmd

    return cmd("docker", "tag", source, target)
