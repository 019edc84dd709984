"""Layered settings: invoke.yaml < .env < .env.<env> < environment variables < flags.

Only this module reads .env files. Parsing is strict (python-dotenv's own parser, with
every malformed line reported as file:line) because a silently skipped line usually
means a password that quietly became empty.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv.parser import parse_stream

from .errors import USAGE, OpsError

ROOT = Path(__file__).resolve().parent.parent
ENV_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE|CREDENTIAL|WEBHOOK|(^|_)KEY($|_)", re.I)
MASK = "********"


def project_root() -> Path:
    """Where .env and the compose files live: this checkout, or $OPS_ROOT when set."""
    return Path(os.environ["OPS_ROOT"]).resolve() if os.environ.get("OPS_ROOT") else ROOT


def parse_env_text(text: str, source: str) -> dict[str, str]:
    """Parse .env content; any line that is not KEY=VALUE (or a comment) is an error."""
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        raw = binding.original.string
        # A binding's text may start with the blank lines before it: report the real line.
        line = binding.original.line + (len(raw) - len(raw.lstrip("\n")))
        if binding.error:
            shown = raw.strip().splitlines()[0] if raw.strip() else ""
            raise OpsError(f"{source}:{line}: cannot parse {_preview(shown)} (expected KEY=VALUE)")
        if binding.key is None:
            continue  # comment or blank line
        if binding.value is None:
            raise OpsError(f"{source}:{line}: {binding.key!r} has no value (expected KEY=VALUE)")
        if not ENV_KEY.match(binding.key):
            raise OpsError(f"{source}:{line}: invalid variable name {binding.key!r}")
        values[binding.key] = binding.value
    return values


def _preview(text: str) -> str:
    # Never echo a whole line: it may hold a secret.
    head = re.split(r"[=\s]", text, maxsplit=1)[0][:40]
    return repr(head + ("..." if len(text) > len(head) else ""))


def read_env_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise OpsError(f"{path}: cannot read: {exc}") from exc
    return parse_env_text(text, str(path))


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY.search(key))


def masked(values: Mapping[str, str]) -> dict[str, str]:
    return {k: (MASK if is_secret_key(k) and v else v) for k, v in values.items()}


def known_envs(configured: Mapping, root: Path) -> list[str]:
    """`local`, every env under `envs:` in invoke.yaml, and every `.env.<name>` file."""
    names = {"local", *configured}
    names.update(p.name[len(".env."):] for p in root.glob(".env.*") if p.name != ".env.example")
    return sorted(n for n in names if ENV_NAME.match(n))


def check_env_name(name: str, configured: Mapping, root: Path) -> str:
    if not isinstance(name, str) or not ENV_NAME.match(name):
        raise OpsError(f"invalid environment name {name!r}: use lowercase letters, digits, - and _",
                       code=USAGE)
    known = known_envs(configured, root)
    if name not in known:
        raise OpsError(f"unknown environment {name!r} (known: {', '.join(known)})", code=USAGE)
    return name


@dataclass(frozen=True)
class Settings:
    env: str
    root: Path
    project: str
    compose_files: tuple[Path, ...]
    variables: dict[str, str] = field(repr=False)
    sources: dict[str, str] = field(repr=False)  # variable -> where its value came from
    env_config: Mapping = field(default_factory=dict, repr=False)  # invoke.yaml envs.<env>

    def subprocess_env(self) -> dict[str, str]:
        """Environment for docker/compose: the layered variables over the process env."""
        return {**os.environ, **self.variables}


def layer(layers: list[tuple[str, Mapping[str, str]]]) -> tuple[dict[str, str], dict[str, str]]:
    """Merge (source, values) pairs, later wins; also return each key's winning source."""
    merged: dict[str, str] = {}
    sources: dict[str, str] = {}
    for source, values in layers:
        for key, value in values.items():
            merged[key] = str(value)
            sources[key] = source
    return merged, sources


def load(
    stack_config: Mapping,
    envs_config: Mapping,
    env: str = "local",
    root: Path = ROOT,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve the settings of one environment. `stack_config` is invoke.yaml's `stack:`."""
    env = check_env_name(env, envs_config, root)
    environ = os.environ if environ is None else environ
    dotenv = read_env_file(root / ".env")
    dotenv_env = read_env_file(root / f".env.{env}")
    defaults = {k: str(v) for k, v in (stack_config.get("vars") or {}).items()}
    env_defaults = {k: str(v) for k, v in ((envs_config.get(env) or {}).get("vars") or {}).items()}
    # Only variables the stack knows about are taken from the process environment, so an
    # unrelated shell variable never shows up in `inv config`.
    known = set(defaults) | set(env_defaults) | set(dotenv) | set(dotenv_env)
    known |= {"COMPOSE_PROJECT_NAME", *stack_config.get("required_vars", ())}
    files = tuple(root / f for f in stack_config.get("compose_files", ["compose/compose.yaml"]))
    known |= referenced_variables(files)
    from_environ = {k: v for k, v in environ.items() if k in known}
    variables, sources = layer([
        ("invoke.yaml", defaults),
        (f"invoke.yaml envs.{env}", env_defaults),
        (".env", dotenv),
        (f".env.{env}", dotenv_env),
        ("environment", from_environ),
        ("flag", flags or {}),
    ])
    project = variables.get("COMPOSE_PROJECT_NAME") or str(stack_config.get("project", "opsdemo"))
    if not re.match(r"^[a-z0-9][a-z0-9_-]*$", project):
        raise OpsError(f"invalid compose project name {project!r}: lowercase letters, digits, - _")
    variables["COMPOSE_PROJECT_NAME"] = project
    return Settings(env, root, project, files, variables, sources,
                    env_config=envs_config.get(env) or {})


COMPOSE_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


def compose_variables(text: str) -> set[str]:
    """Names interpolated by a compose file (`${NAME...}`; `$${...}` is an escape)."""
    return set(COMPOSE_VAR.findall(text))


def referenced_variables(files) -> set[str]:
    names: set[str] = set()
    for path in files:
        try:
            names |= compose_variables(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise OpsError(f"compose file not found: {path}") from exc
    return names


def require(settings: Settings, names) -> None:
    missing = [n for n in names if not settings.variables.get(n)]
    if missing:
        raise OpsError(
            f"missing settings: {', '.join(missing)} (set them in {settings.root / '.env'}; "
            "scripts/up creates it from .env.example with random secrets)"
        )
