"""`inv audit`: the best-practice checklist over compose files, Dockerfiles and the
pipeline. Exit 0 = clean at --fail-on, 1 = findings at or above it, 2 = the audit failed."""

from __future__ import annotations

from invoke import Exit, task

from ..errors import OpsError
from .common import platform, user_errors

FORMATS = ("text", "json", "sarif")
THRESHOLDS = ("low", "medium", "high", "critical")


def _choice(value, option: str, choices) -> str:
    if value not in choices:
        raise OpsError(f"{option} must be one of {', '.join(choices)}, not {value!r}", code=2)
    return value


def _project(c, env: str | None):
    """The project's stack, as rendered for --env when that is a Swarm environment."""
    from ..audit.load import project

    with platform(c, env or "local") as p:
        return project(p.settings, p.audit_input(), p.env if env else None)


@task(iterable=["path"], name="audit",
      help={"path": "a compose file, Dockerfile or directory to audit (repeatable; default: "
                    "the project's stack, Dockerfiles and pipeline)",
            "env": "audit the project's stack as rendered for this environment (a Swarm env: "
                   "what inv deploy deploys)",
            "format": "text (the checklist report), json or sarif (SARIF 2.1.0)",
            "fail_on": "exit 1 when a finding is at or above: low, medium, high (default), "
                       "critical",
            "json": "the same as --format json",
            "rules": "list every rule (ID, severity, category, title) and exit"})
@user_errors
def audit(c, path=None, env=None, format="text", fail_on="high", rules=False,  # noqa: A002
          json_=False):
    """Check compose files, Dockerfiles and the CI pipeline against the best-practice
    checklist (exit 0 clean, 1 findings at --fail-on or above, 2 the audit failed)."""
    from ..audit import render
    from ..audit.load import from_paths
    from ..audit.rules import RULES

    if rules:
        for r in RULES.values():
            print(f"{r.id}  {r.severity:<8}  {r.category:<13}  {r.title}")
        return
    try:
        format = _choice(str(format).lower(), "--format", FORMATS)  # noqa: A001
        if json_ and format not in ("text", "json"):
            raise OpsError(f"--json and --format {format}: give one of them", code=2)
        format = "json" if json_ else format  # noqa: A001
        fail_on = _choice(str(fail_on).lower(), "--fail-on", THRESHOLDS)
        if path and env:
            raise OpsError("--env audits the project's own stack: give it without --path", code=2)
        inputs = from_paths(path) if path else _project(c, env)
        result = inputs.run()
    except OpsError as exc:
        raise OpsError(f"audit failed: {exc}", code=2) from None
    if format == "json":
        print(render.as_json(result, fail_on), end="")
    elif format == "sarif":
        print(render.sarif(result, inputs.base.resolve().as_uri() + "/"), end="")
    else:
        print(render.text(result, fail_on), end="")
    if result.at_or_above(fail_on):
        raise Exit(code=1)
