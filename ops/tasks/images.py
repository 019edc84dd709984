"""Images without a registry: `images.ensure` and `images.offline` (base images here),
`images.deliver` (onto a Swarm environment's nodes over SSH)."""

from __future__ import annotations

from invoke import Collection, task

from .common import ENV_HELP, platform, settings, user_errors


@task(help={"force": "rebuild the local images even when present", "env": ENV_HELP})
@user_errors
def offline(c, force=False, env="local"):
    """Build local stand-ins of the base images from Debian packages; point .env at them."""
    from .. import base_images as images_mod
    from .. import envfile

    s = settings(c, env)
    images_mod.build_local(s.root, force=force, mirror=s.variables.get("DEBIAN_MIRROR", ""))
    updates = {i.variable: i.tag for i in images_mod.LOCAL if s.variables.get(i.variable) != i.tag}
    if updates:
        envfile.update(s.root / ".env", updates)
    for i in images_mod.LOCAL:
        print(f"{i.variable}={i.tag}")


@task(help={"offline": "do not try a registry: build local images for what is missing",
            "env": ENV_HELP})
@user_errors
def ensure(c, offline=False, env="local"):
    """Make every base image available: present, pulled, or built locally."""
    from .. import base_images as images_mod

    s = settings(c, env)
    images_mod.ensure(s.root, s.variables, offline=offline or None)


@task(iterable=["image"],
      help={"image": "an image reference to deliver (repeatable; default: the api at the "
                     "current commit's tag and the base images of .env)",
            "env": ENV_HELP})
@user_errors
def deliver(c, image=None, env="local"):
    """Stream images over SSH (docker save | docker load) to every node that lacks them, all at once."""
    import sys

    from .. import release
    from ..commands import image_refs as images_cmd
    from ..errors import OpsError
    from ..runtime.fleet import OverSsh
    from .common import platform

    with platform(c, env) as p:
        s, inv = p.settings, p.ssh_hosts("images.deliver")
    refs = list(image or [])
    if not refs:
        tags = release.tags(s.root)
        if not tags:
            raise OpsError("not a git checkout: name the images with --image")
        refs = [images_cmd.reference(s.variables.get("API_IMAGE") or "ops-example/api", tags[0])]
        refs += [s.variables[v] for v in ("POSTGRES_IMAGE", "REDIS_IMAGE", "NGINX_IMAGE")
                 if s.variables.get(v)]
    for ref in refs:
        name, _, tag = ref.rpartition(":")
        try:
            images_cmd.reference(name, tag)
        except ValueError as exc:
            raise OpsError(str(exc)) from exc
    machines = OverSsh(inv)
    try:
        sent = machines.deliver_images(refs, sys.stderr)
    finally:
        machines.close()
    for host in inv.hosts:
        got = sent.get(host.name, [])
        print(f"{host.name}: {len(got)} image(s) sent, {len(refs) - len(got)} already present")




@task(name="prune", help={"keep": "releases whose images stay (newest first; default "
                                  "deploy.keep_releases, 10); the live and idle colors' always do",
                          "json": "print JSON", "env": ENV_HELP})
@user_errors
def prune(c, keep=None, json_=False, env="local"):
    """Remove old app images from every node, never the live, idle or a kept release's."""
    import json

    from ..deploy.options import options
    from ..facts.values import number_option

    default = options(c.config, env)["keep_releases"]
    count = number_option(default if keep is None else keep, "--keep", 1, 100, integer=True)
    with platform(c, env) as p:
        out = p.prune_images(count)
    if json_:
        print(json.dumps(out, indent=2))
        return
    freed = [n["freed_bytes"] for n in out["nodes"].values() if n["freed_bytes"] is not None]
    print(f"{out['repository']}: kept {', '.join(out['kept_tags']) or 'nothing'}"
          + (f"; {len(out['releases_removed'])} older release(s) dropped" if out["releases_removed"] else "")
          + (f"; freed {sum(freed) / 1e6:.0f} MB" if freed else ""))


ns = Collection("images", offline, ensure, deliver, prune)
