"""The audit's I/O: find the files, read compose files through Compose itself
(`docker compose config`, interpolated and as written), fall back to plain YAML with a
note, read Dockerfiles and pipelines, and run the pure checks on them."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OpsError
from . import compose_rules, dockerfile, pipeline, yamlsrc
from .report import Audit, Scope, apply_suppressions
from .rules import CATEGORIES, Finding
from .yamlsrc import Locator, YamlError, suppressions

COMPOSE_NAME = re.compile(r"^(docker-)?compose(\.[\w-]+)*\.ya?ml$")
DOCKERFILE_NAME = re.compile(r"^(Dockerfile(\.[\w-]+)?|[\w.-]+\.Dockerfile)$")
SKIP_DIRS = {".git", "node_modules", ".venv", "venv", "__pycache__", ".cache", ".tox",
             ".pytest_cache", "wheels"}
# Compose on a terminal: `WARN[0000] The "X" variable is not set.`; piped (2.40 logs with
# logfmt): `level=warning msg="The \"X\" variable is not set. ..."`.
_UNSET = re.compile(r'The \\?"(\w+)\\?" variable is not set')


def resolved(path: Path) -> Path:
    """The real path; a symbolic link loop is said, not a traceback (Python 3.11's
    resolve() raises RuntimeError for one)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        raise OpsError(f"{path}: a symbolic link loop", code=2) from None


def unset_variables(stderr: str) -> list[str]:
    """The variables Compose read as blank, from its warnings, sorted once each."""
    return sorted(set(_UNSET.findall(stderr)))


@dataclass
class ComposeFiles:
    files: list[Path]                 # compose files, merged in this order
    env: dict[str, str] | None = None  # interpolation variables (None: Compose's own .env)
    project: str | None = None
    translated: bool = False          # rendered for a Swarm environment by inv deploy
    found: bool = False               # found in a directory (not named): may be a fragment


@dataclass
class _Run:
    root: Path
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scopes: dict[str, Scope] = field(default_factory=dict)
    sups: list = field(default_factory=list)
    services: dict[str, str] = field(default_factory=dict)
    edges: dict[str, list[str]] = field(default_factory=dict)
    labels: dict[str, dict] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    targets: dict[str, list[str]] = field(default_factory=lambda: {
        "compose": [], "dockerfile": [], "pipeline": []})
    dockerfiles: set[Path] = field(default_factory=set)
    checked: set[tuple[Path, str | None]] = field(default_factory=set)

    def show(self, path: Path) -> str:
        try:
            return str(resolved(path).relative_to(self.root))
        except ValueError:
            return str(path)

    def read(self, path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise OpsError(f"{self.show(path)}: no such file", code=2) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise OpsError(f"{self.show(path)}: cannot read: {exc}", code=2) from None


def audit(stacks: list[ComposeFiles], dockerfiles: list[Path], repo: Path | None, root: Path,
          env: str | None = None) -> Audit:
    run = _Run(root.resolve())
    for stack in stacks:
        _stack(run, stack)
    for path in dockerfiles:
        if resolved(path) not in run.dockerfiles:
            _dockerfile(run, path, None)
    categories = tuple(CATEGORIES)
    if repo is not None:
        if not any(run.targets.values()) and not any(
                p for pattern in pipeline.PIPELINE_GLOBS for p in repo.glob(pattern)):
            raise OpsError(f"{run.show(repo)}: nothing to audit (no compose file with services, "
                           "Dockerfile or CI pipeline found)", code=2)
        files = [p for pattern in pipeline.PIPELINE_GLOBS for p in sorted(repo.glob(pattern))]
        texts = [pipeline.PipelineFile(run.show(p), run.read(p)) for p in files]
        for t in texts:
            run.targets["pipeline"].append(t.file)
            run.sups += suppressions(t.text, t.file)
            run.scopes[t.file] = Scope(top={1})
        label = run.show(repo) if repo.resolve() != run.root else "the repository"
        run.findings += pipeline.check(texts, label, run.show(repo / ".github" / "workflows"))
    else:
        categories = tuple(c for c in CATEGORIES if c != "cicd")
    findings = apply_suppressions(run.findings, run.sups, run.scopes)
    return Audit(run.targets, findings, run.notes, categories, run.services, env, run.edges,
                 run.labels, run.images)


@dataclass
class Inputs:
    """What one audit reads: compose stacks, Dockerfiles, the repository whose pipeline
    is checked (None: CI/CD not checked), and the directory locations are relative to."""

    stacks: list[ComposeFiles]
    dockerfiles: list[Path]
    repo: Path | None
    base: Path
    env: str | None = None

    def run(self) -> Audit:
        return audit(self.stacks, self.dockerfiles, self.repo, self.base, self.env)


def project(s, rendered: tuple[list[Path], dict[str, str]] | None = None,
            env: str | None = None) -> Inputs:
    """The project's own stack (`rendered`: the files and variables of a Swarm
    environment's stack), the Dockerfiles beside its compose files, its pipeline."""
    if rendered:
        stack = ComposeFiles(rendered[0], rendered[1], s.project, translated=True)
    else:
        stack = ComposeFiles(list(s.compose_files), s.subprocess_env(), s.project)
    dockerfiles = [df for folder in sorted({f.parent for f in s.compose_files})
                   for df in discover(folder)[1]]
    return Inputs([stack], dockerfiles, s.root, s.root, env)


def from_paths(paths: list[str]) -> Inputs:
    """Files and directories as given: a directory is a repository (its compose files,
    Dockerfiles and pipeline); a file is a compose file or a Dockerfile by its name."""
    stacks, dockerfiles, repo = [], [], None
    for raw in paths:
        if not raw.strip():
            raise OpsError("--path is empty: give a compose file, Dockerfile or directory", code=2)
        p = Path(raw)
        if p.is_dir():
            found, dfs = discover(p)
            stacks += found
            dockerfiles += dfs
            repo = repo or p
        elif p.is_file():
            if DOCKERFILE_NAME.match(p.name):
                dockerfiles.append(p)
            elif p.suffix in (".yml", ".yaml") or COMPOSE_NAME.match(p.name):
                stacks.append(ComposeFiles([p]))
            else:
                raise OpsError(f"{raw}: not a compose file (.yml/.yaml), a Dockerfile or a "
                               "directory", code=2)
        elif p.is_symlink():
            raise OpsError(f"{raw}: a symbolic link that leads nowhere (a loop, or a missing "
                           "target)", code=2)
        else:
            raise OpsError(f"{raw}: no such file or directory", code=2)
    return Inputs(stacks, dockerfiles, repo, Path.cwd())


def discover(path: Path) -> tuple[list[ComposeFiles], list[Path]]:
    """Compose files (each with the compose.override.* Compose merges beside it) and
    Dockerfiles under a directory, hidden and vendored directories left out."""
    compose, dockerfiles = [], []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if COMPOSE_NAME.match(name):
                compose.append(p)
            elif DOCKERFILE_NAME.match(name):
                dockerfiles.append(p)
    stacks = []
    for p in compose:
        if ".override." in p.name and any(q.parent == p.parent and q != p and
                                          ".override." not in q.name for q in compose):
            continue
        overrides = [q for q in compose if q.parent == p.parent and
                     q.name.startswith(p.name.split(".")[0] + ".override.")]
        stacks.append(ComposeFiles([p, *overrides], found=True))
    return stacks, dockerfiles


class _Resolving:
    """`docker compose config` on a stack (the interpolated model, and the variables it
    read as blank), running from the start of the audit beside this process's YAML
    parse: on 500 services each takes about half a second. Ended at once when the YAML
    is refused (an alias bomb would hold Compose for a minute); the values as written
    (for the secret rules) come from the files' own YAML."""

    TIMEOUT = 60

    def __init__(self, stack: ComposeFiles):
        import tempfile

        from ..commands import compose
        from ..runtime.runner import LOCAL
        from ..shell import compose_program

        b = compose.base(stack.project, stack.files, project_directory=stack.files[0].parent,
                         program=compose_program())
        env = stack.env
        if env is None:
            # Compose reads the .env beside the file; the caller's COMPOSE_* must not steer it.
            env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
        self._runner = LOCAL
        self._out, self._err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        self._proc, self._why = None, ""
        try:
            self._proc = LOCAL.popen(compose.config_json(b), stdout=self._out, stderr=self._err,
                                     env=env, own_group=True)
        except OpsError as exc:
            self._why = str(exc)

    def cancel(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._runner.end(self._proc)
        self.result()

    def result(self) -> tuple[dict | None, str]:
        """(model, '' or the variables read as blank), or (None, why) when Compose cannot
        resolve the files."""
        from ..facts.values import load_json
        from ..runtime.runner import last_line
        from ..shell import docker_problem

        proc, self._proc = self._proc, None
        if proc is None:
            return None, self._why or "docker compose config did not answer"
        try:
            rc = proc.wait(timeout=self.TIMEOUT)
        except subprocess.TimeoutExpired:
            self._runner.end(proc)
            proc.wait()
            rc = None
        except BaseException:  # Ctrl-C: never leave Compose running
            self._runner.end(proc)
            proc.wait()
            raise
        with self._out as out, self._err as err:
            out.seek(0)
            err.seek(0)
            stdout, stderr = (f.read().decode(errors="replace") for f in (out, err))
        if rc is None:
            return None, f"docker compose config: timed out after {self.TIMEOUT}s"
        if rc != 0:
            return None, (docker_problem(stderr) or f"docker compose config failed (exit {rc}): "
                          f"{last_line(stderr) or 'no error output'}")
        try:
            model = load_json(stdout, "docker compose config")
        except OpsError as exc:
            return None, str(exc)
        unset = unset_variables(stderr)
        return model, f"variables not set, read as blank: {', '.join(unset)}" if unset else ""


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _stack(run: _Run, stack: ComposeFiles) -> None:
    shown = [run.show(f) for f in stack.files]
    locators, written, texts, trees = [], {}, [], []
    for f in stack.files:
        texts.append(run.read(f))
    resolving = _Resolving(stack)
    try:
        for text, label in zip(texts, shown, strict=True):
            try:  # invalid YAML, or an alias bomb: refused, and Compose ended at once
                trees.append(yamlsrc.nodes(text, label))
                data = yamlsrc.build(trees[-1], label)
            except YamlError as exc:
                raise OpsError(str(exc), code=2) from None
            if not isinstance(data, dict):
                raise OpsError(f"{label}: not a compose file (no mapping at the top)", code=2)
            written = _merge(written, data)
            locators.append(Locator(trees[-1].node, label))
            run.sups += suppressions(text, label)
    except BaseException:
        resolving.cancel()
        raise
    model, why = resolving.result()
    raw = written  # the values as written: an interpolated one is not a literal
    if model is None:
        run.notes.append(f"{' + '.join(shown)}: read as plain YAML, not through Compose ({why}); "
                         "interpolation, extends and overrides were not applied")
        model = written
    elif why:
        run.notes.append(f"{' + '.join(shown)}: {why}")
    if not isinstance(model.get("services"), dict) or not model["services"]:
        if stack.found:  # a fragment beside the stack (volumes, networks, x- anchors)
            run.notes.append(f"{' + '.join(shown)}: no services; not audited")
            return
        raise OpsError(f"{' + '.join(shown)}: no services: nothing to audit", code=2)
    run.targets["compose"].append(" + ".join(shown))

    def locate(service, *keys):
        """Where a service's key is written: the deepest match, the last file on a tie
        (an overlay's value is the one Compose uses)."""
        best = max(((loc.deepest("services", service, *keys), i) for i, loc in enumerate(locators)),
                   key=lambda x: (x[0][0], x[1]))
        (depth, line), i = best
        return locators[i].file, line if depth > 1 else 0

    for loc in locators:
        scope = run.scopes.setdefault(loc.file, Scope())
        scope.top |= loc.top_level_lines()
        for name in model["services"]:
            line = loc.line("services", name)
            if line and loc.has("services", name):
                scope.services[line] = name
    health, users, built = set(), {}, set()
    base = stack.files[0].parent
    for name, svc in model["services"].items():
        svc = svc or {}
        run.services[name] = _role(svc)
        run.edges[name] = list(compose_rules.depends_of(svc))
        run.labels[name] = compose_rules.labels_of(svc)
        run.images[name] = str(svc.get("image") or "")
        build = svc.get("build")
        if not build:
            continue
        build = {"context": build} if isinstance(build, str) else build
        df = _dockerfile_of(build, base)
        if df is None:
            run.notes.append(f"service {name!r}: its Dockerfile is not a local file; not audited")
            continue
        parsed = _dockerfile(run, df, build.get("target"), (name, locate))
        if parsed is None:
            run.notes.append(f"service {name!r}: Dockerfile {run.show(df)} not found")
            continue
        image = str(svc.get("image") or "")
        built.add(image)
        for key in (name, image):
            users[key] = parsed.user_of(build.get("target"))
            if parsed.healthcheck:
                health.add(key)
    swarm = stack.translated or compose_rules.is_swarm_stack(raw or model)
    if swarm and not stack.translated:
        run.notes.append(f"{' + '.join(shown)}: read as a Swarm stack file (Swarm-only deploy "
                         "keys or overlay networks)")
    pulled = {str(svc.get("image") or "") for svc in model["services"].values()
              if svc and not svc.get("build") and not compose_rules.tier_of(svc)
              and not str(svc.get("user") or "").strip()} - built
    ctx = compose_rules.Context(locate, swarm=swarm, translated=stack.translated,
                                image_health=health, image_user=users, built=built - {""},
                                pulled_user=_image_users(pulled))
    run.findings += compose_rules.check(model, raw or model, ctx)
    if ctx.user_unknown:
        run.notes.append(f"{', '.join(ctx.user_unknown)}: the image is not pulled here, so "
                         "whether it runs as root is unknown (pull it, or set user:)")


def _image_users(images: set[str]) -> dict[str, str]:
    """The USER of the images the stack pulls, where the local engine has them (the audit
    reads files: an engine that is not running, or an image not pulled, is not an error)."""
    if not images - {""}:
        return {}
    from .. import engine_socket

    sock = engine_socket.socket_path()
    if sock is not None:  # the engine's socket read directly: no docker SDK to import
        try:
            return engine_socket.image_users(sorted(images - {""}), sock)
        except OSError:
            return {}  # no engine here: every such image's user is unknown (a note)
    from ..docker_api import image_users
    return image_users(sorted(images - {""}))


def _dockerfile_of(build: dict, base: Path) -> Path | None:
    context = str(build.get("context") or ".")
    if "://" in context or context.startswith("git@"):
        return None
    ctx = Path(context) if Path(context).is_absolute() else base / context
    name = str(build.get("dockerfile") or "Dockerfile")
    return Path(name) if Path(name).is_absolute() else ctx / name


def _dockerfile(run: _Run, path: Path, target: str | None, service=None):
    """Parse and check one Dockerfile (once per target). `service`: (name, locate) of the
    compose service that builds it, where a wrong build target is reported."""
    if not path.is_file():
        return None
    label = run.show(path)
    text = run.read(path)
    parsed = dockerfile.parse(text, label)
    real = resolved(path)
    if real not in run.dockerfiles:
        run.dockerfiles.add(real)
        run.targets["dockerfile"].append(label)
        run.sups += suppressions(text, label)
        first = dockerfile.instructions(text)
        run.scopes[label] = Scope(top={first[0].line} if first else set())
    if (real, target) not in run.checked:
        run.checked.add((real, target))
        for f in dockerfile.check(parsed, target):
            if f.rule == "OA110" and service:
                f.service = service[0]
                f.file, f.line = service[1](service[0], "build", "target")
            run.findings.append(f)
    return parsed


def _role(svc: dict) -> str:
    labels = compose_rules.labels_of(svc)
    return (labels.get("ops.role") or compose_rules.tier_of(svc)
            or ("app" if compose_rules.is_app(svc) else "other"))
