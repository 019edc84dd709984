"""`inv dr.drill` on a Compose environment: the stack stood up again from its off-site
copy alone, in a throwaway Compose project of its own (own name, network, volumes and
gateway port; nothing shared with the environment but the engine and the images), then
removed.

1. A heartbeat row is written to each source database (`ops_dr_heartbeat`): the newest
   row at the drill's start.
2. The pgBackRest repository's off-site copy (`<remote>/<env>/.pgbackrest`) is fetched
   and proven (`rclone check`), and put on the drill's repository volume.
3. Each database's data volume is made by `pgbackrest restore` to the end of the copy's
   archive, recovered and cleanly stopped in a throwaway container.
4. The stack is started on those volumes (`up`, health-gated); RTO is the time from the
   drill's start to every health check green.
5. Smoke checks: health green (the api ready through the gateway among them); per
   database, the heartbeat came back or not, and the last replayed commit: the RPO.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..backup import offsite, pitr, repo_mirror
from ..backup.pgexec import run_sql
from ..commands import docker, rclone
from ..commands import pgbackrest as br
from ..errors import OpsError
from ..facts import pgbackrest as facts
from ..runtime.runner import LOCAL, last_line
from . import measure

HEARTBEAT = ("CREATE TABLE IF NOT EXISTS ops_dr_heartbeat (at timestamptz PRIMARY KEY "
             "DEFAULT clock_timestamp()); INSERT INTO ops_dr_heartbeat DEFAULT VALUES "
             "RETURNING extract(epoch FROM at);")


def free_port() -> int:
    """A port nothing listens on now (the drill's gateway, on loopback)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _say(out, text: str) -> None:
    print(text, file=out, flush=True)


def heartbeats(site) -> dict[str, tuple[str, float]]:
    """service -> (database, the epoch of the row written now)."""
    found = {}
    for service, user in pitr.databases(site):
        where = site.locate(service)
        db = where.env.get("POSTGRES_DB") or user
        found[service] = (db, float(run_sql(where.container, user, db, HEARTBEAT).strip().splitlines()[-1]))
    return found


def fetch(cfg, env: str, remote: str, into: Path) -> None:
    """The repository's copy on `remote`, downloaded and proven against it."""
    source = repo_mirror.remote_path(remote, env)
    proc = offsite.run_rclone(cfg.offsite, rclone.lsjson(source), f"listing {source}", check=False)
    if proc.returncode != 0 or not rclone.parse_lsjson(proc.stdout):
        raise OpsError(f"no copy of the pgBackRest repository at {source} (db.backup makes it "
                       "when backup.offsite.remotes is set)")
    offsite.run_rclone(cfg.offsite, rclone.copy_tree(source, str(into)), f"download of {source}")
    repo_mirror.check(cfg.offsite, into, source, remote)


def _volume(name: str, project: str, key: str) -> None:
    """A volume Compose takes as the drill project's own (and removes at its down)."""
    LOCAL.run(docker.volume_create(name, {"com.docker.compose.project": project,
                                          "com.docker.compose.volume": key}), f"create volume {name}")


def load_repository(image: str, tree: Path, volume: str) -> None:
    """The fetched tree onto `volume`, owned by the image's postgres user."""
    tar = LOCAL.popen(["tar", "-C", str(tree), "-cf", "-", "."], subprocess.DEVNULL, subprocess.PIPE,
                      subprocess.DEVNULL)
    put = LOCAL.popen(docker.fill_volume(image, volume, "/repo", "postgres:postgres"), tar.stdout,
                      subprocess.DEVNULL, subprocess.PIPE)
    tar.stdout.close()
    err = put.stderr.read().decode(errors="replace")
    if put.wait() != 0 or tar.wait() != 0:
        raise OpsError(f"loading the repository's copy onto {volume}: {last_line(err) or 'tar failed'}")


LAST_REPLAYED = ("SELECT coalesce(extract(epoch FROM pg_last_xact_replay_timestamp())::text, '') "
                 "|| chr(9) || coalesce((SELECT extract(epoch FROM max(at))::text FROM "
                 "ops_dr_heartbeat), '');")


def restore_database(image: str, repo_volume: str, data_volume: str, service: str, user: str,
                     db: str) -> tuple[float | None, float | None]:
    """`data_volume` made from the repository (the end of its archive), recovered,
    stopped cleanly. Returns (the time the copy is whole to: its last replayed commit,
    or its base backup's end if later; the newest heartbeat there) as epochs."""
    with pitr.recovered(LOCAL, image, repo_volume, service, user, data_volume=data_volume) as c:
        proc = c.run(["psql", "-X", "-A", "-t", "-w", "-U", user, "-d", db, "-c", LAST_REPLAYED],
                     user="postgres", timeout=60)
        if proc.returncode != 0 and "ops_dr_heartbeat" in proc.stderr:  # never had one
            proc = c.run(["psql", "-X", "-A", "-t", "-w", "-U", user, "-d", db, "-c",
                          "SELECT coalesce(extract(epoch FROM pg_last_xact_replay_timestamp())::text, '')"
                          " || chr(9);"], user="postgres", timeout=60)
        if proc.returncode != 0:
            raise OpsError(f"{service}: reading the restored server: {last_line(proc.stderr)}")
        replayed, beat = (proc.stdout.strip().split("\t") + ["", ""])[:2]
        # No commit after the base backup: the copy is whole up to the backup's end.
        info = c.run(br.info(service, br.REPO_PATH).argv, user="postgres", timeout=120)
        newest = facts.parse_info(info.stdout, service).newest if info.returncode == 0 else None
        ended = newest.stopped.timestamp() if newest else None
        stop = c.run(["pg_ctl", "stop", "-m", "fast", "-D", "/var/lib/postgresql/data"],
                     user="postgres", timeout=120)
        if stop.returncode != 0:
            raise OpsError(f"{service}: the restored server did not stop cleanly: {last_line(stop.stderr)}")
        c.run(["rm", "-f", "/var/lib/postgresql/data/restore.log"], user="postgres")
    whole_to = max(t for t in (float(replayed) if replayed else None, ended, 0.0) if t is not None)
    return (whole_to or None), (float(beat) if beat else None)


def run(platform, cfg, targets: measure.Targets, remote: str | None = None, out=sys.stderr,
        keep: bool = False) -> dict:
    """The drill of the Compose environment `platform`; its figures and the targets missed."""
    started = time.monotonic()
    env = platform.env
    remote = offsite.pick_remote(cfg.offsite, remote)
    site = platform.backup_site()
    try:
        beats = heartbeats(site)
        databases = dict(pitr.databases(site))
        images = {s: site.locate(s).image for s in databases}
    finally:
        site.close()
    _say(out, f"drill of --env {env}: heartbeats written to {', '.join(sorted(beats))}; "
              f"fetching the repository's copy from {remote}")
    project = f"{platform.settings.project}-drill-{secrets.token_hex(3)}"
    work = cfg.dest / f".drill-{project}"
    drill = platform.throwaway(project, free_port())
    try:
        work.mkdir(parents=True, exist_ok=True, mode=0o700)
        fetch(cfg, env, remote, work / "repo")
        model = drill.stack_config()
        repo_service = next(n for n, s in model["services"].items()
                            if (s.get("labels") or {}).get("ops.role") == pitr.REPO_ROLE)
        repo_key = _data_key(model, repo_service, "/var/lib/pgbackrest")
        repo_volume = model["volumes"][repo_key]["name"]
        _volume(repo_volume, project, repo_key)
        load_repository(next(iter(images.values())), work / "repo", repo_volume)
        restored = {}
        for service, user in sorted(databases.items()):
            key = _data_key(model, service, "/var/lib/postgresql/data")
            volume = model["volumes"][key]["name"]
            _volume(volume, project, key)
            _say(out, f"{service}: pgbackrest restore to the end of the copy's archive")
            restored[service] = restore_database(images[service], repo_volume, volume, service, user,
                                                 beats[service][0])
        _say(out, f"starting the stack as project {project}")
        drill.up(build=False)
        checks = drill.health()
        failing = [f"{c.service} {c.check}" for c in checks if not c.ok]
        rto = time.monotonic() - started
        dbs = [measure.Database(s, beats[s][1], restored[s][0],
                                restored[s][1] is not None and restored[s][1] >= beats[s][1])
               for s in sorted(restored)]
        missed = measure.verdict(rto, dbs, targets)
        if failing:
            missed.insert(0, f"health not green: {', '.join(failing)}")
        return {"env": env, "project": project, "remote": remote, "rto_s": round(rto, 1),
                "databases": [{"service": d.service, "rpo_s": None if d.rpo_s is None else round(d.rpo_s, 1),
                               "heartbeat_restored": d.heartbeat_restored} for d in dbs],
                "targets": {"rto_s": targets.rto_s, "rpo_s": targets.rpo_s},
                "missed": missed, "ok": not missed}
    finally:
        if not keep:
            try:
                drill.down(volumes=True)
            except OpsError as exc:
                _say(out, f"warning: the drill's project {project} was not removed: {exc}")
            _remove_labelled(project)
        shutil.rmtree(work, ignore_errors=True)


def _data_key(model: dict, service: str, target: str) -> str:
    for v in model["services"][service].get("volumes") or []:
        if v.get("type") == "volume" and v.get("target") == target and v.get("source"):
            return v["source"]
    raise OpsError(f"{service}: no named volume at {target} in the stack's compose files")


def _remove_labelled(project: str) -> None:
    """Volumes made for the drill that Compose did not take (a drill that failed early)."""
    listed = LOCAL.run(docker.volumes_labelled(f"com.docker.compose.project={project}"), "list volumes",
                       check=False)
    names = listed.stdout.split()
    if names:
        LOCAL.run(docker.volume_remove(*names), "remove volumes", check=False)
