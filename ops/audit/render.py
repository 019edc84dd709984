"""An Audit as text (the seed 000 answer format), JSON, or SARIF 2.1.0. Pure."""

from __future__ import annotations

import json
import textwrap

from . import report
from .rules import CATEGORIES, RULES, rank

TOOL = "ops-audit"
SARIF_SCHEMA = ("https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/"
                "sarif-schema-2.1.0.json")
_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}
# GitHub code scanning orders security results by this number (CVSS-like).
_SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0"}


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("ops-toolkit")
    except PackageNotFoundError:
        return "0"


def text(audit: report.Audit, fail_on: str) -> str:
    files = [f for group in audit.targets.values() for f in group]
    out = [f"inv audit: {len(files)} file(s)" + (f", env {audit.env}" if audit.env else ""),
           "", "1) Summary"]
    out += [f"- {b}" for b in report.summary(audit)]
    out += ["", "2) Best-practice checklist"]
    width = max(len(v) for v in CATEGORIES.values())
    for cat, (mark, why) in report.verdicts(audit).items():
        out.append(f"- {CATEGORIES[cat].ljust(width)}  {mark}  {why}")
    out += ["", "3) Problems and proposals"]
    groups = report.groups(audit)
    if not groups:
        out.append("- none at any severity")
    for g in groups:
        rule, worst = g.rule, g.worst
        out.append(f"- [{CATEGORIES[rule.category]}] {rule.id} {worst.upper()}: {rule.title}")
        out.append("  Description:")
        for f in g.findings:
            sev = f" ({f.severity})" if f.severity != worst else ""
            out.append(f"    {f.where}: {f.message}{sev}")
        out.append("  " + "\n    ".join(textwrap.wrap(f"Risk: {rule.risk}", 96)))
        out.append("  Proposal:")
        out += [f"      {line}" for line in rule.fix.splitlines()]
    suppressed = [f for f in audit.sorted() if f.suppressed is not None]
    if suppressed:
        out += ["", f"Suppressed inline ({len(suppressed)}):"]
        out += [f"- {f.rule} {f.where}: {f.message} -- reason: {f.suppressed}" for f in suppressed]
    out += ["", "4) Action plan"]
    out += [f"{i}. {step}" for i, step in enumerate(report.action_plan(audit), 1)]
    if audit.notes:
        out += ["", "Notes:"] + [f"- {n}" for n in audit.notes]
    counts = audit.counts()
    failing = len(audit.at_or_above(fail_on))
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no findings"
    out += ["", f"{'FAIL' if failing else 'PASS'}: {tally} (threshold: {fail_on})"]
    return "\n".join(out) + "\n"


def as_json(audit: report.Audit, fail_on: str) -> str:
    names = {report.OK: "pass", report.WARN: "warn", report.BAD: "fail", report.SKIP: "skipped"}
    doc = {
        "tool": {"name": TOOL, "version": version()},
        "env": audit.env,
        "targets": audit.targets,
        "notes": audit.notes,
        "fail_on": fail_on,
        "failed": bool(audit.at_or_above(fail_on)),
        "counts": audit.counts(),
        "suppressed": len(audit.findings) - len(audit.active()),
        "summary": report.summary(audit),
        "checklist": {cat: {"category": CATEGORIES[cat], "verdict": names[mark], "mark": mark,
                            "why": why}
                      for cat, (mark, why) in report.verdicts(audit).items()},
        "findings": [f.as_dict() for f in audit.sorted()],
        "action_plan": report.action_plan(audit),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def sarif(audit: report.Audit, root_uri: str) -> str:
    """SARIF 2.1.0: every rule in the driver, every finding a result (suppressed ones
    with an inSource suppression and its justification)."""
    ids = sorted(RULES)
    rules = [{
        "id": r.id,
        "name": "".join(w.capitalize() for w in r.title.replace("`", "").split() if w.isalnum()),
        "shortDescription": {"text": r.title},
        "fullDescription": {"text": r.risk},
        "help": {"text": r.fix, "markdown": f"**Fix**\n\n```\n{r.fix}\n```"},
        "defaultConfiguration": {"level": _LEVEL[r.severity]},
        "properties": {"tags": [CATEGORIES[r.category], "ops-audit"],
                       "security-severity": _SECURITY_SEVERITY[r.severity],
                       "problem.severity": "error" if rank(r.severity) >= 2 else "warning"},
    } for r in (RULES[i] for i in ids)]
    results = []
    for f in audit.sorted():
        location = {"artifactLocation": {"uri": f.file, "uriBaseId": "SRCROOT"}}
        if f.line:
            location["region"] = {"startLine": f.line}
        result = {
            "ruleId": f.rule,
            "ruleIndex": ids.index(f.rule),
            "level": _LEVEL[f.severity],
            "message": {"text": f.message},
            "locations": [{"physicalLocation": location}],
            "properties": {"severity": f.severity, "category": CATEGORIES[RULES[f.rule].category]},
        }
        if f.service:
            result["properties"]["service"] = f.service
        if f.suppressed is not None:
            result["suppressions"] = [{"kind": "inSource", "justification": f.suppressed}]
        results.append(result)
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": TOOL, "version": version(), "rules": rules}},
            "originalUriBaseIds": {"SRCROOT": {"uri": root_uri}},
            "results": results,
            "invocations": [{"executionSuccessful": True,
                             "toolExecutionNotifications": [
                                 {"message": {"text": n}, "level": "note"} for n in audit.notes]}],
        }],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
