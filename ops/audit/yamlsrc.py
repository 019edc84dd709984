"""YAML as written, with line numbers: where a key is (following `<<` merges into the
anchor that wrote it), and the inline `# ops-audit: ignore RULE reason` comments."""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads Compose's own tags (`!override`, `!reset`) as plain values."""


def _any_tag(loader, _suffix, node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_Loader.add_multi_constructor("!", _any_tag)


class YamlError(ValueError):
    """The text is not YAML; the message names the line."""


def parse(text: str, name: str):
    """(data, root node) of one YAML document; YamlError says where it breaks."""
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlError(f"{where}: not valid YAML ({problem})") from None
    return data, node


class Locator:
    """Line numbers of keys in one file's node tree."""

    def __init__(self, node, file: str):
        self.node = node
        self.file = file

    def line(self, *path) -> int:
        """The line of the deepest part of `path` the file writes (0 when not even the
        first part is there): a missing key points at its parent."""
        return self.deepest(*path)[1]

    def deepest(self, *path) -> tuple[int, int]:
        """(how many parts of `path` the file writes, the line of the last of them)."""
        node, found, depth = self.node, 0, 0
        for part in path:
            nxt = _child(node, part)
            if nxt is None:
                break
            found, node = nxt
            depth += 1
        return depth, found

    def top_level_lines(self) -> set[int]:
        if not isinstance(self.node, yaml.MappingNode):
            return set()
        return {k.start_mark.line + 1 for k, _ in self.node.value}

    def has(self, *path) -> bool:
        node = self.node
        for part in path:
            nxt = _child(node, part)
            if nxt is None:
                return False
            node = nxt[1]
        return True


def _child(node, part):
    """(line, node) of key/index `part` under `node`, looking through `<<` merges."""
    if isinstance(node, yaml.SequenceNode):
        if isinstance(part, int):
            if 0 <= part < len(node.value):
                item = node.value[part]
                return item.start_mark.line + 1, item
            return None
        # List form of a mapping (environment:, labels:, args:): `- KEY=value` or `- KEY`.
        for item in node.value:
            if isinstance(item, yaml.ScalarNode) and \
                    str(item.value).split("=", 1)[0].strip() == str(part):
                return item.start_mark.line + 1, item
        return None
    if not isinstance(node, yaml.MappingNode):
        return None
    merged = []
    for key, value in node.value:
        if key.value == str(part) and key.tag != "tag:yaml.org,2002:merge":
            return key.start_mark.line + 1, value
        if key.tag == "tag:yaml.org,2002:merge" or key.value == "<<":
            merged += value.value if isinstance(value, yaml.SequenceNode) else [value]
    for source in merged:
        hit = _child(source, part)
        if hit:
            return hit
    return None


_IGNORE = re.compile(r"#\s*ops-audit:\s*ignore\b\s*(?P<rules>[A-Za-z]{2}\d{3}(?:\s*,\s*[A-Za-z]{2}\d{3})*)?"
                     r"\s*(?P<reason>.*)$")


@dataclass(frozen=True)
class Suppression:
    file: str
    line: int       # where the comment is
    target: int     # the line it speaks of: its own, or the next line with content
    rules: tuple[str, ...]
    reason: str


def suppressions(text: str, file: str) -> list[Suppression]:
    """Every `# ops-audit: ignore RULE[,RULE] reason` comment of a file. A comment after
    content speaks of that line; a comment on a line of its own, of the next line."""
    lines = text.splitlines()
    found = []
    for i, raw in enumerate(lines):
        m = _IGNORE.search(raw)
        if not m or _in_string(raw, m.start()):
            continue
        before = raw[:m.start()].strip()
        target = i + 1
        if not before:
            target = next((j + 1 for j in range(i + 1, len(lines))
                           if lines[j].strip() and not lines[j].strip().startswith("#")), i + 1)
        rules = tuple(r.strip().upper() for r in (m.group("rules") or "").split(",") if r.strip())
        # A later comment on the line is not part of the reason.
        reason = re.split(r"(?:^|\s)#", m.group("reason"))[0].strip()
        found.append(Suppression(file, i + 1, target, rules, reason))
    return found


def _in_string(line: str, pos: int) -> bool:
    """Whether `#` at pos sits inside a quoted scalar (then it is not a comment)."""
    head = line[:pos]
    return head.count('"') % 2 == 1 or head.count("'") % 2 == 1
