"""`inv plan.new`: an infrastructure plan from the seed's template, pre-filled with the
project's services, environments and hosts, backup policy, deploy strategy and open
audit findings (as risks)."""

from __future__ import annotations

import datetime
import os

from invoke import Collection, task

from ..errors import OpsError
from .common import settings, user_errors


def _owner(root) -> str:
    from ..runtime.runner import LOCAL

    try:
        name = LOCAL.run(["git", "-C", str(root), "config", "user.name"], check=False,
                         timeout=10).stdout.strip()
    except OpsError:  # no git, or it hung
        name = ""
    return name or "[name / team]"


def _envs(c, root):
    """Every environment, as its platform describes itself for a plan (unconnected)."""
    from .. import config
    from ..platforms import open_env

    return [open_env(c.config, name, root).plan_entry()
            for name in config.known_envs(c.config.get("envs") or {}, root)]


def _risks(result):
    """The open audit findings, one risk per rule, most severe first."""
    from ..audit.report import groups
    from ..plan import Risk

    return [Risk(g.worst, f"{g.rule.id} {g.rule.title}", g.places(3), g.rule.fix)
            for g in groups(result)[:10]]


@task(positional=["title"],
      help={"title": "what the plan is for (also names the file)",
            "lang": "en (default) or es (the seed template's own language)",
            "owner": "who is responsible (default: git config user.name)"})
@user_errors
def new(c, title, lang="en", owner=None):
    """Write docs/plans/INFRA-YYYYMMDD-<slug>.md from the seed's plan template, pre-filled
    with the project's services, environments, backups, deploy and audit risks."""
    from ..audit.load import project
    from ..backup.offsite import offsite_config
    from ..deploy.options import options
    from ..deploy.translate import BLUE_GREEN, repository
    from ..plan import Facts, check_lang, plan_id, render

    check_lang(lang)
    day = datetime.date.today().isoformat()
    name = plan_id(day, title)  # refuses a title with nothing to name the file by
    local = settings(c, "local")
    inputs = project(local)
    root = inputs.base
    path = root / "docs" / "plans" / f"{name}.md"
    if path.exists():
        raise OpsError(f"{path.relative_to(root)} exists: refusing to overwrite a plan "
                       "(edit it, or give another title)")
    result = inputs.run()
    # The deploy's own rules: the service labelled blue-green, and its image's followers.
    blue_green = next((s for s, lb in result.labels.items() if lb.get("ops.deploy") == BLUE_GREEN),
                      None)
    followers = [s for s, img in result.images.items() if blue_green and s != blue_green
                 and repository(img) == repository(result.images[blue_green])]
    backup = dict(c.config.get("backup") or {})
    # The remotes as db.backup reads them (a list, or one comma-separated string from .env),
    # and those an environment sets for itself (envs.<env>.backup.offsite), named with it.
    offsite = list(offsite_config(backup.get("offsite"), local.variables).remotes)
    for env_name, env_cfg in sorted((c.config.get("envs") or {}).items()):
        own = ((env_cfg or {}).get("backup") or {}).get("offsite")
        if own:
            offsite += [f"{r} ({env_name})" for r in offsite_config(own, local.variables).remotes]
    facts = Facts(title=" ".join(title.split()), day=day, owner=owner or _owner(root),
                  services=result.services, edges=result.edges, envs=_envs(c, root),
                  backup=backup, offsite=offsite, deploy=options(c.config, "local"),
                  blue_green=blue_green, followers=followers,
                  pipeline=result.targets.get("pipeline", []), risks=_risks(result),
                  audit_counts=result.counts())
    text = render(facts, lang)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        os.link(tmp, path)  # fails if the plan appeared meanwhile: never overwrites
    except FileExistsError:
        raise OpsError(f"{path.relative_to(root)} exists: refusing to overwrite a plan") from None
    finally:
        tmp.unlink()
    print(f"wrote {path.relative_to(root)} ({lang}; {len(facts.services)} services, "
          f"{len(facts.envs)} environments, {len(facts.risks)} risk(s) from the audit)")


ns = Collection("plan")
ns.add_task(new)
