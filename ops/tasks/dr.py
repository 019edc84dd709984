"""`inv dr.*`: disaster recovery measured (ops.dr)."""

from __future__ import annotations

import json
import sys

from invoke import Collection, task

from ..errors import USAGE, OpsError
from .common import ENV_HELP, platform, user_errors
from .db import OFFSITE_HELP, _raw


@task(help={"remote": OFFSITE_HELP, "json": "print the results as JSON",
            "keep": "leave the drill's stack running (inspect it; `inv down --volumes` with its "
                    "COMPOSE_PROJECT_NAME removes it)",
            "env": ENV_HELP})
@user_errors
def drill(c, env="local", remote=None, json_=False, keep=False):
    """Stand the stack up again from its off-site copy alone; print RTO and RPO."""
    from ..backup import service
    from ..dr import drill as dr_drill
    from ..dr import measure

    targets = measure.targets(c.config.get("dr"))
    with platform(c, env) as p:
        if p.kind != "compose":
            raise OpsError(f"--env {env}: dr.drill stands up Compose environments only for now "
                           "(a Swarm environment's drill in a throwaway sandbox is not built yet)",
                           code=USAGE)
        cfg = service.backup_config(p.settings, _raw(c, env))
        if not cfg.offsite.enabled:
            raise OpsError("dr.drill restores from the off-site copy: set backup.offsite.remotes "
                           "(docs/backups.md)", code=USAGE)
        result = dr_drill.run(p, cfg, targets, remote, out=sys.stderr, keep=keep)
        if result["ok"]:  # DrDrillOverdue fires when no drill has passed for 35 days
            from datetime import UTC, datetime

            from ..backup import layout, metrics

            metrics.record_drill(cfg.dest / layout.safe_part("environment", env), datetime.now(UTC),
                                 result["rto_s"], max(d["rpo_s"] for d in result["databases"]))
        site = p.backup_site()
        try:
            service.write_metrics(site, cfg)
        finally:
            site.close()
    if json_:
        print(json.dumps(result, indent=2))
    else:
        print(f"RTO {result['rto_s']:.1f}s (target {targets.rto_s:.0f}s): from the drill's start "
              f"to health green, project {result['project']}")
        for d in result["databases"]:
            rpo = "unknown" if d["rpo_s"] is None else f"{d['rpo_s']:.1f}s"
            print(f"RPO {d['service']}: {rpo} (target {targets.rpo_s:.0f}s)"
                  + ("; the drill's heartbeat came back" if d["heartbeat_restored"] else ""))
    if not result["ok"]:
        raise OpsError("drill missed its targets: " + "; ".join(result["missed"]))


ns = Collection("dr", drill)
