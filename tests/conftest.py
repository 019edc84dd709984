"""What every test process of one run shares, and how the run is spread over workers.

`scripts/test` runs the suite in two pytest-xdist workers. This file is loaded first by
the controller (or by the only process), before any worker starts, so the workers
inherit OPS_TEST_SHARED: one directory per run for the gateway CA every test project
trusts and for what the workers must do once (build the api, leave Swarm mode). The
process that made it removes it at the very end, after every worker and fixture is done.

Each test module is one unit of work, so its module fixtures (a stack, a sandbox) are set
up once; the modules that share the sandbox are one unit. xdist's own `loadgroup` cannot
say that with pytest 9.2 (its group suffix no longer reaches the node id:
pytest-dev/pytest-xdist#1386), so the scheduler below groups by module itself."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

import pytest

# Integration modules that share the session's sandbox: one unit, one worker. The deploy
# scenarios that run on local-swarm (test_deploy.py's `[local-swarm]`) are a unit of
# their own, on the other worker.
SANDBOX_UNIT = {"test_sandbox", "test_deploy"}
LOCAL_SWARM = "local-swarm"
# The longest units first (the sandbox's alone in a worker; the other worker takes the
# rest in this order, then every other module as collected).
FIRST = ["sandbox", "test_deploy_registry", LOCAL_SWARM, "test_monitoring", "test_stack",
         "test_backup", "test_offsite", "test_restore_cron", "test_rotation"]

_OWNER = "OPS_TEST_SHARED" not in os.environ
if _OWNER:
    os.environ["OPS_TEST_SHARED"] = tempfile.mkdtemp(prefix="ops-test-run-")
SHARED = Path(os.environ["OPS_TEST_SHARED"])


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput") or not _OWNER:
        return
    from tests.support.swarm_mode import leave_if_asked

    try:
        leave_if_asked(SHARED)
    finally:
        shutil.rmtree(SHARED, ignore_errors=True)


def unit_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its module, the sandbox's unit, or the
    local-swarm deploy scenarios'."""
    path, _, name = nodeid.partition("::")
    stem = PurePosixPath(path).stem
    if stem not in SANDBOX_UNIT or "/integration/" not in path:
        return path
    return LOCAL_SWARM if f"{LOCAL_SWARM}" in name.partition("[")[2] else "sandbox"


def _rank(item) -> tuple[int, int]:
    unit = unit_of(item.nodeid)
    key = unit if unit in (LOCAL_SWARM, "sandbox") else PurePosixPath(unit).stem
    if "/integration/" in item.nodeid and key in FIRST:
        return 0, FIRST.index(key)
    return 1, 0


def pytest_collection_modifyitems(items):
    items.sort(key=_rank)  # stable: the rest keep their collected order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    config.option.loadscopereorder = False  # keep FIRST's order
    return ByModule(config, log)
