"""The migration gate: squawk (the real binary, from this virtualenv) on SQL files, which
findings refuse and how the refusal reads; the step's order and its failure line."""

import json

import pytest

from ops.errors import OpsError
from ops.migrations import gate, lint, steps


def pending(sql, mid="0002.change", db="app"):
    return [{"database": db, "id": mid, "file": f"{db}/{mid}.sql", "sql": sql}]


@pytest.mark.parametrize(("sql", "rule"), [
    ("ALTER TABLE jobs DROP COLUMN request_id;", "ban-drop-column"),
    ("DROP TABLE jobs;", "ban-drop-table"),
    ("ALTER TABLE jobs RENAME COLUMN enqueued_by TO who;", "renaming-column"),
    ("ALTER TABLE jobs ADD COLUMN attempts bigint NOT NULL;", "adding-required-field"),
    ("CREATE INDEX jobs_by ON jobs (enqueued_by);", "require-concurrent-index-creation"),
    ("ALTER TABLE jobs ALTER COLUMN payload TYPE text;", "changing-column-type"),
    ("CREATE INDEX CONCURRENTLY jobs_by ON jobs (enqueued_by);", lint.CONCURRENT_IN_TRANSACTION),
    ("this is not sql;", "syntax-error"),
])
def test_what_breaks_the_live_color_or_locks_a_busy_table_refuses(sql, rule):
    found = gate.check(pending("-- a change\n" + sql + "\n"))
    line = lint.refusal(found)
    assert rule in {f.rule for f in found if f.breaking}
    assert line.startswith("migration app/0002.change.sql line 2: `")
    assert "Safe way: " in line and line.endswith("--allow-breaking runs it anyway")
    assert "\n" not in line


def test_the_refusal_quotes_the_whole_statement_and_counts_the_rest():
    found = gate.check(pending("ALTER TABLE jobs\n  DROP COLUMN request_id; -- gone\n"
                               "DROP TABLE old_jobs;\n"))
    line = lint.refusal(found)
    assert "`ALTER TABLE jobs DROP COLUMN request_id;`" in line and "(and 1 more)" in line


def test_expand_migrations_pass_and_advice_does_not_refuse():
    found = gate.check(pending(
        "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS attempts bigint;\n"
        "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS tries bigint NOT NULL DEFAULT 0;\n"))
    assert lint.refusal(found) is None
    found = gate.check(pending("-- transactional: false\n"
                               "CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_by ON jobs (enqueued_by);\n"))
    assert lint.refusal(found) is None
    assert not {"require-lock-timeout", "require-statement-timeout"} & {f.rule for f in found}


def test_the_pending_answer_is_checked_before_its_names_become_files():
    good = json.dumps([{"database": "app", "id": "0002.add-attempts", "sql": "SELECT 1;"}])
    assert lint.parse_pending("Container x Started\n" + good)[0]["file"] == "app/0002.add-attempts.sql"
    for bad in ([{"database": "app", "id": "../../etc/x", "sql": ""}],
                [{"database": "APP;rm", "id": "1", "sql": ""}], [{"database": "app", "id": "1"}],
                {"database": "app"}):
        with pytest.raises(ValueError):
            lint.parse_pending(json.dumps(bad))
    with pytest.raises(ValueError, match="JSON"):
        lint.parse_pending("Traceback (most recent call last):")
    assert lint.parse_pending("") == []


def test_transactional_is_read_from_the_header_only():
    assert lint.transactional("CREATE TABLE t (id bigint);")
    assert not lint.transactional("-- why\n-- transactional: false\nCREATE INDEX CONCURRENTLY x ON t (id);")
    assert lint.transactional("SELECT 1;\n" * 20 + "-- transactional: false\n")


def test_the_command_setting():
    assert steps.command("python3 -m app.migrate") == ["python3", "-m", "app.migrate"]
    assert steps.command(["bin/migrate", "--all"]) == ["bin/migrate", "--all"]
    assert steps.command("") == [] and steps.command(False) == []
    with pytest.raises(OpsError):
        steps.command(["ok", 3])


class Calls:
    def __init__(self, answer, code=0, detail=""):
        self.answer, self.code, self.detail, self.log = answer, code, detail, []

    def runner(self, archived=True):
        def point(name):
            self.log.append(("point", name))
            return [{"name": name}]

        def apply(say):
            self.log.append(("apply",))
            return self.code, self.detail

        return steps.Runner(lambda: self.answer, apply, lambda: point if archived else None)


def test_the_step_refuses_before_any_restore_point_or_change():
    calls = Calls(json.dumps(pending("ALTER TABLE jobs DROP COLUMN request_id;")))
    with pytest.raises(OpsError, match="ban-drop-column"):
        steps.run(calls.runner(), lambda line: None)
    assert calls.log == []
    said = []
    out = steps.run(calls.runner(), said.append, allow_breaking=True)
    assert [c[0] for c in calls.log] == ["point", "apply"]
    assert out["applied"] == ["app/0002.change.sql"] and out["restore_point"].startswith("pre-migrate-")
    assert any(line.startswith("warning: migration app/0002.change.sql") for line in said)


def test_a_failed_migration_names_itself_the_error_and_the_way_back():
    calls = Calls(json.dumps(pending("ALTER TABLE jobs ADD COLUMN IF NOT EXISTS n bigint;")), code=1,
                  detail='migration app/0002.change failed: relation "jobs" does not exist')
    with pytest.raises(OpsError) as exc:
        steps.run(calls.runner(), lambda line: None)
    assert str(exc.value).startswith('migration app/0002.change failed: relation "jobs" does not exist; '
                                     "the way back: inv db.restore --to-name pre-migrate-")
    calls.log.clear()
    with pytest.raises(OpsError) as exc:
        steps.run(calls.runner(archived=False), lambda line: None)
    assert "way back" not in str(exc.value) and calls.log == [("apply",)]


def test_nothing_pending_runs_nothing():
    calls = Calls("[]")
    assert steps.run(calls.runner(), lambda line: None)["pending"] == [] and calls.log == []


def test_the_error_line_is_the_commands_own():
    err = " Container a Running\nmigration app/0003 failed: boom\n Container a Stopped\n"
    assert steps.error_line(err) == "migration app/0003 failed: boom"
    assert steps.error_line("x\ny\n") == "y" and steps.error_line("") == ""


def test_the_swarm_job_carries_what_migrating_needs_and_nothing_else():
    from ops.commands import migrate_job
    from ops.commands.line import words

    svc = {"environment": {"APP_DB_HOST": "app-db", "APP_DB_PASSWORD_FILE": "/run/secrets/app_db_password"},
           "networks": ["backend", "edge"], "cap_drop": ["ALL"],
           "secrets": [{"source": "app_db_password", "target": "app_db_password", "mode": 292}],
           "healthcheck": {"test": ["CMD", "true"]}, "ports": [{"target": 8000}]}
    argv = words(migrate_job.create("shop", svc, "reg/api:v2", ["python3", "-m", "app.migrate"],
                                    {"app_db_password": "shop_app_db_password_0123abcd"}, "v2"))
    assert argv[:3] == ["docker", "service", "create"]
    assert argv[argv.index("--name") + 1] == "shop_migrate"
    assert argv[argv.index("--mode") + 1] == "replicated-job"
    assert "source=shop_app_db_password_0123abcd,target=app_db_password,mode=0444" in argv
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--network"] == ["shop_backend", "shop_edge"]
    assert "APP_DB_HOST=app-db" in argv and "--no-healthcheck" in argv and "--no-resolve-image" in argv
    assert argv[-4:] == ["reg/api:v2", "python3", "-m", "app.migrate"] and "--publish" not in argv
    with_registry = words(migrate_job.create("shop", svc, "reg/api:v2", ["m"],
                                             {"app_db_password": "x"}, "v2", registry_auth=True))
    assert "--with-registry-auth" in with_registry and "--no-resolve-image" not in with_registry


def test_the_jobs_state_is_its_newest_tasks():
    from ops.commands import migrate_job

    assert migrate_job.parse_state("") == ("pending", "")
    assert migrate_job.parse_state("Complete 2 seconds ago\t\n") == ("complete", "")
    assert migrate_job.parse_state("Failed 1 second ago\ttask: non-zero exit (1)\n") == (
        "failed", "task: non-zero exit (1)")
    assert migrate_job.parse_state("Running 1 second ago\t\n")[0] == "running"


def test_a_rollback_from_a_release_that_broke_the_schema_names_the_restore_point():
    ok = {"action": "deploy", "outcome": "ok", "to_tag": "v5",
          "migrations": {"applied": ["app/0003.drop.sql"], "restore_point": "pre-migrate-20261207T212743Z",
                         "findings": [{"file": "app/0003.drop.sql", "line": 1, "rule": "ban-drop-column",
                                       "breaking": True}]}}
    line = steps.rollback_warning([{"action": "deploy", "outcome": "ok", "to_tag": "v4"}, ok], "v5")
    assert line.startswith("warning: the deploy of v5 ran breaking migrations (app/0003.drop.sql)")
    assert "`inv db.restore --to-name pre-migrate-20261207T212743Z` is the way back" in line
    assert steps.rollback_warning([ok], "v4") is None  # another release is live
    expand = {**ok, "migrations": {**ok["migrations"], "findings": []}}
    assert steps.rollback_warning([expand], "v5") is None
