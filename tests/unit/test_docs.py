"""The files the README, docs/ and the CI workflow cite exist (a renamed test or script
leaves no dangling reference)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CITED = re.compile(r"(?<![\w/.])((?:tests|scripts|docs|\.ci)/[\w./-]*[\w])")


def cited(text: str) -> set[str]:
    """Repository paths in a text; templates of generated names (INFRA-YYYYMMDD-...) left out."""
    return {m.rstrip(".") for m in CITED.findall(text) if "YYYY" not in m}


def test_cited_repository_files_exist():
    sources = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
               *sorted((ROOT / ".github" / "workflows").glob("*.yml")), ROOT / ".ci" / "run"]
    missing = {f"{src.relative_to(ROOT)}: {path}" for src in sources if src.is_file()
               for path in cited(src.read_text(encoding="utf-8"))
               if not any((ROOT / path).exists() for path in (path, path.rstrip("/")))}
    assert not missing, sorted(missing)


def test_the_pattern_finds_paths_in_prose():
    assert cited("see tests/unit/test_docs.py and `scripts/bench-cli`.") == {
        "tests/unit/test_docs.py", "scripts/bench-cli"}
    assert cited("/etc/nginx/ops/nginx.conf and ops-local/tests/x") == set()


def test_every_document_is_in_the_readme_index():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    index = readme[readme.index("## Documentation"):]
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md"))
               if f"](docs/{p.name})" not in index]
    assert not missing, f"README's documentation index lacks {missing}"
