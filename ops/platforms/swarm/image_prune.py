"""Old app images off every node of a Swarm environment: only tags the deploy log says
were deployed, and never the live color's, the idle color's, the followers', or those of
the newest `keep` releases (what `rollback --to` can reach); the release directories
beyond those go too, so the two agree."""

from __future__ import annotations

from ...commands import deploy as deploy_cmd
from ...commands import image_prune as cmd
from . import deployment

HISTORY = 5000  # deploy log lines read for the tags ever deployed


def prune(session, keep: int, say=lambda line: None) -> dict:
    """{node: {removed, in_use, kept, freed_bytes}} and the releases dropped. The caller
    holds the deploy lock."""
    d = session.deployment
    repo = session.release().app_image
    info = deployment.status(d)
    protected = [t for t in [info["live_tag"], *(c["tag"] for c in info["colors"].values() if c),
                             *(f["tag"] for f in info["followers"].values() if f)] if t]
    names = [n for n in d.target.run(deploy_cmd.list_releases(d.paths), "list the kept releases")
             .stdout.split() if deploy_cmd.RELEASE.match(n)]
    keep_tags = cmd.kept_tags(deploy_cmd.release_tags("\n".join(names)), keep, protected)
    deployed = {r.get("to_tag") for r in deployment.history(d, HISTORY)} - {None}
    dropped = cmd.releases_beyond(names, keep_tags)
    if dropped:
        d.target.run(cmd.remove_releases(d.paths.releases, dropped), "remove old releases")
    nodes = {}
    for host in session.fleet.hosts:
        run = session.fleet.runner(host).run
        before = cmd.parse_disk_usage(run(cmd.disk_usage(), "docker system df", check=False).stdout)
        tags = cmd.parse_images(run(cmd.list_images(repo), f"list {repo} images").stdout, repo)
        doomed = [f"{repo}:{t}" for t in cmd.to_remove(tags, keep_tags, deployed)]
        removed, in_use = cmd.parse_removed(run(cmd.remove(doomed), "remove old images").stdout) \
            if doomed else ([], [])
        after = cmd.parse_disk_usage(run(cmd.disk_usage(), "docker system df", check=False).stdout)
        freed = max(before - after, 0) if before is not None and after is not None else None
        nodes[host.name] = {"removed": removed, "in_use": in_use,
                            "kept": sorted(t for t in tags if f"{repo}:{t}" not in removed),
                            "freed_bytes": freed}
        say(f"{host.name}: removed {len(removed)} image(s) of {repo}"
            + (f", freed {freed / 1e6:.0f} MB" if freed is not None else "")
            + (f"; in use, kept: {', '.join(in_use)}" if in_use else ""))
    return {"repository": repo, "kept_tags": keep_tags, "releases_removed": dropped, "nodes": nodes}
