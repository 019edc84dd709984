"""CI/CD checks of a repository's pipeline files (GitHub Actions workflows, and the text
of GitLab CI, CircleCI or a Jenkinsfile): tests, an image scan, a deploy, a rollback. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .rules import Finding

# Where pipelines live, relative to the repository root.
PIPELINE_GLOBS = (".github/workflows/*.yml", ".github/workflows/*.yaml", ".gitlab-ci.yml",
                  ".circleci/config.yml", "Jenkinsfile", "azure-pipelines.yml")

_TESTS = re.compile(r"\b(pytest|tox|nox|go test|cargo (test|nextest)|(npm|yarn|pnpm)( run)? test|"
                    r"mvn\b[^\n]*\b(test|verify)|gradlew?\b[^\n]*\btest|make test|"
                    r"inv(oke)? test|scripts/test|phpunit|rspec|ctest|\.ci/run)\b")
_SCAN = re.compile(r"(aquasecurity/trivy-action|anchore/scan-action|docker/scout-action|"
                   r"snyk/actions|\btrivy (image|fs|config)|\bgrype\b|docker scout (cves|quickview)|"
                   r"snyk container)")
_DEPLOY = re.compile(r"\b(inv(oke)? deploy\b|docker stack deploy|kubectl (apply|set image|rollout "
                     r"restart)|helm (upgrade|install)|fab deploy)")
_ROLLBACK = re.compile(r"\b(inv(oke)? (deploy\.)?rollback|kubectl rollout undo|helm rollback|"
                       r"docker service (rollback|update --rollback))")


@dataclass(frozen=True)
class PipelineFile:
    file: str   # as reported
    text: str


def _line(text: str, pattern: re.Pattern) -> int:
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else 0


def check(files: list[PipelineFile], root_label: str, where: str) -> list[Finding]:
    """`where`: the path reported for a missing pipeline (the workflows folder)."""
    if not files:
        return [Finding("OA501", f"no pipeline in {root_label} (looked for "
                                 f"{', '.join(PIPELINE_GLOBS[::2])}...)", where)]
    text = "\n".join(f.text for f in files)
    first = files[0].file
    out = []
    if not _TESTS.search(text):
        out.append(Finding("OA502", "no step runs tests (pytest, go test, npm test, ...)", first, 1))
    if not _SCAN.search(text):
        out.append(Finding("OA503", "no step scans an image (trivy, grype, docker scout, snyk)",
                           first, 1))
    deploy = next(((f, _line(f.text, _DEPLOY)) for f in files if _DEPLOY.search(f.text)), None)
    if not deploy:
        out.append(Finding("OA504", "no step deploys (inv deploy, docker stack deploy, kubectl, "
                                    "helm)", first, 1))
    elif not _ROLLBACK.search(text):
        f, line = deploy
        out.append(Finding("OA505", "the pipeline deploys but never rolls back (inv rollback, "
                                    "kubectl rollout undo, helm rollback)", f.file, line))
    return out
