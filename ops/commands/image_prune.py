"""The app's images on a node: listed, removed one by one (an image a container still
uses is kept and said), the engine's image usage measured. Builders and parsers; pure."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from . import image_refs
from .line import Line, all_of, cmd, either, pipe, seq


def list_images(repository: str) -> Line:
    """`repo<TAB>tag<TAB>id` of every tagged image of `repository` on the engine."""
    return cmd("docker", "image", "ls", "--format", "{{.Repository}}\t{{.Tag}}\t{{.ID}}", repository)


def parse_images(text: str, repository: str) -> dict[str, str]:
    """{tag: image id} of `repository` (untagged entries skipped)."""
    out = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] == repository and parts[1] not in ("", "<none>"):
            out[parts[1]] = parts[2]
    return out


def disk_usage() -> Line:
    """The engine's own account of its images' size on disk (shared layers once)."""
    return cmd("docker", "system", "df", "--format", "{{.Type}}\t{{.Size}}")


UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}


def parse_disk_usage(text: str) -> int | None:
    """Bytes of the `Images` row (`1.234GB`), None when not found."""
    for line in text.splitlines():
        kind, _, size = line.partition("\t")
        if kind.strip() == "Images":
            m = re.fullmatch(r"([0-9.]+)\s*([kKMGT]?B)", size.strip())
            if m:
                return int(float(m.group(1)) * UNITS[m.group(2)])
    return None


def remove(refs: Sequence[str]) -> Line:
    """Each ref removed, or said kept: `removed REF` / `in-use REF` per line. Swarm keeps
    the exited containers of old tasks (its task history), which would hold every old
    image: those of a doomed image go first; a running container still keeps it."""
    for ref in refs:
        repository, _, tag = ref.rpartition(":")
        image_refs.check_tag(tag)
    return seq(*(seq(
        either(pipe(cmd("docker", "ps", "-aq", "--filter", f"ancestor={ref}", "--filter", "status=exited",
                        "--filter", "status=created"),
                    cmd("xargs", "-r", "docker", "rm")).silent(), cmd("true")),
        either(all_of(cmd("docker", "image", "rm", ref).silent(), cmd("echo", "removed", ref)),
               cmd("echo", "in-use", ref))) for ref in refs))


def parse_removed(text: str) -> tuple[list[str], list[str]]:
    removed, in_use = [], []
    for line in text.splitlines():
        word, _, ref = line.partition(" ")
        (removed if word == "removed" else in_use if word == "in-use" else []).append(ref.strip())
    return removed, in_use


def to_remove(tags: dict[str, str], keep: Iterable[str], deployed: Iterable[str]) -> list[str]:
    """The tags of the node's app images to remove (pure policy): only tags that were
    deployed once (the deploy log says so: an image built here and never deployed is
    someone's work, on local-swarm this engine is the build machine too), and none kept:
    live, idle, followed or a kept release."""
    kept, once = set(keep), set(deployed)
    return sorted(t for t in tags if t in once and t not in kept)


def kept_tags(release_tags_newest_first: Sequence[str], keep: int, protected: Iterable[str]) -> list[str]:
    """The newest `keep` releases' tags plus the protected ones (live, idle, followers)."""
    return list(dict.fromkeys([*release_tags_newest_first[:max(keep, 0)], *protected]))


def remove_releases(releases_dir: str, names: Sequence[str]) -> Line:
    """Release directories removed by name (each a checked `<time>-<tag>`)."""
    from .deploy import RELEASE

    bad = [n for n in names if not RELEASE.match(n)]
    if bad:
        raise ValueError(f"invalid release names: {bad}")
    return cmd("rm", "-rf", "--", *(f"{releases_dir}/{n}" for n in names))


def releases_beyond(names_oldest_first: Sequence[str], kept_tags: Iterable[str]) -> list[str]:
    """Release directories whose tag is not kept (pure)."""
    kept = set(kept_tags)
    return [n for n in names_oldest_first if n.split("-", 1)[1] not in kept]
