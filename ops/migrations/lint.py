"""Which of squawk's findings refuse a migration, and the one line that says so (pure).

While blue and green share one database, a migration must keep the live color working
and must not hold a lock a busy table's readers and writers queue behind. These rules
break one or the other; the rest of squawk's findings are advice, printed and let pass."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# Ours: squawk 2.70 does not see it with --assume-in-transaction, and PostgreSQL refuses
# CONCURRENTLY inside a transaction block.
CONCURRENT_IN_TRANSACTION = "concurrently-in-transaction"
IN_TRANSACTION_FIX = "make `-- transactional: false` the migration's first line"
# rule -> the safe way (expand now, contract in a later release)
BREAKING = {
    "adding-required-field": "add it nullable or with a DEFAULT, backfill in batches, "
                             "SET NOT NULL in a later release",
    "adding-not-nullable-field": "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, "
                                 "then SET NOT NULL",
    "ban-drop-column": "stop reading it in one release, drop it in a later one",
    "ban-drop-table": "stop using it in one release, drop it in a later one",
    "renaming-column": "add the new column, write both, backfill, move the reads, "
                       "drop the old one in a later release",
    "renaming-table": "add the new table (or a view), move the readers first",
    "changing-column-type": "add a column of the new type, backfill, move the reads, "
                            "drop the old one in a later release",
    "require-concurrent-index-creation": "CREATE INDEX CONCURRENTLY, in a migration whose "
                                         "first line is `-- transactional: false`",
    "disallowed-unique-constraint": "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT "
                                    "... USING INDEX",
    "constraint-missing-not-valid": "add the constraint NOT VALID, VALIDATE it in a "
                                    "separate statement",
    "adding-foreign-key-constraint": "add the foreign key NOT VALID, VALIDATE it in a "
                                     "separate statement",
    "adding-serial-primary-key-field": "add the column, CREATE UNIQUE INDEX CONCURRENTLY, "
                                       "then ADD PRIMARY KEY USING INDEX",
    "ban-drop-database": "never from a deploy",
    "syntax-error": "fix the statement: PostgreSQL would refuse it too",
    "ban-concurrent-index-creation-in-transaction": IN_TRANSACTION_FIX,
    CONCURRENT_IN_TRANSACTION: IN_TRANSACTION_FIX,
}
NON_TRANSACTIONAL = re.compile(r"^\s*--\s*transactional\s*:\s*false\s*$", re.I | re.M)


@dataclass(frozen=True)
class Finding:
    file: str  # <database>/<migration file>
    line: int  # 1-based
    rule: str
    message: str
    statement: str

    @property
    def breaking(self) -> bool:
        return self.rule in BREAKING

    def describe(self) -> str:
        where = f"migration {self.file} line {self.line}: `{self.statement}`"
        if self.breaking:
            return f"{where} ({self.rule}): {self.message} Safe way: {BREAKING[self.rule]}"
        return f"{where} ({self.rule}): {self.message}"


def transactional(sql: str) -> bool:
    """yoyo runs a migration in one transaction unless it says otherwise in its header."""
    header = "\n".join(line for line in sql.splitlines()[:10] if line.lstrip().startswith("--"))
    return not NON_TRANSACTIONAL.search(header)


def concurrently_in_transaction(file: str, sql: str) -> list[Finding]:
    """CONCURRENTLY in a migration yoyo runs in one transaction, by line."""
    if not transactional(sql):
        return []
    return [Finding(file, n, CONCURRENT_IN_TRANSACTION,
                    "CONCURRENTLY cannot run inside a transaction block.", statement(sql, n - 1, n - 1))
            for n, text in enumerate(sql.splitlines(), 1)
            if re.search(r"\bconcurrently\b", text.split("--", 1)[0], re.I)]


def statement(sql: str, line: int, line_end: int) -> str:
    """The statement around the lines squawk points at (0-based): from after the last
    line ending in `;` to the next one, comments dropped, on one line, at most 120
    characters; the statement as written, not the clause squawk underlines."""
    code = [ln.split("--", 1)[0].rstrip() for ln in sql.splitlines()]
    if not 0 <= line < len(code):
        return "?"
    first = line
    while first > 0 and not code[first - 1].endswith(";"):
        first -= 1
    last = min(max(line_end, line), len(code) - 1)
    while last < len(code) - 1 and not code[last].endswith(";"):
        last += 1
    text = " ".join(" ".join(ln.split()) for ln in code[first:last + 1] if ln.strip())
    return text if len(text) <= 120 else text[:117] + "..."


def findings(report: str, sources: dict[str, str]) -> list[Finding]:
    """squawk's JSON report (--reporter json) of the files in `sources` ({reported path:
    SQL}); a path squawk reports that is not there keeps its own name."""
    try:
        rows = json.loads(report or "[]")
    except ValueError as exc:
        raise ValueError(f"squawk's report is not JSON: {exc}") from None
    out = []
    for row in rows if isinstance(rows, list) else []:
        path = str(row.get("file", "?"))
        sql = sources.get(path, "")
        line = int(row.get("line") or 0)
        out.append(Finding(
            file=path, line=line + 1, rule=str(row.get("rule_name", "?")),
            message=" ".join(str(row.get("message", "")).split()),
            statement=statement(sql, line, int(row.get("line_end") or line))))
    return sorted(out, key=lambda f: (f.file, f.line, not f.breaking))


def refusal(found: list[Finding]) -> str | None:
    """The one line that refuses a deploy: the first breaking finding, and how many more."""
    breaking = [f for f in found if f.breaking]
    if not breaking:
        return None
    more = f" (and {len(breaking) - 1} more)" if len(breaking) > 1 else ""
    return f"{breaking[0].describe()}{more}; --allow-breaking runs it anyway"


MIGRATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
DATABASE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def parse_pending(text: str) -> list[dict]:
    """The migrate command's `--pending` answer: a JSON list of {database, id, file, sql}
    (the contract in docs/deploy.md), each name checked: it becomes a file name here."""
    try:
        rows = json.loads(text.strip().splitlines()[-1] if text.strip() else "[]")
    except ValueError:
        raise ValueError(f"not the JSON list the contract asks for: {text.strip()[-200:]!r}") from None
    if not isinstance(rows, list):
        raise ValueError("not a JSON list")
    out = []
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("sql"), str):
            raise ValueError(f"an entry without sql: {str(row)[:100]}")
        db, mid = str(row.get("database", "")), str(row.get("id", ""))
        if not DATABASE.match(db) or not MIGRATION_ID.match(mid) or ".." in mid:
            raise ValueError(f"a migration named {db!r}/{mid!r}: letters, digits, . _ - only")
        out.append({"database": db, "id": mid, "file": f"{db}/{mid}.sql", "sql": row["sql"]})
    return out
