"""Prometheus textfile metrics (node_exporter's textfile collector), rebuilt on every
run from what is on disk, so a database missing from one run keeps its series."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from ..facts.values import load_json
from ..files import write_atomic
from . import layout, manifest

LAST_RUN = ".last-run.json"
LAST_BASE = ".last-base-backup.json"  # in a service's directory: its newest base backup
REPO_COPIES = ".pgbackrest-copies.json"  # in an environment's directory: {remote: when}
DR_DRILL = ".dr-drill.json"  # in an environment's directory: the newest passed dr.drill

HELP = {
    "ops_backup_last_success_timestamp_seconds": "Start time of the newest complete backup.",
    "ops_backup_last_duration_seconds": "Duration of the newest complete backup.",
    "ops_backup_last_size_bytes": "Size of the newest complete backup.",
    "ops_backup_last_verification_ok": "1 if the newest backup's latest verification passed.",
    "ops_backup_last_restore_drill_timestamp_seconds": "Time of the newest passed restore drill.",
    "ops_backup_last_run_success": "1 if the latest backup run of this database succeeded.",
    "ops_backup_last_run_timestamp_seconds": "Time of the latest backup run of this database.",
    "ops_backup_count": "Complete backups on disk.",
    "ops_backup_offsite_last_copy_timestamp_seconds":
        "Start time of the newest backup with a proven copy on this off-site remote.",
    "ops_pgbackrest_offsite_last_copy_timestamp_seconds":
        "Time of the newest proven copy of the pgBackRest repository on this off-site remote.",
    "ops_dr_last_pass_timestamp_seconds": "Time of the newest dr.drill that met its targets.",
    "ops_dr_last_rto_seconds": "RTO the newest passed dr.drill measured.",
    "ops_dr_last_rpo_seconds": "Worst RPO over the databases in the newest passed dr.drill.",
    "ops_pgbackrest_last_base_backup_timestamp_seconds":
        "End time of the service's newest pgBackRest base backup (a restore can start there).",
}


def record_run(directory: Path, ok: bool, at: datetime, error: str = "") -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(directory / LAST_RUN, json.dumps({"ok": ok, "at": at.isoformat(), "error": error}))


def record_base(directory: Path, kind: str, label: str, stopped: datetime) -> None:
    """A service's newest base backup (directory: the service's, beside its databases')."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(directory / LAST_BASE, json.dumps({"type": kind, "label": label,
                                                    "stopped": stopped.isoformat()}))


def record_repo_copy(env_root: Path, remote: str, at: datetime) -> None:
    path = env_root / REPO_COPIES
    known = load_json(path.read_text(), str(path)) if path.exists() else {}
    env_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, json.dumps({**known, remote: at.isoformat()}))


def record_drill(env_root: Path, at: datetime, rto_s: float, rpo_s: float) -> None:
    env_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(env_root / DR_DRILL, json.dumps({"at": at.isoformat(), "rto_s": rto_s, "rpo_s": rpo_s}))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def samples_for(env: str, directory: Path) -> list[tuple[str, dict, float]]:
    labels = {"env": env, "service": directory.parent.name, "database": directory.name}
    out = []
    backups = layout.backups_in(directory)
    out.append(("ops_backup_count", labels, len(backups)))
    if backups:
        newest = backups[-1]
        data = manifest.read(newest.manifest_path)
        out.append(("ops_backup_last_success_timestamp_seconds", labels,
                    datetime.fromisoformat(data["started_at"]).timestamp()))
        out.append(("ops_backup_last_duration_seconds", labels, data.get("duration_s", 0)))
        out.append(("ops_backup_last_size_bytes", labels, data.get("size", 0)))
        last = manifest.last_verification(data)
        if last:
            out.append(("ops_backup_last_verification_ok", {**labels, "level": last["level"]},
                        1 if last.get("ok") else 0))
        drills = [datetime.fromisoformat(e["at"]).timestamp()
                  for b in backups for e in manifest.read(b.manifest_path).get("verifications", [])
                  if e.get("level") == "restore" and e.get("ok")]
        if drills:
            out.append(("ops_backup_last_restore_drill_timestamp_seconds", labels, max(drills)))
        copied: dict[str, float] = {}
        for b in reversed(backups):  # newest first: the first copy seen per remote wins
            described = manifest.read(b.manifest_path)
            for c in described.get("offsite") or []:
                if c.get("verified_at") and c.get("remote") not in copied:
                    copied[c["remote"]] = datetime.fromisoformat(described["started_at"]).timestamp()
        for remote, at in sorted(copied.items()):
            out.append(("ops_backup_offsite_last_copy_timestamp_seconds",
                        {**labels, "remote": remote}, at))
    run_file = directory / LAST_RUN
    if run_file.exists():
        run = load_json(run_file.read_text(), f"{run_file}")
        out.append(("ops_backup_last_run_success", labels, 1 if run.get("ok") else 0))
        out.append(("ops_backup_last_run_timestamp_seconds", labels,
                    datetime.fromisoformat(run["at"]).timestamp()))
    return out


def render(samples) -> str:
    by_name: dict[str, list] = {}
    for name, labels, value in samples:
        by_name.setdefault(name, []).append((labels, value))
    lines = []
    for name in sorted(by_name):
        lines += [f"# HELP {name} {HELP[name]}", f"# TYPE {name} gauge"]
        for labels, value in by_name[name]:
            text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items()))
            lines.append(f"{name}{{{text}}} {float(value)!r}")
    return "\n".join(lines) + "\n"


def write(path: Path, env: str, env_root: Path) -> None:
    samples = []
    for svc in layout.service_dirs(env_root):
        for db in sorted(p for p in svc.iterdir() if p.is_dir()):
            samples += samples_for(env, db)
        base = svc / LAST_BASE
        if base.exists():
            stopped = load_json(base.read_text(), str(base))["stopped"]
            samples.append(("ops_pgbackrest_last_base_backup_timestamp_seconds",
                            {"env": env, "service": svc.name},
                            datetime.fromisoformat(stopped).timestamp()))
    copies = env_root / REPO_COPIES
    if copies.exists():
        for remote, at in sorted(load_json(copies.read_text(), str(copies)).items()):
            samples.append(("ops_pgbackrest_offsite_last_copy_timestamp_seconds",
                            {"env": env, "remote": remote}, datetime.fromisoformat(at).timestamp()))
    drill = env_root / DR_DRILL
    if drill.exists():
        d = load_json(drill.read_text(), str(drill))
        labels = {"env": env}
        at = datetime.fromisoformat(d["at"]).timestamp()
        samples += [("ops_dr_last_pass_timestamp_seconds", labels, at),
                    ("ops_dr_last_rto_seconds", labels, d["rto_s"]),
                    ("ops_dr_last_rpo_seconds", labels, d["rpo_s"])]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, render(samples), mode=0o644)
