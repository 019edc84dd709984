"""Where a Swarm environment's databases are, for the db.* operations: a deployed
stack whose database tasks run on nodes reached over SSH (or on this machine's engine,
for `local-swarm`); the interface is ops.platforms.base.BackupSite.

A site answers: which services hold databases, which container runs each now (found
afresh every run: a task restarted or moved since the last one is still found),
where a backup is proven (`read`: every block through pg_restore, in a container of
the same image), the lock the manager holds for a database while it is backed up,
and where the metrics go (the cluster's own node-exporter textfile directory too)."""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path

from ...commands import docker
from ...containers import Container, Stage
from ...errors import OpsError
from ...runtime.runner import LOCAL
from ..base import Located


class Throwaway:
    """A one-command container of `image` on this machine, no network: where a backup
    from a Swarm environment is read, with the server's own pg_restore."""

    def __init__(self, image: str):
        self.image = image

    def exec(self, argv, stdin: bool = False) -> Stage:
        return Stage(docker.run_offline(self.image, argv, stdin=stdin).argv)


class SwarmSite:
    """A deployed stack: each database task's container, on the node that runs it."""

    def __init__(self, stack):
        self.stack = stack
        session = self.session = stack.session
        self.deployment = session.deployment
        self.env = session.settings.env
        self.fleet = session.fleet
        self._snap = None
        self._images_here: set[str] = set()

    @property
    def snap(self):
        if self._snap is None:
            self._snap = self.stack.snapshot()
        return self._snap

    def roles(self) -> dict[str, dict]:
        from ...facts.swarm_stack import role

        return {name: {**svc.container_labels, **svc.labels, "ops.role": role(name, svc)}
                for name, svc in self.snap.services.items()}

    def default_db(self, service: str) -> str:
        env = self.snap.services[service].env
        return env.get("POSTGRES_DB") or env.get("POSTGRES_USER") or "postgres"

    def locate(self, service: str) -> Located:
        from ...facts.swarm_stack import problem

        svc = self.snap.services[service]
        running = [t for t in self.snap.running(svc) if t.container]
        if not running:
            raise OpsError(f"{service}: no running task on --env {self.env}"
                           + problem(self.snap, svc))
        task = running[0]
        host = self.stack.node_host(self.snap, task.node)
        return Located(Container(task.container, self.fleet.runner(host)),
                       dict(svc.env), svc.image)

    def checker(self, service: str, image: str | None):
        """A backup is read here, in a throwaway container of the database's image: no
        upload back to its node, no load on the database's host. A manifest that does
        not name its image: in the database's own container, wherever it runs."""
        if not image:
            return self.locate(service).container
        return Throwaway(self.image_here(image))

    def drill_machine(self, where: str, image: str | None):
        """Where a restore drill of `image` runs: here (the image fetched when missing)
        or on the manager (`backup.drill_on: manager`, `db.verify --on manager`)."""
        if where == "manager":
            return self.manager()
        if image:
            self.image_here(image)
        return LOCAL

    def image_here(self, image: str) -> str:
        """The environment's image, on this machine: fetched from the manager when
        missing (on `local-swarm` it is here already)."""
        if image in self._images_here:
            return image
        from ... import docker_api

        if docker_api.missing_images([image]):
            from ...backup.pgexec import pipeline

            manager = self.manager()
            pipeline([Stage(docker.save(image).argv, manager), docker.load().argv],
                     subprocess.DEVNULL, subprocess.DEVNULL,
                     f"fetching {image} from {manager.name}")
        self._images_here.add(image)
        return image

    # -- the manager's side ---------------------------------------------------------------
    def lock_dir(self) -> str:
        return f"{self.deployment.paths.root}/backup-locks"

    def manager(self):
        """The manager's runner: over its SSH connection, or this one for local-swarm."""
        return self.fleet.runner(self.fleet.manager)

    def manager_lock(self, service: str, db: str):
        return manager_lock(self.manager(), self.lock_dir(), f"{service}.{db}",
                            f"backup of {service}/{db} on --env {self.env}")

    def publish_metrics(self, path: Path) -> None:
        """The metrics file, also into the manager's textfile directory, where the
        cluster's node-exporter serves it to the monitoring part (BackupStale etc.)."""
        from ...commands.deploy import write_file

        d = self.deployment
        d.target.run(write_file(f"{d.paths.textfile}/ops_backup.prom", path.read_text()),
                     "publish the backup metrics")

    def close(self) -> None:
        """The platform that made this site closes the connections."""


@contextmanager
def manager_lock(machine, directory: str, name: str, what: str):
    """flock(1) on the manager, held by a command that lives as long as this block: the
    lock goes when the block ends, when this process dies, or when the connection
    drops (sshd hangs the command up). A second ops host is refused with exit 75."""
    import json

    from ...backup.db_lock import Busy, describe, owner_record

    path = f"{directory}/{name}.lock"
    record = json.dumps(owner_record())
    from ...commands.line import all_of, cmd

    hold = all_of(cmd("mkdir", "-p", directory), cmd(
        "exec", "flock", "-n", "-E", 75, path,
        "sh", "-c", 'printf %s "$1" > "$2"; echo LOCKED; exec cat >/dev/null', "_", record, path))
    proc = machine.popen(hold.argv, subprocess.PIPE, subprocess.PIPE, subprocess.DEVNULL)
    line = proc.stdout.readline()
    if line.strip() != b"LOCKED":
        code = proc.wait()
        proc.stdout.close()
        if code == 75:
            held = machine.run(["cat", path], check=False).stdout
            try:
                holder = json.loads(held or "{}")
            except ValueError:
                holder = {}
            raise Busy(f"{what} is locked on the manager by another run: {describe(holder)}; "
                       "it was left alone", code=75)
        raise OpsError(f"{what}: could not take the manager's lock (exit {code})")
    try:
        yield
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass
        proc.wait()
        proc.stdout.close()
