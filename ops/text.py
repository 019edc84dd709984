"""Text for people: aligned tables (pure)."""

from __future__ import annotations


def table(rows: list[tuple[str, ...]], right: frozenset[int] = frozenset(),
          pad_last: bool = False) -> list[str]:
    """Rows (the header first) as aligned lines, two spaces apart; columns in `right`
    aligned right (numbers). The last column is left as it is (a file name, a detail),
    unless `pad_last`."""
    if not rows:
        return []
    n = len(rows[0])
    padded = n if pad_last else n - 1
    widths = [max(len(r[i]) for r in rows) for i in range(padded)]

    def cell(row, i):
        if i >= padded:
            return row[i]
        return row[i].rjust(widths[i]) if i in right else row[i].ljust(widths[i])

    return ["  ".join(cell(r, i) for i in range(n)).rstrip() for r in rows]
