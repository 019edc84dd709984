"""A deploy's settings: invoke.yaml `deploy:` overlaid by the environment's own, where
its state lives on the manager, and the compose files and variables the deployed stack
is rendered from (read by the Swarm platform, the audit and the plan alike)."""

from __future__ import annotations

from pathlib import Path

from ..errors import OpsError
from ..facts.values import number_option

DEFAULTS = {"app": "opsdemo", "replicas": 2, "gateway_port": 8080,
            "state_dir": "/var/lib/ops-toolkit", "converge_timeout": 180,
            "files": ["compose/deploy.yaml"],
            # Run in the new image before the idle color starts (Compose: before the
            # app's containers); "" turns migrations off (docs/deploy.md, Migrations).
            "migrate": "python3 -m app.migrate", "migrate_timeout": 600,
            # Releases whose images stay on the nodes (and `rollback --to` can reach).
            "keep_releases": 10}


def options(config, env: str) -> dict:
    """invoke.yaml `deploy:` overlaid by the environment's own keys (envs.<env>.deploy)."""
    envs = config.get("envs") or {}
    opts = {**DEFAULTS, **dict(config.get("deploy") or {}),
            **dict((envs.get(env) or {}).get("deploy") or {})}
    opts["replicas"] = number_option(opts["replicas"], "deploy.replicas", 1, 50, integer=True)
    opts["gateway_port"] = number_option(opts["gateway_port"], "deploy.gateway_port", 1, 65535,
                                         integer=True)
    opts["converge_timeout"] = number_option(opts["converge_timeout"], "deploy.converge_timeout",
                                             1, 86400)
    opts["keep_releases"] = number_option(opts["keep_releases"], "deploy.keep_releases", 2, 100,
                                          integer=True)
    opts["migrate_timeout"] = number_option(opts["migrate_timeout"], "deploy.migrate_timeout",
                                            1, 86400)
    files = opts["files"]
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
        raise OpsError(f"deploy.files: a list of compose files (the deploy overlay), not {files!r}")
    opts["files"] = files
    return opts


def state_paths(s, opts):
    """Where the deploy keeps its state on the manager (lock, live upstream, releases)."""
    from ..commands import deploy as deploy_cmd

    state = Path(str(opts["state_dir"]))
    state = state if state.is_absolute() else s.root / state
    try:
        return deploy_cmd.Paths(str(state), str(opts["app"]))
    except ValueError as exc:
        raise OpsError(str(exc)) from None


def stack_input(s, opts) -> tuple[list[Path], dict[str, str]]:
    """The compose files (compose.yaml plus the deploy overlay) and the variables the
    deployed stack is rendered from."""
    files = list(s.compose_files)
    for name in opts["files"]:
        path = s.root / name
        if not path.is_file():
            if name == DEFAULTS["files"][0]:
                continue  # the default overlay is optional
            raise OpsError(f"deploy.files: {path} not found")
        files.append(path)
    env = {**s.subprocess_env(), "OPS_APP": str(opts["app"]),
           "OPS_LIVE_DIR": state_paths(s, opts).live, "OPS_GATEWAY_PORT": str(opts["gateway_port"]),
           "OPS_BACKUP_NODE_ROLE": backup_node_role(s)}
    return files, env


def backup_node_role(s) -> str:
    """Where the backup repository runs: on a worker when the environment has one (not
    on the node of the databases, which a named volume pins to the manager), else on
    the manager (local-swarm, one node)."""
    from ..runtime.inventory import inventory

    if not s.env_config.get("hosts") and not s.env_config.get("hosts_file"):
        return "manager"
    try:
        hosts = inventory(s.env, s.env_config, s.root, ssh_lookup=lambda _: {}).hosts
    except OpsError:
        return "manager"  # said by whatever connects next
    return "worker" if any(h.role == "worker" for h in hosts) else "manager"
