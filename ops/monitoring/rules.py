"""Alert rules (pure): one group, thresholds from invoke.yaml's `monitoring:`.

Every alert carries `severity` (critical: someone must act now; warning: soon) and a
`service` label where one applies, which Alertmanager groups by."""

from __future__ import annotations

from ..commands.deploy_lock import METRIC as LOCK_METRIC
from ..tls import CRITICAL_DAYS, WARN_DAYS
from .promconfig import TASKS_PROBE, _duration
from .settings import Monitoring

ARCHIVE_LAG_S = 60  # the oldest WAL segment waiting to be archived (RPO target: 10 s)
WAL_WAITING_BYTES = 1 << 30  # WAL waiting in pg_wal because archiving does not keep up


def _rule(name: str, expr: str, severity: str, summary: str, for_: str, **labels) -> dict:
    return {"alert": name, "expr": expr, "for": for_,
            "labels": {"severity": severity, **labels},
            "annotations": {"summary": summary}}


def _down(metric: str, exporters) -> str:
    """`metric` == 0, or a scrape of one of `exporters` failing: a hung server keeps its
    exporter waiting past the scrape timeout, and then no `metric` is reported at all."""
    return " or ".join([f"{metric} == 0", *(f'up{{job="{job}"}} == 0' for job in sorted(exporters))])


def alerts(m: Monitoring, jobs=(), swarm: bool = False, roles=None) -> dict:
    """`jobs`: the scrape jobs found by DNS. A stopped container drops out of DNS, so its
    target vanishes instead of going down: each job also alerts when it has none.
    `swarm`: the rules whose metrics only a deployed stack has (the replicas it asks
    for, its deploy lock). `roles`: {job: ops.role of what it exports} (scrape_targets'
    `role`): a database's or cache's exporter that cannot answer counts as that server
    down."""
    t = m.threshold
    hold = _duration(m.alert_for)
    roles = roles or {}
    expiry = 'min by (env) (probe_ssl_earliest_cert_expiry{probe="live"}) - time()'
    exporters = {role: [j for j, r in roles.items() if r == role] for role in ("database", "cache")}
    missing = [_rule("TargetMissing", f'absent(up{{job="{job}"}})', "critical",
                     "no {{ $labels.job }} target: nothing answers to its DNS name", hold)
               for job in jobs]
    rules = [*missing,
        _rule("TargetDown", 'up{job!="node-exporter"} == 0', "critical",
              "{{ $labels.job }} target {{ $labels.instance }} is down", hold),
        _rule("NodeDown", 'up{job="node-exporter"} == 0', "critical",
              "node {{ $labels.node }} does not answer", hold),
        _rule("ApiErrorRatioHigh",
              # `or ... * 0`: no 5xx at all is a ratio of 0, not no data (the dashboards
              # and the expression test see the signal either way).
              '(sum by (env) (rate(http_requests_total{status=~"5.."}[5m])) or '
              'sum by (env) (rate(http_requests_total[5m])) * 0) / '
              f'sum by (env) (rate(http_requests_total[5m])) > {t("api_5xx_ratio")}',
              "critical", f"more than {t('api_5xx_ratio'):.0%} of api responses are 5xx", hold,
              service="api"),
        _rule("ApiLatencyP99High",
              "histogram_quantile(0.99, sum by (env, le) "
              f'(rate(http_request_duration_seconds_bucket[5m]))) > {t("api_p99_seconds")}',
              "warning", f"api p99 latency above {t('api_p99_seconds')}s", hold, service="api"),
        _rule("HealthProbeFailing", 'probe_success{probe=~"live|ready"} == 0', "critical",
              "{{ $labels.instance }} ({{ $labels.probe }}) fails through the gateway", hold),
        # The certificate users are served, as the blackbox probe saw it (the earliest
        # expiry of the chain: an intermediate expiring counts too).
        _rule("GatewayCertificateExpiring",
              f"{expiry} < {WARN_DAYS * 86400}",
              "warning", f"the gateway's TLS certificate expires within {WARN_DAYS} days", hold,
              service="gateway"),
        _rule("GatewayCertificateExpiringSoon",
              f"{expiry} < {CRITICAL_DAYS * 86400}",
              "critical", f"the gateway's TLS certificate expires within {CRITICAL_DAYS} days", hold,
              service="gateway"),
        _rule("PostgresDown", _down("pg_up", exporters["database"]), "critical",
              "database {{ $labels.service }} does not answer its exporter", hold),
        # Continuous archiving (pg_archiving_*: promconfig.postgres_queries): a failing
        # archive_command, segments waiting too long (the RPO grows), and pg_wal piling
        # up because of it, long before the database's disk fills.
        _rule("ArchivingFailing", "pg_archiving_last_failed_time > pg_archiving_last_archived_time",
              "critical", "WAL archiving of {{ $labels.service }} fails (pgBackRest archive-push)", hold),
        _rule("ArchivingLagging", f"pg_archiving_waiting_age_seconds > {ARCHIVE_LAG_S}", "critical",
              f"a WAL segment of {{{{ $labels.service }}}} has waited over {ARCHIVE_LAG_S}s to be "
              "archived", hold),
        _rule("WalPilingUp", f"pg_archiving_waiting * 16777216 > {WAL_WAITING_BYTES}", "warning",
              f"over {WAL_WAITING_BYTES >> 30} GiB of WAL of {{{{ $labels.service }}}} waits to be "
              "archived in pg_wal", hold),
        _rule("RedisDown", _down("redis_up", exporters["cache"]), "critical",
              "redis does not answer its exporter", hold, service="redis"),
        _rule("BrokerQueueDepthHigh",
              f'sum by (env) (rabbitmq_queue_messages_ready) > {t("queue_depth_max"):g}',
              "warning", f"more than {t('queue_depth_max'):g} messages wait in the broker", hold,
              service="rabbitmq"),
        _rule("BrokerConsumersLow",
              f'sum by (env) (rabbitmq_queue_consumers) < {t("consumers_min"):g}', "critical",
              f"fewer than {t('consumers_min'):g} consumers on the broker's queues", hold,
              service="rabbitmq"),
        _rule("DiskUsageHigh",
              '1 - node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"} / '
              f'node_filesystem_size_bytes{{fstype!~"tmpfs|overlay|squashfs"}} > {t("disk_used_ratio")}',
              "warning", f"{{{{ $labels.mountpoint }}}} on {{{{ $labels.node }}}} is over "
              f"{t('disk_used_ratio'):.0%} full", hold),
        _rule("BackupStale",
              "time() - ops_backup_last_success_timestamp_seconds > "
              f'{t("backup_max_age_hours") * 3600:g}', "critical",
              f"newest backup of {{{{ $labels.database }}}} is older than "
              f"{t('backup_max_age_hours'):g}h", "0s"),
        _rule("BackupFailed", "ops_backup_last_run_success == 0", "critical",
              "the last backup run of {{ $labels.database }} failed", "0s"),
        _rule("BackupUnverified", "ops_backup_last_verification_ok == 0", "critical",
              "the newest backup of {{ $labels.database }} failed its verification", "0s"),
        _rule("BaseBackupStale",
              "time() - ops_pgbackrest_last_base_backup_timestamp_seconds > "
              f'{t("base_backup_max_age_hours") * 3600:g}', "critical",
              f"newest base backup of {{{{ $labels.service }}}} is older than "
              f"{t('base_backup_max_age_hours'):g}h (a restore replays all the WAL since)", "0s"),
        _rule("RepositoryCopyStale",
              "time() - ops_pgbackrest_offsite_last_copy_timestamp_seconds > "
              f'{t("backup_max_age_hours") * 3600:g}', "critical",
              f"no proven copy of the pgBackRest repository reached {{{{ $labels.remote }}}} in "
              f"{t('backup_max_age_hours'):g}h", "0s"),
        _rule("DrDrillOverdue", "time() - ops_dr_last_pass_timestamp_seconds > 35 * 86400", "warning",
              "no disaster-recovery drill (inv dr.drill) of {{ $labels.env }} passed in 35 days", "0s"),
        _rule("RestoreDrillOverdue",
              "time() - ops_backup_last_restore_drill_timestamp_seconds > "
              f'{t("drill_max_age_hours") * 3600:g}', "warning",
              f"no restore drill of {{{{ $labels.database }}}} passed in "
              f"{t('drill_max_age_hours'):g}h", "0s"),
    ]
    if swarm:
        rules += [
            # Desired: written on the manager by every deploy, rollback, scale and
            # monitoring.up; serving: the tasks answering to the service's DNS name.
            _rule("ReplicasBelowDesired",
                  "max by (env, service) (ops_swarm_desired_replicas) > "
                  f'max by (env, service) (probe_dns_answer_rrs{{probe="{TASKS_PROBE}"}})',
                  "critical", "{{ $labels.service }} serves with fewer tasks than the "
                  "{{ $value }} it asks for", hold),
            _rule("DeployLockHeld",
                  f"time() - ({LOCK_METRIC} > 0) > {t('deploy_lock_ttl_seconds'):g}",
                  "warning", "the deploy lock has been held for longer than "
                  f"{t('deploy_lock_ttl_seconds'):g}s: a deploy hangs or its holder died "
                  "(`inv deploy.status`, `inv deploy.unlock`)", "0s", service="deploy"),
        ]
    return {"groups": [{"name": "ops", "rules": rules}]}
