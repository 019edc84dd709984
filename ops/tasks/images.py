"""Base images without a registry: `images.ensure` and `images.offline`."""

from __future__ import annotations

from invoke import Collection, task

from .common import ENV_HELP, settings, user_errors


@task(help={"force": "rebuild the local images even when present", "env": ENV_HELP})
@user_errors
def offline(c, force=False, env="local"):
    """Build local stand-ins of the base images from Debian packages; point .env at them."""
    from .. import envfile
    from .. import images as images_mod

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
    from .. import images as images_mod

    s = settings(c, env)
    images_mod.ensure(s.root, s.variables, offline=offline or None)


ns = Collection("images", offline, ensure)
