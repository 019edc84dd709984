"""The migration step on a Swarm environment: the app's migrate command run once in the
image to deploy, as a job service of the stack (ops/commands/migrate_job.py) on its
networks with its secrets, waited for, its output read back, removed."""

from __future__ import annotations

import time

from ...commands import migrate_job
from ...errors import OpsError
from ...migrations import steps
from .deployment import Deployment

DONE = {"complete", "failed", "rejected", "shutdown", "orphaned", "remove"}


def run_job(d: Deployment, plan, tag: str, argv: list[str], timeout: float) -> tuple[int, str, str]:
    """(exit: 0 when the task completed, stdout, stderr) of one run of `argv`; the job is
    removed afterwards whatever happens (its database session with it: a migration cut
    off by the timeout rolls back)."""
    svc = plan.t.services[plan.t.blue_green]
    secrets, _ = plan.names()
    d.target.run(migrate_job.remove(d.app), "remove a migrate job left behind", check=False)
    try:
        d.target.run(migrate_job.create(d.app, svc, plan.rel.app_ref(tag), argv, secrets, tag,
                                        registry_auth=d.registry_auth is not None),
                     "start the migrate job")
        deadline = time.monotonic() + timeout
        while True:
            state, error = migrate_job.parse_state(
                d.target.run(migrate_job.state(d.app), "the migrate job's state", check=False).stdout)
            if state in DONE:
                break
            if time.monotonic() > deadline:
                raise OpsError(f"the migrate command did not finish within {timeout:.0f}s "
                               "(stopped: its open transaction rolled back); deploy.migrate_timeout "
                               "sets the limit")
            time.sleep(0.5)
        out = d.target.run(migrate_job.logs(d.app), "the migrate job's output", check=False)
        code = 0 if state == "complete" else 1
        return code, out.stdout, out.stderr if code == 0 else (out.stderr or error)
    finally:
        d.target.run(migrate_job.remove(d.app), "remove the migrate job", check=False)


def runner(d: Deployment, plan, tag: str, argv: list[str], timeout: float,
           restore_point) -> steps.Runner:
    def pending() -> str:
        code, out, err = run_job(d, plan, tag, [*argv, "--pending"], timeout)
        if code != 0:
            raise OpsError(f"the migrate command ({tag}, --pending): {steps.error_line(err) or 'failed'}")
        return out

    def apply(say) -> tuple[int, str]:
        code, out, err = run_job(d, plan, tag, argv, timeout)
        for line in out.splitlines():
            if line.strip():
                say(line.rstrip())
        return code, steps.error_line(err)

    return steps.Runner(pending, apply, restore_point)
