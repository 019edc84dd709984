"""Invoke entry point: assembles the task collections from ops/tasks (no logic here)."""

import sys

from invoke import Collection

from ops.tasks import (
    audit,
    db,
    deploy,
    dr,
    images,
    maintenance,
    monitoring,
    plan,
    remote,
    secrets,
    stack,
    tls,
)

# `inv exec api ls -la`: Invoke would parse `-la` as its own flags and fail obscurely.
if (_hint := stack.split_exec_command(sys.argv)) is not None:
    print(f"error: {_hint}", file=sys.stderr)
    sys.exit(2)

ns = Collection()
for t in (stack.up, stack.migrate, stack.down, stack.ps, stack.logs, stack.health, stack.scale, stack.build,
          stack.clean, stack.exec_, stack.show_config):
    ns.add_task(t)
ns.add_task(deploy.rollback)
ns.add_task(audit.audit)
ns.add_collection(images.ns)
ns.add_collection(db.ns)
ns.add_collection(dr.ns)
ns.add_collection(maintenance.ns)
ns.add_collection(plan.ns)
ns.add_collection(monitoring.ns)
ns.add_collection(tls.ns)
ns.add_collection(secrets.ns)
for collection in (remote.sandbox_ns, remote.hosts_ns, remote.swarm_ns, deploy.ns):
    ns.add_collection(collection)
