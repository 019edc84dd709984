"""The example api's JSON log lines (compose/api/app/logs.py, standard library only):
every line logged while a request or job is handled carries its ID."""

import importlib.util
import io
import json
import logging
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "app_logs", Path(__file__).resolve().parents[2] / "compose" / "api" / "app" / "logs.py")
logs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(logs)


def _lines(emit) -> list[dict]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    log = logging.getLogger("test-app-logs")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel("INFO")
    emit(log)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_every_line_inside_a_request_carries_its_id_and_none_outside():
    def emit(log):
        log.info("before")
        token = logs.REQUEST_ID.set("req-1")
        try:
            log.info("checking", extra={"dep": "db"})
            log.warning("enqueue failed", extra={"error": "x"})
        finally:
            logs.REQUEST_ID.reset(token)
        log.info("after")

    before, checking, failed, after = _lines(emit)
    assert "request_id" not in before and "request_id" not in after
    assert checking["request_id"] == failed["request_id"] == "req-1"
    assert checking["dep"] == "db" and failed["level"] == "warning"


def test_a_sane_caller_id_is_kept_and_anything_else_replaced():
    assert logs.request_id("3f2a-b.c:9_Z") == "3f2a-b.c:9_Z"
    for bad in (None, "", "a b", 'x"}{', "x" * 129, "id\nforged", "id\n"):
        new = logs.request_id(bad)
        assert new != bad and len(new) == 32 and new.isalnum()
    assert logs.request_id(None) != logs.request_id(None)
