"""`inv audit`: the best-practice checklist over compose files, Dockerfiles and the
pipeline. Exit 0 = clean at --fail-on, 1 = findings at or above it, 2 = the audit failed."""

from __future__ import annotations

from pathlib import Path

from invoke import Exit, task

from ..environment import COMPOSE, SWARM
from ..errors import OpsError
from .common import target, user_errors

FORMATS = ("text", "json", "sarif")
THRESHOLDS = ("low", "medium", "high", "critical")


def _choice(value, option: str, choices) -> str:
    if value not in choices:
        raise OpsError(f"{option} must be one of {', '.join(choices)}, not {value!r}", code=2)
    return value


def project_inputs(c, env: str | None):
    """The project's own stack (as rendered for --env), its Dockerfiles and pipeline."""
    from ..audit.load import Stack, discover
    from ..deploy.session import options, stack_input

    s, where = target(c, env or "local", "audit", {COMPOSE, SWARM})
    if where.kind == SWARM:
        files, variables = stack_input(s, options(c.config, s.env))
        stack = Stack(files, variables, s.project, translated=True)
    else:
        stack = Stack(list(s.compose_files), s.subprocess_env(), s.project)
    dockerfiles = []
    for folder in sorted({f.parent for f in s.compose_files}):
        dockerfiles += discover(folder)[1]
    return [stack], dockerfiles, s.root, s.root, (s.env if env else None)


def _paths(paths: list[str]):
    from ..audit.load import COMPOSE_NAME, DOCKERFILE_NAME, Stack, discover

    stacks, dockerfiles, repo = [], [], None
    for raw in paths:
        if not raw.strip():
            raise OpsError("--path is empty: give a compose file, Dockerfile or directory", code=2)
        p = Path(raw)
        if p.is_dir():
            found, dfs = discover(p)
            stacks += found
            dockerfiles += dfs
            repo = repo or p
        elif p.is_file():
            if DOCKERFILE_NAME.match(p.name):
                dockerfiles.append(p)
            elif p.suffix in (".yml", ".yaml") or COMPOSE_NAME.match(p.name):
                stacks.append(Stack([p]))
            else:
                raise OpsError(f"{raw}: not a compose file (.yml/.yaml), a Dockerfile or a "
                               "directory", code=2)
        else:
            raise OpsError(f"{raw}: no such file or directory", code=2)
    return stacks, dockerfiles, repo, Path.cwd(), None


@task(iterable=["path"], name="audit",
      help={"path": "a compose file, Dockerfile or directory to audit (repeatable; default: "
                    "the project's stack, Dockerfiles and pipeline)",
            "env": "audit the project's stack as rendered for this environment (a Swarm env: "
                   "what inv deploy deploys)",
            "format": "text (the checklist report), json or sarif (SARIF 2.1.0)",
            "fail_on": "exit 1 when a finding is at or above: low, medium, high (default), "
                       "critical",
            "rules": "list every rule (ID, severity, category, title) and exit"})
@user_errors
def audit(c, path=None, env=None, format="text", fail_on="high", rules=False):  # noqa: A002
    """Check compose files, Dockerfiles and the CI pipeline against the best-practice
    checklist (exit 0 clean, 1 findings at --fail-on or above, 2 the audit failed)."""
    from ..audit import render
    from ..audit.load import audit as run_audit
    from ..audit.rules import RULES

    if rules:
        for r in RULES.values():
            print(f"{r.id}  {r.severity:<8}  {r.category:<13}  {r.title}")
        return
    try:
        format = _choice(str(format).lower(), "--format", FORMATS)  # noqa: A001
        fail_on = _choice(str(fail_on).lower(), "--fail-on", THRESHOLDS)
        if path and env:
            raise OpsError("--env audits the project's own stack: give it without --path", code=2)
        stacks, dockerfiles, repo, base, shown_env = _paths(path) if path else project_inputs(c, env)
        result = run_audit(stacks, dockerfiles, repo, base, shown_env)
    except OpsError as exc:
        raise OpsError(f"audit failed: {exc}", code=2) from None
    if format == "json":
        print(render.as_json(result, fail_on), end="")
    elif format == "sarif":
        print(render.sarif(result, base.resolve().as_uri() + "/"), end="")
    else:
        print(render.text(result, fail_on), end="")
    if result.at_or_above(fail_on):
        raise Exit(code=1)
