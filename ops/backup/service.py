"""Backup operations over a site (the local Compose project or a deployed Swarm stack,
`sites.py`): the functions behind the db.* tasks. Backups always land on this machine,
under BACKUP_DIR/<env>/."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..config import Settings
from ..errors import OpsError
from ..facts.values import number_option
from . import base_schedule, layout, manifest, metrics, offsite, retention, targets
from . import prune as prune_mod
from . import restore as restore_mod
from . import verify as verify_mod
from .db_lock import DbLock
from .pgexec import Database
from .take import take


@dataclass(frozen=True)
class BackupConfig:
    dest: Path
    attempts: int = 3
    verify_level: str = "read"  # right after each backup
    policy: retention.Policy = field(default_factory=retention.Policy)
    prune_after: bool = True
    drill_every_hours: float = 24.0  # cron: restore drill of the newest backup when older
    metrics_file: Path | None = None
    webhook_url: str = ""
    zstd_level: int | None = 3  # None: pg_dump's own compression
    offsite: offsite.Offsite = field(default_factory=offsite.Offsite)
    drill_on: str = "here"  # where restore drills run on a Swarm environment: here | manager
    pitr: base_schedule.Policy = field(default_factory=base_schedule.Policy)


def metrics_path(configured: str, dest: Path, root: Path, env: str) -> Path | None:
    """Each environment has its own file (each is rewritten whole from its own backups):
    `ops_backup.prom` for local, `ops_backup_<env>.prom` beside it for the others."""
    if configured == "none":
        return None
    path = dest / "metrics" / "ops_backup.prom" if configured in ("", "default") else Path(configured)
    path = path if path.is_absolute() else root / path
    if env == "local":
        return path
    return path.with_name(f"{path.stem}_{layout.safe_part('environment', env)}{path.suffix}")


def backup_config(settings: Settings, raw: dict) -> BackupConfig:
    dest = Path(settings.variables.get("BACKUP_DIR") or "backups")
    dest = dest if dest.is_absolute() else settings.root / dest
    level = str(raw.get("verify_after", "read"))
    if level not in ("none", *manifest.LEVELS):
        raise OpsError(f"backup.verify_after must be none, checksum, read or restore, not {level!r}")
    keep = raw.get("keep") or {}
    try:
        policy = retention.Policy(**{k: keep[k] for k in ("last", "daily", "weekly", "monthly")
                                     if k in keep})
    except (TypeError, ValueError) as exc:
        raise OpsError(f"invoke.yaml backup settings: {exc}") from exc
    attempts = number_option(raw.get("attempts", 3), "backup.attempts", 1, 100, integer=True)
    drill = number_option(raw.get("drill_every_hours", 24), "backup.drill_every_hours", 0, 24 * 366)
    # Default: beside the backups it describes (BACKUP_DIR/metrics/ops_backup.prom).
    metrics = metrics_path(str(raw.get("metrics_file") or ""), dest, settings.root, settings.env)
    return BackupConfig(dest, attempts, level, policy, bool(raw.get("prune_after", True)), drill,
                        metrics, settings.variables.get("BACKUP_WEBHOOK_URL", ""),
                        zstd_level(str(raw.get("compression", "auto")), raw.get("zstd_level", 3)),
                        offsite.offsite_config(raw.get("offsite"), settings.variables),
                        drill_place(raw.get("drill_on", "here"), "backup.drill_on"),
                        base_schedule.policy(raw.get("pitr")))


def drill_place(value, what: str) -> str:
    value = str(value)
    if value not in ("here", "manager"):
        raise OpsError(f"{what} must be here or manager, not {value!r}")
    return value


def zstd_level(mode: str, level) -> int | None:
    """`auto`: zstd when the host has it (faster, see scripts/bench-backup), else pg_dump's."""
    if mode not in ("auto", "zstd", "pg_dump"):
        raise OpsError(f"backup.compression must be auto, zstd or pg_dump, not {mode!r}")
    if mode == "pg_dump" or (mode == "auto" and shutil.which("zstd") is None):
        return None
    if shutil.which("zstd") is None:
        raise OpsError("backup.compression is zstd but no zstd on PATH (apt-get install zstd)")
    return number_option(level, "backup.zstd_level", 1, 19, integer=True)


def drill_due(directory: Path, every_hours: float, enabled: bool) -> bool:
    """A restore drill is due when no backup here passed one within `every_hours`."""
    if not enabled or every_hours <= 0:
        return False
    now = datetime.now(UTC)
    for b in layout.backups_in(directory):
        entry = manifest.last_verification(manifest.read(b.manifest_path), "restore")
        if entry and entry.get("ok"):
            if (now - datetime.fromisoformat(entry["at"])).total_seconds() < every_hours * 3600:
                return False
    return True


def backup(site, cfg: BackupConfig, services=(), db=None, out=sys.stderr,
           drills: bool = False, reason: str = "manual", base: str | None = None) -> list[dict]:
    """Back up every selected database; each is verified at cfg.verify_level right away.
    Then, unless one database was chosen, each service's pgBackRest base backup (`base`:
    full, diff or incr; default: what backup.pitr says is due).

    Every target is attempted even when one fails, or when a whole service cannot be
    reached; each failure is recorded as a failed run (metrics) and all are raised
    together.
    """
    from .pitr import Busy as pitr_busy

    env = site.env
    results, failures, codes = [], [], []

    def failed(directory: Path, label: str, exc: OpsError) -> None:
        failures.append(f"{label}: {exc}")
        codes.append(exc.code)
        results.append({"target": label, "error": str(exc), "code": exc.code})
        if exc.code != 75:  # a refused overlap says nothing about the database
            metrics.record_run(directory, False, datetime.now(UTC), str(exc))

    found, unreachable = targets.discover(site, services, db, cfg.attempts,
                                          known=lambda svc: known_dbs(cfg, env, svc))
    for u in unreachable:
        for name in u.dbs:
            failed(layout.db_dir(cfg.dest, env, u.service, name), f"{u.service}/{name}", u.error)
    for target in found:
        directory = layout.db_dir(cfg.dest, env, target.service, target.db)
        try:
            with site.manager_lock(target.service, target.db):
                b = take(target, directory, env, cfg.attempts, out=out, reason=reason,
                         zstd_level=cfg.zstd_level)
            entry = None
            checker = site.checker(target.service, target.image)
            if cfg.verify_level != "none":
                entry = verify_mod.verify(b, cfg.verify_level, checker, target.image,
                                          site.drill_machine(cfg.drill_on, target.image))
            result = {"target": target.label(), "file": str(b.path),
                      "verified": entry["level"] if entry else None, "pruned": []}
            if cfg.prune_after:  # only ever after a successful (and verified) backup
                result["pruned"] = [str(p.path) for p, _ in prune_mod.prune(directory, cfg.policy)]
            if drill_due(directory, cfg.drill_every_hours, drills):
                verify_mod.verify(b, "restore", checker, target.image,
                                  site.drill_machine(cfg.drill_on, target.image))
                result["drilled"] = True
            # Off-site only once proven here; a failed upload fails the run but keeps
            # the local backup (it is complete and verified).
            for remote in cfg.offsite.remotes:
                try:
                    result.setdefault("offsite", []).append(offsite.upload(cfg.offsite, b, env, remote))
                except OpsError as exc:
                    raise OpsError(f"off-site copy to {remote} failed, the local backup "
                                   f"{b.path.name} is kept: {exc}") from exc
            results.append(result)
            metrics.record_run(directory, True, datetime.now(UTC))
        except OpsError as exc:
            failed(directory, target.label(), exc)
    if db is None and cfg.pitr.enabled:
        # A service whose dump another run holds is that run's to back up whole.
        held = {r["target"].split("/")[0] for r in results if r.get("code") == 75}
        down = {u.service for u in unreachable}  # its failure is said already; pgBackRest
        # would only wait out its own timeouts against it
        for service in sorted({t.service for t in found} | down):
            if service in held:
                continue
            if service in down:
                results.append({"target": f"{service} (pgBackRest)",
                                "skipped": "the database is unreachable"})
                continue
            try:
                results.append(base_backup(site, cfg, service, base))
            except pitr_busy as exc:
                results.append({"target": f"{service} (pgBackRest)", "skipped": str(exc)})
            except OpsError as exc:
                failures.append(f"{service} (pgBackRest): {exc}")
                codes.append(exc.code)
                results.append({"target": f"{service} (pgBackRest)", "error": str(exc)})
    if db is None and cfg.pitr.enabled and cfg.offsite.enabled:
        try:
            results.append(repository_copy(site, cfg))
        except OpsError as exc:
            failures.append(f"pgBackRest repository: {exc}")
            codes.append(exc.code)
            results.append({"target": "pgBackRest repository", "error": str(exc)})
    if cfg.prune_after and found:
        for remote in cfg.offsite.remotes:
            try:
                offsite.prune(cfg.offsite, env, remote)
            except OpsError as exc:
                failures.append(f"off-site retention on {remote}: {exc}")
                codes.append(exc.code)
    write_metrics(site, cfg)
    if failures:
        # One line for cron; a lock conflict keeps its own exit code (75, EX_TEMPFAIL).
        code = 75 if set(codes) == {75} else 1
        raise OpsError("backup failed: " + " | ".join(failures), code=code)
    return results


def base_backup(site, cfg: BackupConfig, service: str, kind: str | None = None) -> dict:
    """One service's pgBackRest base backup, of the kind due unless `kind` is given."""
    from . import pitr

    done = pitr.base_backup(site, pitr.repository(site), service, kind, cfg.pitr,
                            verify=cfg.verify_level != "none")
    if done["label"]:
        metrics.record_base(cfg.dest / layout.safe_part("environment", site.env) / service,
                            done["type"], done["label"], done["stopped"])
    return {"target": f"{service} (pgBackRest)", "base": done}


def repository_copy(site, cfg: BackupConfig) -> dict:
    """The pgBackRest repository mirrored here, then to every off-site remote, each
    proven; a remote that fails is named and the others are still copied to."""
    from . import pitr, repo_mirror

    root = repo_mirror.mirror_dir(cfg.dest, site.env)
    mirrored = repo_mirror.pull(pitr.repository(site), root)
    copies, failed = [], []
    for remote in cfg.offsite.remotes:
        try:
            copies.append(repo_mirror.push(cfg.offsite, root, site.env, remote))
            metrics.record_repo_copy(root.parent, remote, datetime.now(UTC))
        except OpsError as exc:
            failed.append(f"off-site copy to {remote} failed: {exc}")
    if failed:
        raise OpsError(" | ".join(failed))
    return {"target": "pgBackRest repository", "mirror": mirrored, "offsite": copies}


def known_dbs(cfg: BackupConfig, env: str, service: str) -> list[str]:
    """The databases a service had backups of (their directories), oldest name first."""
    root = cfg.dest / layout.safe_part("environment", env) / service
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def write_metrics(site, cfg: BackupConfig) -> None:
    """Rewrite the environment's metrics from what is on disk, and hand them to the
    site (a Swarm manager's textfile directory); a failed hand-over is a warning."""
    if not cfg.metrics_file:
        return
    metrics.write(cfg.metrics_file, site.env, cfg.dest / site.env)
    try:
        site.publish_metrics(cfg.metrics_file)
    except OpsError as exc:
        print(f"warning: backup metrics not published on --env {site.env}: {exc}", file=sys.stderr)


def all_backups(cfg: BackupConfig, env: str, service: str | None = None) -> list[layout.Backup]:
    root = cfg.dest / layout.safe_part("environment", env)
    if not root.is_dir():
        return []
    found = []
    for svc_dir in layout.service_dirs(root):
        if service and svc_dir.name != service:
            continue
        for db_dir in sorted(p for p in svc_dir.iterdir() if p.is_dir()):
            found += layout.backups_in(db_dir)
    return found


def pick(cfg: BackupConfig, env: str, file: str | None, latest: bool, service: str | None,
         db: str | None) -> list[layout.Backup]:
    if file and latest:
        raise OpsError("give a FILE or --latest, not both")
    if file:
        return [layout.resolve_file(cfg.dest, file)]
    if not latest:
        raise OpsError("name a backup FILE or use --latest")
    newest: dict[tuple[str, str], layout.Backup] = {}
    for b in all_backups(cfg, env, service):
        if db and b.db != db:
            continue
        newest[(b.service, b.db)] = b  # sorted oldest first: the last one wins
    if not newest:
        raise OpsError(f"no backups found under {cfg.dest / env}"
                       + (f" for {service}" if service else "") + (f"/{db}" if db else ""))
    return list(newest.values())


def verify(site, cfg: BackupConfig, backups, level: str) -> list[dict]:
    out, failures = [], []
    for b in backups:
        try:
            checker = image = None
            if level != "checksum":
                image = manifest.read(b.manifest_path).get("image") or ""
                checker = site.checker(b.service, image)
            drill_on = site.drill_machine(cfg.drill_on, image if level == "restore" else None)
            entry = verify_mod.verify(b, level, checker, image, drill_on)
            out.append({"file": str(b.path), **entry})
        except OpsError as exc:
            failures.append(str(exc))
    # The outcome is in the manifests now: refresh the metrics, or a manual drill (or a
    # failed check) would stay invisible to the alerts until the next backup.
    if backups:
        write_metrics(site, cfg)
    if failures:
        raise OpsError(" | ".join(failures))
    return out


def describe(b: layout.Backup, now: datetime | None = None) -> dict:
    now = now or datetime.now(UTC)
    try:
        data = manifest.read(b.manifest_path)
    except OpsError as exc:
        return {"file": str(b.path), "service": b.service, "database": b.db, "error": str(exc)}
    last = manifest.last_verification(data)
    return {
        "file": str(b.path), "service": b.service, "database": b.db,
        "taken_at": data.get("started_at"), "size": data.get("size"), "reason": data.get("reason"),
        "age_s": int((now - b.taken_at).total_seconds()),
        "verified": manifest.verified_level(data),
        "failed": manifest.failed(data),
        "last_check": last,
    }


def prune(cfg: BackupConfig, env: str, service: str | None, dry_run: bool, site=None):
    out = []
    dirs = sorted({b.path.parent for b in all_backups(cfg, env, service)})
    for directory in dirs:
        out += prune_mod.prune(directory, cfg.policy, dry_run)
    if site is not None and not dry_run:
        write_metrics(site, cfg)
    return out


def notify_failure(url: str, env: str, message: str, out=sys.stderr) -> None:
    """POST the failure to a webhook (retried); a notification failure is only a warning."""
    if not url:
        return
    import requests
    from tenacity import Retrying, stop_after_attempt, wait_exponential

    try:
        for attempt in Retrying(stop=stop_after_attempt(3), wait=wait_exponential(min=1, max=5),
                                reraise=True):
            with attempt:
                resp = requests.post(url, json={"text": f"[{env}] {message}", "env": env,
                                                "source": "ops db.backup"}, timeout=10)
                resp.raise_for_status()
    except requests.RequestException as exc:
        print(f"warning: failure webhook not delivered: {type(exc).__name__}", file=out)


@dataclass(frozen=True)
class RestorePlan:
    backup: layout.Backup
    data: dict
    target: Database
    image: str


def prepare_restore(site, cfg: BackupConfig, service: str, file: str | None,
                    latest: bool, db: str | None) -> RestorePlan:
    """Everything checked before asking the user: the backup belongs to the service, was
    never found failing, and passes checksum + read now; the target database exists."""
    chosen = pick(cfg, site.env, file, latest, service, db if latest else None)[0]
    if chosen.service != service:
        raise OpsError(f"{chosen.path.name} is a backup of {chosen.service}, not {service}")
    data = manifest.read(chosen.manifest_path)
    restore_mod.refuse_unverified(chosen, data)
    found, unreachable = targets.discover(site, [service], db or chosen.db, cfg.attempts)
    if unreachable:
        raise unreachable[0].error
    target = found[0]
    verify_mod.verify(chosen, "read", site.checker(service, target.image), target.image)
    return RestorePlan(chosen, data, target, target.image)


def run_restore(site, cfg: BackupConfig, plan: RestorePlan):
    """Safety backup (verified), then restore beside and swap under the database's lock."""
    t = plan.target
    env = site.env
    directory = layout.db_dir(cfg.dest, env, t.service, t.db)
    with site.manager_lock(t.service, t.db):
        safety = take(t, directory, env, cfg.attempts, zstd_level=cfg.zstd_level,
                      reason=f"safety copy before restoring {plan.backup.path.name}")
        verify_mod.verify(safety, "read", site.checker(t.service, plan.image), plan.image)
        with DbLock(directory, f"restore of {t.service}/{t.db}"):
            result = restore_mod.restore(plan.backup, plan.data, t)
    return safety, result


# -- off-site ---------------------------------------------------------------------------

def offsite_list(cfg: BackupConfig, env: str, remote: str | None = None,
                 service: str | None = None) -> list[offsite.RemoteBackup]:
    found = []
    for r in offsite.remotes_of(cfg.offsite, remote):
        found += [b for b in offsite.listing(cfg.offsite, env, r) if not service or b.service == service]
    return found


def offsite_pick(cfg: BackupConfig, env: str, remote: str | None, file: str | None,
                 latest: bool, service: str | None, db: str | None) -> list[offsite.RemoteBackup]:
    """Remote copies by name (`--file <ts>.dump.zst`, with --service/--db when the name
    is not unique) or the newest complete one of each database."""
    if bool(file) == bool(latest):
        raise OpsError("name an off-site backup with --file NAME, or use --latest")
    found = [b for b in offsite_list(cfg, env, remote, service) if not db or b.db == db]
    if file:
        name = Path(file).name
        chosen = [b for b in found if b.name == name]
        if not chosen:
            raise OpsError(f"{name}: no such off-site backup of --env {env}")
        if len({(b.service, b.db) for b in chosen}) > 1:
            raise OpsError(f"{name} names backups of several databases: add --service/--db")
        return chosen[:1]
    newest: dict[tuple[str, str], offsite.RemoteBackup] = {}
    for b in found:
        if b.complete:
            newest[(b.service, b.db)] = b
    if not newest:
        raise OpsError(f"no complete off-site backup of --env {env}"
                       + (f" for {service}" if service else "") + (f"/{db}" if db else ""))
    return list(newest.values())


def offsite_verify(site, cfg: BackupConfig, copies, level: str) -> list[dict]:
    """Download each copy and prove it here at `level`; the outcome is recorded in the
    local manifest of the same backup, when there is one. The download is removed."""
    out, failures = [], []
    for rb in copies:
        local = None
        try:
            local = offsite.fetch(cfg.offsite, rb, cfg.dest)
            entry = verify(site, cfg, [local], level)[0]
            out.append({**entry, "file": rb.path})
        except OpsError as exc:
            failures.append(f"{rb.path}: {exc}")
            entry = {"ok": False, "level": level, "detail": str(exc)}
        finally:
            if local is not None:
                prune_mod.remove(local)
        mine = layout.db_dir(cfg.dest, rb.env, rb.service, rb.db) / f"{rb.name}.json"
        if mine.exists():
            offsite.record_check(mine, rb, level, entry.get("ok", False))
    if failures:
        raise OpsError(" | ".join(failures))
    return out
