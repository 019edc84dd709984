"""What every test process of one run shares. `scripts/test` runs the suite in two
pytest-xdist workers: this file is loaded first by the controller (or by the only
process), before any worker starts, so the workers inherit OPS_TEST_SHARED: one
directory per run for the gateway CA every test project trusts and for what the workers
must do once (build the api, leave Swarm mode). The process that made it removes it at
the very end, after every worker and every fixture is done."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

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
