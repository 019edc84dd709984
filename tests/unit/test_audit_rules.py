"""inv audit's rules on fixture files: every `# <- RULE` marker is a finding of that rule
on that line, and nothing else is found (the fixtures' bases are clean). These read the
files as plain YAML (the audit's fallback); tests/integration/test_audit.py reads the same
files through `docker compose config`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ops.audit import dockerfile, pipeline
from ops.audit.load import ComposeFiles, audit
from ops.audit.rules import RULES
from ops.audit.yamlsrc import suppressions

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "audit"
MARK = re.compile(r"#\s*<-\s*((?:OA\d{3}\s*)+)")
EXPECT = re.compile(r"^\s*#\s*expect:\s*((?:OA\d{3}\s*)+)")


def expected(path: Path) -> set[tuple[str, int]]:
    """(rule, line) pairs marked in a fixture: `# <- RULE` at the end of the line, or
    `# expect: RULE` on its own line for the next instruction (Dockerfiles)."""
    out = set()
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines, 1):
        m = MARK.search(line)
        if m:
            out |= {(r, i) for r in m.group(1).split()}
        m = EXPECT.match(line)
        if m:
            nxt = next(j for j in range(i, len(lines)) if lines[j].strip()
                       and not lines[j].lstrip().startswith("#")) + 1
            out |= {(r, nxt) for r in m.group(1).split()}
    return out


def found(result, file: str, active_only: bool = True) -> set[tuple[str, int]]:
    return {(f.rule, f.line) for f in result.findings
            if f.file.endswith(file) and (f.suppressed is None or not active_only)}


def plain(*paths: Path, **kw):
    """Audit compose files read as plain YAML (Compose not consulted)."""
    import ops.audit.load as load

    class NoCompose:
        def __init__(self, stack):
            pass

        def cancel(self):
            pass

        def result(self):
            return None, "plain YAML for this test"

    original = load._Resolving, load._image_users
    load._Resolving = NoCompose
    load._image_users = lambda images: {}  # no engine: what the images were pulled as is unknown
    try:
        return audit([ComposeFiles([p], **kw) for p in paths], [], None, FIXTURES)
    finally:
        load._Resolving, load._image_users = original


COMPOSE_FIXTURES = sorted((FIXTURES / "bad").glob("*.yaml"))


@pytest.mark.parametrize("path", COMPOSE_FIXTURES, ids=lambda p: p.name)
def test_each_marked_line_is_found_and_nothing_else(path):
    result = plain(path)
    marked = expected(path)
    assert marked, f"{path.name} marks no expected finding"
    got = found(result, path.name)
    for df in result.targets["dockerfile"]:
        got |= {(r, line, df) for r, line in found(result, df)}
        marked |= {(r, line, df) for r, line in expected(FIXTURES / df)}
    assert got == marked


def test_every_rule_has_a_bad_fixture_that_fires_it():
    fired = set()
    for path in [*COMPOSE_FIXTURES, *(FIXTURES / "bad" / "dockerfiles").glob("Dockerfile*")]:
        fired |= {r for r, _ in expected(path)}
    pipeline_rules = {"OA501", "OA502", "OA503", "OA504", "OA505"}  # test_pipeline_rules
    assert set(RULES) - fired - pipeline_rules == set()


def test_good_stack_is_silent():
    result = plain(FIXTURES / "good" / "stack.yaml")
    assert [(f.rule, f.where) for f in result.findings] == []
    assert result.services["auth-db"] == "database" and result.services["auth"] == "app"


@pytest.mark.parametrize("path", sorted((FIXTURES / "bad" / "dockerfiles").glob("Dockerfile*")),
                         ids=lambda p: p.name)
def test_dockerfile_rules_point_at_the_instruction(path):
    result = audit([], [path], None, FIXTURES)
    assert found(result, path.name) == expected(path)


def test_good_dockerfile_is_silent():
    parsed = dockerfile.parse((FIXTURES / "good" / "app" / "Dockerfile").read_text(), "Dockerfile")
    assert dockerfile.check(parsed) == []
    assert parsed.healthcheck and parsed.final_user == "app"


def test_dockerfile_parser_joins_continuations_and_substitutes_args():
    text = ("# c\nARG BASE=python:3.11.4-slim\nFROM ${BASE} AS build\nRUN a \\\n  # inside\n"
            "  && b\nFROM build\nUSER 10001\n")
    parsed = dockerfile.parse(text, "D")
    assert [s.image for s in parsed.stages] == ["python:3.11.4-slim", "build"]
    assert [i.line for i in dockerfile.instructions(text)] == [2, 3, 4, 7, 8]
    assert parsed.final_user == "10001"
    assert dockerfile.check(parsed) == []


WORKFLOW_OK = """
jobs:
  test:
    steps:
      - run: pytest -q
      - uses: aquasecurity/trivy-action@0.28.0
  deploy:
    steps:
      - run: inv deploy --env staging
      - if: failure()
        run: inv rollback --env staging
"""


@pytest.mark.parametrize("drop, rule", [
    ("pytest -q", "OA502"),
    ("aquasecurity/trivy-action@0.28.0", "OA503"),
    ("inv rollback --env staging", "OA505"),
])
def test_pipeline_rules(drop, rule):
    assert pipeline.check([pipeline.PipelineFile("ci.yml", WORKFLOW_OK)], "repo", "wf") == []
    text = WORKFLOW_OK.replace(drop, "echo nothing")
    findings = pipeline.check([pipeline.PipelineFile("ci.yml", text)], "repo", "wf")
    assert [f.rule for f in findings] == [rule]
    if rule == "OA505":
        assert findings[0].line == 9  # the deploy step


def test_pipeline_without_deploy_and_missing_pipeline():
    text = WORKFLOW_OK.replace("inv deploy --env staging", "echo").replace("inv rollback", "x")
    assert [f.rule for f in pipeline.check([pipeline.PipelineFile("ci.yml", text)], "r", "w")] \
        == ["OA504"]
    missing = pipeline.check([], "the repository", ".github/workflows")
    assert [(f.rule, f.file) for f in missing] == [("OA501", ".github/workflows")]


def test_suppression_comments_are_parsed_with_their_target_line():
    text = ("services:\n  # ops-audit: ignore OA105,oa101 sidecar limited elsewhere\n\n  api:\n"
            "    image: x  # ops-audit: ignore OA114 built in CI\n    # ops-audit: ignore OA208\n"
            "    command: \"echo '# ops-audit: ignore OA101 not a comment'\"\n")
    sups = suppressions(text, "f.yaml")
    assert [(s.line, s.target, s.rules, s.reason) for s in sups] == [
        (2, 4, ("OA105", "OA101"), "sidecar limited elsewhere"),
        (5, 5, ("OA114",), "built in CI"),
        (6, 7, ("OA208",), ""),
    ]


def test_suppressions_need_a_reason_and_stay_visible():
    path = FIXTURES / "bad" / "suppressions.yaml"
    result = plain(path)
    suppressed = {(f.rule, f.line, f.suppressed) for f in result.findings if f.suppressed}
    assert ("OA105", 10, "the host cgroup limits this batch job") in suppressed
    assert ("OA114", 12, "pinned by digest in the CI overlay") in suppressed
    # the whole service: a comment above its key
    assert {r for r, _, why in suppressed if why == "a throwaway debugging container"} == {
        "OA209", "OA105"}


def test_discover_pairs_overrides_and_skips_vendored_dirs(tmp_path):
    from ops.audit.load import discover

    for rel in ("compose.yaml", "compose.override.yaml", "svc/Dockerfile", "svc/api.Dockerfile",
                "node_modules/x/compose.yaml", ".hidden/Dockerfile", "other/docker-compose.yml",
                "notes.yaml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("services: {}\n")
    stacks, dockerfiles = discover(tmp_path)
    assert [[p.relative_to(tmp_path).as_posix() for p in s.files] for s in stacks] == [
        ["compose.yaml", "compose.override.yaml"], ["other/docker-compose.yml"]]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in dockerfiles) == [
        "svc/Dockerfile", "svc/api.Dockerfile"]


def test_yaml_errors_name_the_line_and_locator_follows_merges():
    from ops.audit.yamlsrc import Locator, YamlError, parse

    with pytest.raises(YamlError, match=r"f.yaml:3: not valid YAML \(found character '\\t'"):
        parse("a: 1\nb:\n\t- x\n", "f.yaml")
    data, node = parse("x: &b\n  restart: always\nservices:\n  s:\n    <<: *b\n    image: i\n"
                       "  t: !reset null\n", "f.yaml")
    loc = Locator(node, "f.yaml")
    assert data["services"]["s"]["restart"] == "always"
    assert loc.line("services", "s", "restart") == 2       # where the anchor wrote it
    assert loc.deepest("services", "s", "nope") == (2, 4)  # a missing key: its parent
    assert loc.line("services", "t") == 7 and loc.top_level_lines() == {1, 3}


def test_compose_unset_variable_warnings_in_both_formats():
    from ops.audit.load import unset_variables

    # Compose 2.40 piped (logfmt, quotes escaped), as captured from `docker compose config`:
    piped = ('time="2026-12-04T14:34:03Z" level=warning msg="The \\"TAGX\\" variable is not '
             'set. Defaulting to a blank string."\ntime="2026-12-04T14:34:03Z" level=warning '
             'msg="The \\"UNSETV\\" variable is not set. Defaulting to a blank string."\n')
    terminal = 'WARN[0000] The "UNSETV" variable is not set. Defaulting to a blank string.\n'
    assert unset_variables(piped) == ["TAGX", "UNSETV"]
    assert unset_variables(terminal + terminal) == ["UNSETV"]
    assert unset_variables("") == []


def test_an_empty_image_or_tag_is_an_error_not_a_float():
    from ops.audit.compose_rules import image_floats, image_refused

    assert image_refused("nginx:") == "has an empty tag, which Docker refuses (a variable read as blank?)"
    assert image_refused("registry:5000/app:").startswith("has an empty tag")
    assert image_refused("") == image_refused("  ") == ("is empty, which Compose refuses (a variable "
                                                         "read as blank?)")
    assert image_refused("registry:5000/app") is image_refused("app@sha256:ab") is None
    assert image_floats("nginx:") is None  # OA115's, not OA114's
    assert image_floats("registry:5000/app") == ("medium", "has no tag (means :latest)")
    assert image_floats("nginx:1.27.3") is None


@pytest.mark.parametrize("pulled, want", [
    ({"example/tool:1.2.3": "1000:1000"}, None),
    ({"example/tool:1.2.3": "nobody"}, None),
    ({"example/tool:1.2.3": ""}, "runs as root (image example/tool:1.2.3 sets no other USER)"),
    ({"example/tool:1.2.3": "0:0"}, "runs as root (image example/tool:1.2.3 sets no other USER)"),
    ({}, None),  # not pulled here: unknown, said as a note (ctx.user_unknown), not a guess
])
def test_runs_as_root_reads_the_pulled_images_user(pulled, want):
    from ops.audit import compose_rules

    model = {"services": {"tool": {"image": "example/tool:1.2.3"}}}
    ctx = compose_rules.Context(lambda *a: ("f.yaml", 1), pulled_user=pulled)
    found = [f.message for f in compose_rules.check(model, model, ctx) if f.rule == "OA209"]
    if want is None:
        assert found == []
    else:
        assert len(found) == 1 and want in found[0]
    assert ctx.user_unknown == ([] if pulled else ["tool"])


def test_a_clean_category_claims_only_what_its_rules_check():
    from ops.audit.report import OK, WARN, Audit, verdicts
    from ops.audit.rules import Finding

    audit = Audit({"compose": ["c.yaml"]}, [Finding("OA108", "no max-size", "c.yaml", 3, "a")],
                  categories=("docker", "security", "scalability", "observability"))
    v = verdicts(audit)
    assert v["docker"][0] == WARN and "no log rotation" in v["docker"][1]
    assert v["observability"][0] == OK and "rotat" not in v["observability"][1]


def test_an_alias_bomb_is_refused_at_once_and_compose_is_ended(tmp_path):
    """Nine aliases of nine: 387 million values once expanded. Compose spent 60 s on it,
    then the audit printed PASS; it is refused from the node graph, which is small, and
    the Compose started beside the parse is ended with it (no process left behind)."""
    import os
    import time

    from ops.errors import OpsError
    from ops.runtime.runner import descendants

    lines = ['x-a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"x-{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    (tmp_path / "compose.yaml").write_text("\n".join(lines) + "\nservices:\n  web:\n"
                                           "    image: nginx:1.25\n    command: *i\n")
    start = time.monotonic()
    with pytest.raises(OpsError, match=r"compose.yaml: its aliases expand to more than "
                                       r"2,000,000 values \(an alias bomb\?\)") as exc:
        audit([ComposeFiles([tmp_path / "compose.yaml"])], [], None, tmp_path)
    assert exc.value.code == 2 and time.monotonic() - start < 1
    assert descendants(os.getpid()) == []


def test_a_deeply_nested_file_and_a_recursive_alias_are_read(tmp_path):
    from ops.audit.yamlsrc import YamlError, parse

    deep = "a: " + "[" * 900 + "]" * 900 + "\n"
    data, _ = parse(deep, "deep.yaml")
    assert isinstance(data["a"], list)
    with pytest.raises(YamlError, match=r"^deeper.yaml:1: not valid YAML \(.*nesting"):
        parse("a: " + "[" * 3000 + "]" * 3000 + "\n", "deeper.yaml")
    data, _ = parse("x: &x\n  self: *x\n", "rec.yaml")
    assert data["x"]["self"] is data["x"]


def test_a_symbolic_link_loop_is_one_line_exit_2(tmp_path):
    from ops.audit.load import from_paths
    from ops.errors import OpsError

    (tmp_path / "compose.yaml").symlink_to(tmp_path / "compose.yaml")
    for given in (str(tmp_path), str(tmp_path / "compose.yaml")):
        with pytest.raises(OpsError, match="symbolic link") as exc:
            from_paths([given]).run()
        assert exc.value.code == 2


def test_host_tokens_find_a_service_named_in_a_url_or_a_list():
    from ops.audit.compose_rules import _names_service, host_tokens

    assert {"db", "u:p"} <= host_tokens("postgres://u:p@db:5432/app?sslmode=disable")
    assert "cache" in host_tokens("redis://cache:6379/0") and "mq" in host_tokens("amqp://mq")
    services = {"api": {}, "db": {}, "cache": {}, "db.local": {}}
    assert _names_service("DATABASE_URL", "postgres://u@db:5432/x", services, "api") == "db"
    assert _names_service("BROKERS", "a,cache:6379, b", services, "api") == "cache"
    assert _names_service("DB_HOST", "db.local", services, "api") == "db.local"
    assert _names_service("DB_HOST", "db:abc", services, "api") is None  # not a port
    assert _names_service("LOG_LEVEL", "db", services, "api") is None  # not a host key
    assert _names_service("DB_HOST", "api", services, "api") is None  # itself


def test_an_image_reference_as_the_engine_lists_it():
    from ops.engine_socket import short_reference

    assert short_reference("postgres") == "postgres:latest"
    assert short_reference("docker.io/library/postgres:15") == "postgres:15"
    assert short_reference("docker.io/bitnami/redis:7") == "bitnami/redis:7"
    assert short_reference("registry:5000/app") == "registry:5000/app:latest"
    assert short_reference("app@sha256:ab") == "app@sha256:ab"


def test_the_engine_socket_is_read_directly_only_where_docker_host_names_one():
    """The audit reads image users over the Unix socket itself; a tcp/ssh DOCKER_HOST or
    another context is the docker SDK's job (tests/integration/test_audit.py reads a
    real engine's images both ways)."""
    from ops.engine_socket import DEFAULT_SOCKET, socket_path

    assert socket_path({}) == DEFAULT_SOCKET
    assert socket_path({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}) == "/run/user/1000/docker.sock"
    assert socket_path({"DOCKER_HOST": "tcp://10.0.0.5:2376"}) is None
    assert socket_path({"DOCKER_HOST": "ssh://me@host"}) is None
    assert socket_path({"DOCKER_CONTEXT": "remote"}) is None
