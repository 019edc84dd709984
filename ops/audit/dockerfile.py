"""Dockerfiles: a small parser (instructions with their line, continuation lines joined,
ARG defaults substituted into FROM) and the checks on it. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .compose_rules import image_floats
from .rules import Finding


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


@dataclass
class Stage:
    line: int
    image: str
    name: str | None
    user: str | None = None
    user_line: int = 0
    copies_from: set = field(default_factory=set)


@dataclass
class Dockerfile:
    file: str
    stages: list[Stage]
    healthcheck: bool

    @property
    def final_user(self) -> str | None:
        return self.stages[-1].user if self.stages else None

    def user_of(self, target: str | None) -> str | None:
        """The USER the image built up to `target` (default: the last stage) runs as."""
        stage = _stage(self, target) if target else None
        return stage.user if stage else self.final_user

    def stage_names(self) -> list[str]:
        return [s.name or str(i) for i, s in enumerate(self.stages)]


def instructions(text: str) -> list[Instruction]:
    out, buf, start = [], [], 0
    for i, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comments inside a continued instruction
        if not buf:
            start = i
        if stripped.endswith("\\"):
            buf.append(stripped[:-1])
            continue
        buf.append(stripped)
        joined = " ".join(buf)
        buf = []
        keyword, _, args = joined.partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
    if buf:
        joined = " ".join(buf)
        keyword, _, args = joined.partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
    return out


def _substitute(text: str, args: dict[str, str]) -> str:
    def one(m):
        name = m.group(1) or m.group(3)
        default = m.group(2)
        value = args.get(name)
        return value if value else (default or "${" + name + "}")
    return re.sub(r"\$\{([A-Za-z_]\w*)(?::-([^}]*))?\}|\$([A-Za-z_]\w*)", one, text)


def parse(text: str, file: str) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    health = False
    for ins in instructions(text):
        if ins.keyword == "ARG" and not stages:
            name, _, default = ins.args.partition("=")
            global_args[name.strip()] = default.strip().strip('"')
        elif ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            image = _substitute(words[0], global_args) if words else ""
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(ins.line, image, name))
        elif not stages:
            continue
        elif ins.keyword == "USER":
            stages[-1].user, stages[-1].user_line = ins.args.split()[0] if ins.args else "", ins.line
        elif ins.keyword in ("COPY", "ADD"):
            m = re.search(r"--from=(\S+)", ins.args)
            if m:
                stages[-1].copies_from.add(m.group(1))
        elif ins.keyword == "HEALTHCHECK":
            health = not ins.args.upper().startswith("NONE")
    # A stage inherits USER from the stage it is built FROM.
    by_name = {}
    for i, s in enumerate(stages):
        parent = by_name.get(s.image)
        if parent is not None and s.user is None:
            s.user = parent.user
        by_name[s.name or str(i)] = s
    return Dockerfile(file, stages, health)


def check(df: Dockerfile, target: str | None = None) -> list[Finding]:
    out: list[Finding] = []
    if not df.stages:
        return out
    names = df.stage_names()
    for s in df.stages:
        if s.image in names or s.image == "scratch":
            continue
        floats = image_floats(s.image)
        if floats:
            out.append(Finding("OA114", f"FROM {s.image} {floats[1]}", df.file, s.line, "",
                               floats[0]))
    real = [s for s in df.stages if s.image != "scratch"]
    if len(df.stages) == 1 and real:
        out.append(Finding("OA109", "one stage: the build tools ship in the runtime image",
                           df.file, df.stages[0].line))
    if target is not None:
        out += _target(df, target)
    shipped = _stage(df, target) if target else df.stages[-1]
    if shipped and shipped.image != "scratch":
        user = (shipped.user or "").split(":")[0]
        if user in ("", "root", "0"):
            line = shipped.user_line or shipped.line
            what = f"USER {shipped.user}" if shipped.user else "no USER"
            out.append(Finding("OA209", f"the shipped stage runs as root ({what})", df.file, line))
    return out


def _stage(df: Dockerfile, name: str) -> Stage | None:
    for i, s in enumerate(df.stages):
        if (s.name or str(i)) == name:
            return s
    return None


def _target(df: Dockerfile, target: str) -> list[Finding]:
    stage = _stage(df, target)
    if stage is None or stage is df.stages[-1]:
        return []
    index = df.stages.index(stage)
    used_by = [s.name or str(i) for i, s in enumerate(df.stages)
               if i > index and (target in s.copies_from or str(index) in s.copies_from
                                 or s.image == target)]
    if not used_by:
        return []
    return [Finding("OA110", f"build target {target!r} is a build stage ({', '.join(used_by)} "
                             f"copies from it), not the runtime stage {df.stage_names()[-1]!r}",
                    df.file, stage.line)]
