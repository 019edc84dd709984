"""An audit's result, and what the seed's answer format derives from it: suppressions
applied, the checklist verdict per category, the summary and a prioritized plan. Pure."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .rules import CATEGORIES, RULES, SEVERITIES, Finding, Rule, rank
from .yamlsrc import Suppression

OK, WARN, BAD, SKIP = "✅", "⚠️", "❌", "➖"
# What a clean category means, said once (the seed's checklist, as checked here).
CLEAN = {
    "docker": "healthchecks, depends_on on health, limits, restart, log rotation, pinned "
              "images, multi-stage builds, one owner per volume",
    "security": "no literal secrets, data tier unpublished and on internal networks, non-root, "
                "no privileged/socket/host namespaces, no-new-privileges",
    "scalability": "services meant to scale have no fixed host port or container_name",
    # Rotation is Docker/Compose's (OA108): this category says only what its own rules check.
    "observability": "logs kept (no logging driver none), app health endpoints and metrics "
                     "labels",
    "cicd": "a pipeline with tests, an image scan, a deploy and a rollback",
}


@dataclass
class Scope:
    """Lines of one file a suppression can stand for: a service key (the whole service) or
    a top-level key (the whole file)."""

    services: dict[int, str] = field(default_factory=dict)
    top: set[int] = field(default_factory=set)


@dataclass
class Audit:
    targets: dict[str, list[str]]  # compose / dockerfile / pipeline -> files read
    findings: list[Finding]
    notes: list[str] = field(default_factory=list)
    categories: tuple[str, ...] = tuple(CATEGORIES)  # the ones checked
    services: dict[str, str] = field(default_factory=dict)  # name -> role
    env: str | None = None
    # The stack's shape, for what is written from an audit (inv plan.new):
    edges: dict[str, list[str]] = field(default_factory=dict)   # service -> its depends_on
    labels: dict[str, dict] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)

    def active(self) -> list[Finding]:
        return [f for f in self.findings if f.suppressed is None]

    def at_or_above(self, threshold: str) -> list[Finding]:
        return [f for f in self.active() if rank(f.severity) >= rank(threshold)]

    def counts(self) -> dict[str, int]:
        c = Counter(f.severity for f in self.active())
        return {s: c.get(s, 0) for s in reversed(SEVERITIES)}

    def sorted(self) -> list[Finding]:
        order = list(CATEGORIES)
        return sorted(self.findings, key=lambda f: (f.suppressed is not None, -rank(f.severity),
                                                    order.index(RULES[f.rule].category), f.rule,
                                                    f.file, f.line))


def apply_suppressions(findings: list[Finding], sups: list[Suppression],
                       scopes: dict[str, Scope]) -> list[Finding]:
    """Mark the findings each comment speaks of; a comment without a reason, or naming an
    unknown rule, suppresses nothing and is a finding itself."""
    out = list(findings)
    for s in sups:
        unknown = [r for r in s.rules if r not in RULES]
        if not s.rules or not s.reason:
            out.append(Finding("OA901", "`# ops-audit: ignore` needs a rule ID and a reason: "
                                        "nothing was suppressed", s.file, s.line))
            continue
        for r in unknown:
            out.append(Finding("OA902", f"suppression names unknown rule {r}", s.file, s.line))
        scope = scopes.get(s.file, Scope())
        service = scope.services.get(s.target)
        whole_file = s.target in scope.top
        for f in findings:
            if f.rule not in s.rules or f.file != s.file or f.suppressed is not None:
                continue
            if f.line == s.target or whole_file or (service and f.service == service):
                f.suppressed = s.reason
    return out


def verdicts(audit: Audit) -> dict[str, tuple[str, str]]:
    """category -> (✅/⚠️/❌/➖, why)."""
    out = {}
    active = audit.active()
    for cat in CATEGORIES:
        if cat not in audit.categories:
            out[cat] = (SKIP, "not checked here (audit the repository root to include it)")
            continue
        mine = [f for f in active if RULES[f.rule].category == cat]
        if not mine:
            out[cat] = (OK, CLEAN[cat])
            continue
        worst = max(rank(f.severity) for f in mine)
        by_rule = Counter(RULES[f.rule].title for f in mine)
        why = "; ".join(f"{t} ({n})" if n > 1 else t for t, n in by_rule.most_common(4))
        out[cat] = (BAD if worst >= rank("high") else WARN, why)
    return out


def summary(audit: Audit) -> list[str]:
    """2 to 5 bullets on the whole."""
    roles = Counter(audit.services.values())
    shown = ", ".join(f"{n} {r}" for r, n in sorted(roles.items(), key=lambda x: (-x[1], x[0])))
    t = audit.targets
    lines = [f"{len(audit.services)} services ({shown or 'none'}) in "
             f"{'; '.join(t.get('compose', [])) or 'no compose file'}"
             + (f", as rendered for env {audit.env}" if audit.env else "")
             + f"; {len(t.get('dockerfile', []))} Dockerfile(s)"
             + (f"; pipeline: {', '.join(t['pipeline']) or 'none'}" if "cicd" in audit.categories
                else "")]
    counts = audit.counts()
    total = sum(counts.values())
    suppressed = len(audit.findings) - len(audit.active())
    if total:
        lines.append(f"{total} finding(s): " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
                     + (f"; {suppressed} suppressed inline with a reason" if suppressed else ""))
    else:
        lines.append("no findings" + (f" ({suppressed} suppressed inline with a reason)"
                                      if suppressed else ""))
    v = verdicts(audit)
    bad = [CATEGORIES[c] for c, (mark, _) in v.items() if mark == BAD]
    good = [CATEGORIES[c] for c, (mark, _) in v.items() if mark == OK]
    if bad:
        lines.append("needs attention first: " + ", ".join(bad))
    if good:
        lines.append("in good shape: " + ", ".join(good))
    if audit.notes:
        lines.append(f"{len(audit.notes)} note(s) on how the files were read (see below)")
    return lines[:5]


@dataclass(frozen=True)
class Group:
    """The active findings of one rule."""

    rule: Rule
    findings: list[Finding]

    @property
    def worst(self) -> str:
        return SEVERITIES[max(rank(f.severity) for f in self.findings)]

    def places(self, limit: int) -> str:
        """The services (or files) it was found in: `a, b, c +2`."""
        where = sorted({f.service or f.file for f in self.findings})
        return ", ".join(where[:limit]) + (f" +{len(where) - limit}" if len(where) > limit else "")


def groups(audit: Audit) -> list[Group]:
    """Active findings by rule: most severe first, then by category and how widespread."""
    by_rule: dict[str, list[Finding]] = {}
    for f in audit.sorted():
        if f.suppressed is None:
            by_rule.setdefault(f.rule, []).append(f)
    order = list(CATEGORIES)
    out = [Group(RULES[r], fs) for r, fs in by_rule.items()]
    return sorted(out, key=lambda g: (-rank(g.worst), order.index(g.rule.category),
                                      -len(g.findings), g.rule.id))


def action_plan(audit: Audit) -> list[str]:
    """3 to 7 steps, most severe and most widespread first."""
    steps = [f"[{g.worst}] {g.rule.title}: {g.places(4)} ({g.rule.id})" for g in groups(audit)[:7]]
    lows = sum(1 for f in audit.active() if f.severity == "low")
    suppressed = len(audit.findings) - len(audit.active())
    extras = [
        *([f"Review the {lows} low finding(s): fix them or suppress the accepted ones inline "
           "with a reason (`# ops-audit: ignore RULE reason`)"] if lows else []),
        *([f"Re-check the {suppressed} inline suppression(s): each reason must still hold"]
          if suppressed else []),
        "Run `inv audit --fail-on medium` in the pipeline so a regression fails the build",
        "Audit each deployed environment (`inv audit --env <env>`): the stack rendered for "
        "Swarm differs from the local one",
        "Scan the built images for vulnerabilities (trivy, grype): this audit reads files, "
        "not packages",
    ]
    for extra in extras:
        if len(steps) >= 3:
            break
        steps.append(extra)
    return steps
