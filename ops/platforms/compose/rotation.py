"""A rotation on the local Compose stack: the server's container by `docker exec`, the
clients replaced replica by replica (Compose has no rolling update of its own)."""

from __future__ import annotations

import time

from ...commands import compose, docker
from ...errors import OpsError
from ...facts.compose import parse_ps, wait_budget
from ...rotation import servers
from ...rotation.model import Rotation
from ...shell import last_line, run

# nginx re-resolves the api's name every 5 s (nginx.conf): new replicas are in its list
# before the old ones go, so a request never finds only stopped ones.
RESOLVE_S = 5.5


class ComposePlace:
    def __init__(self, stack, rotation: Rotation):
        self.stack, self._server = stack, rotation.server.service
        self.where = f"the local stack {stack.settings.project!r}"
        self.base = stack.base_all  # every profile: the exporters read secrets too

    def _containers(self, service: str | None = None):
        found = parse_ps(run(compose.ps(self.base), env=self.stack.env,
                             what="docker compose ps").stdout)
        return [c for c in found if service is None or c.service == service]

    def exec(self, script: servers.Script, check: bool = True) -> bool:
        service = self._server
        running = [c for c in self._containers(service) if c.state == "running"]
        if not running:
            raise OpsError(f"{service} is not running on {self.where}: `inv up` first")
        result = run(script.command(running[0].name), input=script.stdin, check=False, what=script.what)
        if result.ok or not check:
            return result.ok
        raise OpsError(f"{service}: {script.what} failed: "
                       f"{last_line(result.stderr) or last_line(result.stdout) or 'no output'}")

    def move_clients(self, rotation: Rotation, value: str, out) -> list[str]:
        """Each running client: as many new replicas (created now, so they get the new
        value), healthy, then the old ones stopped gracefully and removed."""
        env = {**self.stack.env, rotation.variable: value}
        moved = []
        for service in rotation.clients:
            old = [c for c in self._containers(service) if c.state in ("running", "restarting")]
            if not old:
                continue  # not running here (a profile not started): it reads the file when it starts
            count = len(old)
            wait = wait_budget(self.stack.model, [service]) if service in self.stack.model.services else 120
            result = run(compose.up(self.base, wait_timeout=wait, services=[service],
                                    scale={service: 2 * count}, no_deps=True, no_recreate=True),
                         env=env, check=False, what=f"start new {service} replicas")
            fresh = [c for c in self._containers(service) if c.id not in {o.id for o in old}]
            if not result.ok or len([c for c in fresh if c.ok]) < count:
                self._remove([c.name for c in fresh])
                raise OpsError(f"{service}: the new replicas did not become healthy within "
                               f"{wait:.0f}s ({last_line(result.stderr) or 'see inv logs'})")
            if self.stack.routed_by_gateway(service):
                time.sleep(RESOLVE_S)
            self._remove([c.name for c in old])
            moved.append(f"{service} x{count}")
            print(f"  {service}: {count} replica(s) replaced", file=out)
        return moved

    def move_back(self, rotation: Rotation, value: str, out) -> None:
        self.move_clients(rotation, value, out)

    def _remove(self, names: list[str]) -> None:
        if names:
            # `docker stop` honours each container's stop timeout (its stop_grace_period).
            run(docker.stop(*names), check=False, what="stop the old replicas")
            run(docker.remove(*names), check=False, what="remove the old replicas")
