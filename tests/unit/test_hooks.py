"""Deploy hooks run as real processes (small shell scripts in a temporary project)."""

import stat
import time

import pytest

from ops.hooks import HookFailed, Hooks, variables


def hook(root, name, body):
    path = root / ".ops" / "hooks" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_hook_is_told_what_happens(tmp_path):
    out = tmp_path / "seen"
    hook(tmp_path, "pre-deploy", f'env | grep ^OPS_ | sort > "{out}"\n')
    said = []
    Hooks(tmp_path, {"env": "staging", "tag": "v2", "hosts": ["mgr1", "wrk1"], "previous_tag": None},
          say=said.append).run("pre-deploy", color="green")
    seen = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert seen["OPS_HOOK"] == "pre-deploy" and seen["OPS_ENV"] == "staging" and seen["OPS_TAG"] == "v2"
    assert seen["OPS_HOSTS"] == "mgr1,wrk1" and seen["OPS_COLOR"] == "green"
    assert "OPS_PREVIOUS_TAG" not in seen and "@" in seen["OPS_USER"] and seen["OPS_RECORDED_AT"]
    assert said == ["==> hook pre-deploy"]


def test_a_failing_pre_hook_stops_with_its_name_and_last_words(tmp_path):
    hook(tmp_path, "pre-switch", 'echo "checking" >&2; echo "smoke test failed: 3 of 5" >&2; exit 3\n')
    with pytest.raises(HookFailed) as exc:
        Hooks(tmp_path, say=lambda line: None).run("pre-switch")
    assert str(exc.value) == ("hook pre-switch (.ops/hooks/pre-switch): exit 3: smoke test failed: 3 of 5; "
                              "nothing was switched")


def test_a_failing_post_hook_is_reported_not_raised(tmp_path):
    hook(tmp_path, "post-deploy", "exit 1\n")
    said = []
    Hooks(tmp_path, say=said.append).run("post-deploy")
    assert said[-1] == "warning: hook post-deploy (.ops/hooks/post-deploy): exit 1 (reported, not undone)"


def test_missing_is_no_hook_and_not_executable_is_said(tmp_path):
    Hooks(tmp_path, say=lambda line: None).run("pre-deploy")  # nothing there: nothing run
    path = hook(tmp_path, "pre-deploy", "exit 0\n")
    path.chmod(0o644)
    with pytest.raises(HookFailed, match="not an executable file"):
        Hooks(tmp_path, say=lambda line: None).run("pre-deploy")
    with pytest.raises(ValueError):
        Hooks(tmp_path).run("pre-anything")


def test_a_hung_hook_is_ended_with_its_children(tmp_path):
    pidfile = tmp_path / "child"
    hook(tmp_path, "pre-build", f'sleep 60 & echo $! > "{pidfile}"; wait\n')
    with pytest.raises(HookFailed, match="still running after 1s"):
        Hooks(tmp_path, say=lambda line: None, timeout=1).run("pre-build")
    status = f"/proc/{int(pidfile.read_text())}/status"

    def running() -> bool:  # gone, or a zombie waiting for whoever inherited it: not running
        try:
            return "\nState:\tZ" not in open(status).read()
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 5  # SIGKILL is delivered when the process next runs
    while running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running()


def test_variables_are_strings():
    v = variables("post-deploy", {"seconds": 12.5, "hosts": ("a",), "url": None})
    assert v["OPS_SECONDS"] == "12.5" and v["OPS_HOSTS"] == "a" and "OPS_URL" not in v
