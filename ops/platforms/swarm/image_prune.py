"""Old app images off every node of a Swarm environment: only tags the deploy log says
were deployed, and never the live color's, the idle color's, the followers', or those of
the newest `keep` releases (what `rollback --to` can reach); the release directories
beyond those go too, so the two agree."""

from __future__ import annotations

import functools

from ...commands import deploy as deploy_cmd
from ...commands import image_prune as cmd
from . import deployment

HISTORY = 5000  # deploy log lines read for the tags ever deployed
NODE_TIMEOUT = 300  # seconds for each command on a node (removing images takes a while)


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
    down = down_hosts(session)
    for host in session.fleet.hosts:
        if host.name in down:  # its engine would never answer: the next prune does it
            nodes[host.name] = {"removed": [], "in_use": [], "kept": [], "freed_bytes": None,
                                "skipped": down[host.name]}
            say(f"{host.name}: skipped ({down[host.name]})")
            continue
        # Bounded: a node that stops answering mid-way must not hang a finished deploy.
        run = functools.partial(session.fleet.runner(host).run, timeout=NODE_TIMEOUT)
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


def down_hosts(session) -> dict[str, str]:
    """{inventory host name: why} of the hosts whose Swarm node is not Ready (a stale
    entry, whose hostname a Ready node has, is not a host that is down)."""
    from ...facts.swarm_stack import host_for_node

    nodes = deployment.snapshot(session.deployment).nodes
    ready = {n.hostname for n in nodes if n.state == "ready"}
    out = {}
    for node in nodes:
        if node.state == "ready" or node.hostname in ready:
            continue
        host = host_for_node(node, session.fleet.hosts)
        if host is not None:
            out[host.name] = f"node {node.hostname} is {node.state}"
    return out
