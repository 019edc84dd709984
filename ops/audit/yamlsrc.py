"""YAML as written, with line numbers: where a key is (following `<<` merges into the
anchor that wrote it), and the inline `# ops-audit: ignore RULE reason` comments."""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

# libyaml's parser when PyYAML was built with it (3x faster on a large file); the pure
# Python one otherwise. Both give nodes with line numbers.
_SAFE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# What a file's aliases may expand to: a real stack of 500 services is ~50,000 values; a
# "billion laughs" file is hundreds of millions, which Compose would spend minutes on.
MAX_VALUES = 2_000_000


class _Loader(_SAFE):
    """SafeLoader that reads Compose's own tags (`!override`, `!reset`) as plain values."""


class _PyLoader(yaml.SafeLoader):
    """The pure-Python parser: its error messages name the character (libyaml's do not)."""


def _any_tag(loader, _suffix, node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_Loader.add_multi_constructor("!", _any_tag)
_PyLoader.add_multi_constructor("!", _any_tag)


class YamlError(ValueError):
    """The text is not YAML; the message names the line."""


@dataclass(frozen=True)
class Tree:
    """One document's root node (None for an empty one) and its mapping nodes, each
    once: listed while it is sized, kept for `build`, which needs them again."""

    node: object
    mappings: tuple = ()


def parse(text: str, name: str):
    """(data, root node) of one YAML document, parsed once (the data is built from the
    nodes); YamlError says where it breaks, or that its aliases expand past MAX_VALUES."""
    tree = nodes(text, name)
    return build(tree, name), tree.node


def nodes(text: str, name: str) -> Tree:
    """The document's node tree, refused when it is not YAML or when its aliases expand
    past MAX_VALUES (an alias bomb), in a fraction of a second."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        error = exc
        if _SAFE is not yaml.SafeLoader:
            try:  # the same error, said by the parser that names the character
                yaml.compose(text, Loader=_PyLoader)
            except yaml.YAMLError as py_exc:
                error = py_exc
            except RecursionError:
                pass  # libyaml's own limit (nesting deeper than 1000) said it
        mark = getattr(error, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise YamlError(f"{where}: not valid YAML ({problem})") from None
    if node is None:
        return Tree(None)
    mappings = _mappings(node, MAX_VALUES)
    if mappings is None:
        raise YamlError(f"{name}: its aliases expand to more than {MAX_VALUES:,} values "
                        "(an alias bomb?): not read")
    return Tree(node, tuple(mappings))


def build(tree: Tree, name: str):
    """The data of a node tree from `nodes`. Building merges `<<` keys into the nodes
    themselves: they are put back after, for the Locator, which follows a merge to the
    anchor that wrote the key."""
    if tree.node is None:
        return None
    written = [(m, list(m.value)) for m in tree.mappings]
    try:
        return _Loader("").construct_document(tree.node)
    except yaml.YAMLError as exc:
        raise YamlError(f"{name}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    finally:
        for m, value in written:
            m.value = value


def _mappings(root, limit: int):
    """Every mapping node of the document (each once), or None when the document, its
    aliases expanded, holds more than `limit` values. An alias is the node it names,
    shared: each node is sized once, so a bomb costs no more than its text. Iterative:
    a deeply nested file is no RecursionError."""
    sizes: dict[int, int] = {}
    mappings = []
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes and not children_done:
            continue
        kids = ([x for kv in node.value for x in kv] if isinstance(node, yaml.MappingNode)
                else node.value if isinstance(node, yaml.SequenceNode) else [])
        if not children_done:
            sizes[id(node)] = 1  # a recursive alias counts once
            if isinstance(node, yaml.MappingNode):
                mappings.append(node)
            stack.append((node, True))
            stack += [(k, False) for k in kids if id(k) not in sizes]
            continue
        sizes[id(node)] = min(limit + 1, 1 + sum(sizes[id(k)] for k in kids))
    return mappings if sizes[id(root)] <= limit else None



class Locator:
    """Line numbers of keys in one file's node tree."""

    def __init__(self, node, file: str):
        self.node = node
        self.file = file
        self._keys: dict[int, tuple[dict, list]] = {}  # a mapping's keys, read once

    def _child(self, node, part):
        """_child, with each mapping's keys indexed the first time it is asked about:
        every service's lines are looked up, so a linear scan was quadratic."""
        if not isinstance(node, yaml.MappingNode):
            return _child(node, part)
        index = self._keys.get(id(node))
        if index is None:
            keys, merged = {}, []
            for key, value in node.value:
                if key.tag == "tag:yaml.org,2002:merge" or key.value == "<<":
                    merged += value.value if isinstance(value, yaml.SequenceNode) else [value]
                else:
                    keys.setdefault(str(key.value), (key.start_mark.line + 1, value))
            index = self._keys[id(node)] = (keys, merged)
        keys, merged = index
        hit = keys.get(str(part))
        if hit is not None:
            return hit
        for source in merged:
            hit = self._child(source, part)
            if hit:
                return hit
        return None

    def line(self, *path) -> int:
        """The line of the deepest part of `path` the file writes (0 when not even the
        first part is there): a missing key points at its parent."""
        return self.deepest(*path)[1]

    def deepest(self, *path) -> tuple[int, int]:
        """(how many parts of `path` the file writes, the line of the last of them)."""
        node, found, depth = self.node, 0, 0
        for part in path:
            nxt = self._child(node, part)
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
            nxt = self._child(node, part)
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
