"""The builders' one command type: lines made from argv and combined, checked by their
text and by what a real `sh` does with them (hostile values stay single words)."""

from __future__ import annotations

import subprocess

import pytest

from ops import shell
from ops.commands import deploy, deploy_lock
from ops.commands.line import (
    Line,
    absent,
    all_of,
    cmd,
    either,
    group,
    is_file,
    mkdir_p,
    pipe,
    script,
    seq,
    subshell,
    when,
)

HOSTILE = "a b'; touch pwned-$(id -u) #\n`touch x`"  # would write into the cwd


def sh(line: Line, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", line], cwd=cwd, capture_output=True, text=True, timeout=10)


def test_a_plain_command_keeps_its_argv_and_quotes_every_word():
    line = cmd("echo", HOSTILE, 3)
    assert line.argv == ["echo", HOSTILE, "3"]
    assert line == "echo 'a b'\"'\"'; touch pwned-$(id -u) #\n`touch x`' 3"


def test_combined_lines_run_through_sh_and_have_no_argv_of_their_own():
    line = all_of(cmd("true"), cmd("echo", "x"))
    assert line == "true && echo x" and line.argv == ["sh", "-c", "true && echo x"]
    assert pipe(cmd("a"), cmd("b")) == "a | b" and seq(cmd("a"), cmd("b")) == "a; b"
    assert either(cmd("a"), cmd("b")) == "a || b"
    assert group(cmd("a")) == "{ a; }" and subshell(cmd("a")) == "(a)"
    assert when(is_file("/x y"), cmd("cat", "/x y"), cmd("true")) == \
        "if [ -f '/x y' ]; then cat '/x y'; else true; fi"
    assert all_of(cmd("a"), "", cmd("b")) == "a && b"  # an empty part is left out


def test_redirections_quote_their_paths():
    assert cmd("echo", "x").to("/t/a b") == "echo x > '/t/a b'"
    assert cmd("echo", "x").append_to("/t/a") == "echo x >> /t/a"
    assert cmd("a").quiet() == "a >/dev/null" and cmd("a").silent() == "a >/dev/null 2>&1"
    assert cmd("a").merged().or_true() == "a 2>&1 || true"
    assert cmd("a").no_errors().background() == "a 2>/dev/null &"


def test_what_sh_does_with_hostile_values(tmp_path):
    target = tmp_path / HOSTILE.replace("\n", "_")
    made = sh(all_of(mkdir_p(str(tmp_path / "d")),
                     cmd("printf", "%s", HOSTILE).to(str(target))), tmp_path)
    assert made.returncode == 0, made.stderr
    assert target.read_text() == HOSTILE and (tmp_path / "d").is_dir()
    read = sh(when(is_file(str(target)), cmd("cat", str(target))), tmp_path)
    assert read.stdout == HOSTILE
    assert sh(when(absent(str(target)), cmd("echo", "absent"), cmd("echo", "present")),
              tmp_path).stdout == "present\n"
    assert not list(tmp_path.glob("pwned*")) and not (tmp_path / "x").exists()


def test_the_deploy_builders_write_and_read_a_file_as_sh_runs_them(tmp_path):
    path = str(tmp_path / "live dir" / "upstream.conf")
    content = "server 'a';\n$(echo no)\n"
    assert sh(deploy.write_file(path, content), tmp_path).returncode == 0
    assert sh(deploy.read_file(path), tmp_path).stdout == content
    assert sh(deploy.read_file(path + ".missing"), tmp_path).returncode == 0  # nothing, no error


def test_the_lock_is_taken_once_and_released_only_with_its_token(tmp_path):
    base = str(tmp_path)
    first, second = (sh(deploy_lock.acquire("app", f'{{"by": "{who}"}}', base), tmp_path)
                     for who in ("one", "two"))
    assert first.returncode == 0 and second.returncode != 0
    assert sh(deploy_lock.read("app", base), tmp_path).stdout == '{"by": "one"}\n'
    metric = (tmp_path / "app" / "textfile" / "ops_deploy_lock.prom").read_text()
    assert metric.splitlines()[1].split()[1].isdigit() and metric.splitlines()[1].split()[1] != "0"
    sh(deploy_lock.release_if("app", "0123456789abcdef", base), tmp_path)
    assert (tmp_path / "app" / "deploy.lock").exists()  # not its token: kept
    assert sh(deploy_lock.remove("app", base), tmp_path).returncode == 0
    assert not (tmp_path / "app" / "deploy.lock").exists()
    assert metric != (tmp_path / "app" / "textfile" / "ops_deploy_lock.prom").read_text()


def test_the_local_runner_takes_a_line_and_refuses_a_plain_string(tmp_path):
    assert shell.run(cmd("printf", "%s", HOSTILE)).stdout == HOSTILE  # no shell at all
    assert shell.run(pipe(cmd("printf", "a\nb\n"), cmd("tail", "-n", 1))).stdout == "b\n"
    with pytest.raises(TypeError):
        shell.run("echo hi")
    assert script("echo $((1 + 2))").argv == ["sh", "-c", "echo $((1 + 2))"]


def test_the_missing_images_check_names_exactly_the_ones_the_engine_lacks(tmp_path):
    from ops.commands import image_refs

    docker = tmp_path / "docker"  # a stand-in engine that has only `a:1`
    docker.write_text('#!/bin/sh\n[ "$5" = "a:1" ]\n')
    docker.chmod(0o755)
    line = image_refs.missing(["a:1", "b c:2", "x;id:3"])
    out = subprocess.run(["sh", "-c", line], env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=10)
    assert out.stdout.splitlines() == ["b c:2", "x;id:3"]
