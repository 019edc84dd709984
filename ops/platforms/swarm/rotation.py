"""A rotation on a Swarm environment: the server's container wherever its task runs;
the clients moved the way a deploy moves users, never in place.

- The live color: the live tag deployed again onto the idle color with the new secret
  version (health-gated, probed, switched: the deploy's own path), the services that
  follow the app's image (the worker) with it.
- The former live color, idle now: back to what the idle color ran, with the new
  version, so `inv rollback` still goes where it went before.
- Anything else still reading the old version (the monitoring exporters): a service
  update swapping the secret.
- The old version is then removed. The server keeps the version it was created with:
  it reads it only when its volume is initialised (stackfile.server_pins), and a
  changed reference would restart it."""

from __future__ import annotations

from ...commands import deploy as deploy_cmd
from ...deploy import stackfile
from ...errors import OpsError
from ...rotation import servers
from ...rotation.model import Rotation
from ...rotation.protocol import PastSwitch
from ...shell import last_line
from . import bluegreen, deployment


class SwarmPlace:
    def __init__(self, stack, rotation: Rotation):
        self.stack, self.rotation = stack, rotation
        session = self.session = stack.session
        self.deployment = session.deployment
        self.where = f"--env {self.deployment.env}"

    def exec(self, script: servers.Script, check: bool = True) -> bool:
        # Where the server runs now, each time: a rotation takes a deploy's time, and a
        # task replaced meanwhile has another container (one round trip).
        task, node = self.stack.task_target(self.stack.snapshot(), self.rotation.server.service)
        result = node.run(script.command(task.container), script.what, check=False,
                          input=script.stdin)
        if result.returncode == 0 or not check:
            return result.returncode == 0
        detail = last_line(result.stderr) or last_line(result.stdout) or "no output"
        raise OpsError(f"{node.name}: {self.rotation.server.service}: {script.what} failed: {detail}")

    def move_clients(self, rotation: Rotation, value: str, out) -> list[str]:
        d, session = self.deployment, self.session
        snap = deployment.snapshot(d)
        if not snap.live:
            raise OpsError(f"nothing is live on --env {d.env}: deploy first")
        live_color, live_tag = snap.live
        idle = snap.services.get(deploy_cmd.other(live_color))
        plan = session.plan(overrides={rotation.variable: value})
        rec = bluegreen.deploy(d, plan, live_tag, lambda: session.deliver(plan, live_tag), hold_lock=False)
        moved = [f"{rec['to_color']} ({live_tag}, now live)", *plan.t.followers()]
        try:
            back_tag = idle.tag if idle is not None else live_tag
            replicas = idle.replicas if idle is not None else plan.rel.replicas
            bluegreen.roll_idle(d, plan, live_color, back_tag, replicas)
            moved.append(f"{live_color} ({back_tag}, idle: the rollback target)")
            moved += self._swap_rest(plan, rotation)
            secrets, configs = plan.names()
            deployment.prune_objects(d, {*secrets.values(), *configs.values()})
        except Exception as exc:  # noqa: BLE001 - users are on the new value: forward only
            raise PastSwitch(str(exc)) from exc
        return moved

    def _swap_rest(self, plan: stackfile.Plan, rotation: Rotation) -> list[str]:
        """Services outside the deploy's files (the monitoring part) still on an older
        version of the secret: swapped in place (none serves users)."""
        d = self.deployment
        new = plan.names()[0][rotation.key]
        prefix = f"{d.app}_{rotation.key}_"  # any version (stackfile.versioned)
        snap = deployment.snapshot(d)
        pinned = rotation.server.service
        rollouts = []
        for short, svc in sorted(snap.services.items()):
            refs = [r for r in svc.secrets if r["name"].startswith(prefix) and r["name"] != new]
            if short == pinned or not refs:
                continue
            d.target.run(deploy_cmd.secret_swap(d.svc(short), refs, new), f"update {d.svc(short)}'s secret")
            rollouts.append((short, svc.image, None))
        if rollouts:
            deployment.wait_all(d, rollouts, deployment.manager_clock(d))
        return [name for name, _, _ in rollouts]

    def move_back(self, rotation: Rotation, value: str, out) -> None:
        # A deploy that failed left (or switched back to) the live color on the old
        # version, and put the worker back: nothing of the clients moved.
        print("  the live color and the worker are on the old version (the deploy put them back)",
              file=out)
