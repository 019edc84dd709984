"""The local Compose project's lifecycle and reads: up, down, scale, build, clean, logs,
exec, its model (`docker compose config`) and containers. A rotation replaces its
clients itself (compose/rotation.py); the monitoring profile is compose/monitoring.py."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from functools import cached_property

from ... import config, routing, scaling, wheelhouse
from ...commands import compose
from ...errors import OpsError
from ...facts.compose import Container, Model, parse_model, parse_ps, refused_passwords, wait_budget
from ...files import write_atomic
from ...shell import run


def _engine():
    """The docker SDK's module, imported on first use: `inv health` starts its slow
    probes through the CLI before paying for that import (~0.12 s)."""
    from ... import docker_api

    return docker_api


REQUIRED = ("APP_DB_PASSWORD", "AUTH_DB_PASSWORD", "REDIS_PASSWORD", "BROKER_PASSWORD")


def model_cache_key(settings: config.Settings) -> str:
    h = hashlib.sha256()
    for f in settings.compose_files:
        h.update(str(f).encode() + b"\0" + f.read_bytes() + b"\0")
    env = {**{k: v for k, v in os.environ.items() if k.startswith(("COMPOSE_", "DOCKER_"))},
           **settings.variables}
    for k in sorted(env):
        h.update(f"{k}={env[k]}\0".encode())
    return h.hexdigest()[:32]


class Stack:
    def __init__(self, settings: config.Settings, out=sys.stdout, err=sys.stderr):
        self.settings = settings
        self.base = compose.base(settings.project, settings.compose_files)
        # down/clean: every profile's containers too (monitoring), or their networks stay.
        self.base_all = compose.base(settings.project, settings.compose_files, profiles=["*"])
        self.out, self.err = out, err
        self.env = settings.subprocess_env()
        # The gateway's switches of this project alone (compose.yaml mounts it).
        self.gateway_state = settings.root / ".cache" / "gateway" / settings.project
        self.env["OPS_GATEWAY_STATE_DIR"] = str(self.gateway_state)
        self.tls = self._tls(issue=False)  # the gateway's secrets, when already made

    def _tls(self, issue: bool):
        """The gateway's certificate (issued or renewed by `up` when self-signed); its PEM
        texts go to Compose as the secrets' variables, its fingerprint as a label so that a
        new certificate recreates the gateway (Compose does not compare secret contents)."""
        from ... import gateway_tls

        tls = gateway_tls.material(self.settings.root, self.settings.env, self.settings.env_config,
                                   self.gateway_url(), self.tls_names(), out=self.err, issue=issue)
        if tls is not None:
            self.env.update(tls.compose_env())
        self._archive_tls(issue)
        return tls

    def _archive_tls(self, issue: bool) -> None:
        """pgBackRest's certificates (ops.backup.archive_tls): valid for every database
        service's name and the repository's."""
        from ...backup import archive_tls

        if issue:
            material = archive_tls.for_stack(self.settings.root, self.settings.env,
                                             {n: s.role for n, s in self.model.services.items()})
        else:
            material = archive_tls.material(self.settings.root, self.settings.env, [], [], issue=False)
        if material is not None:
            self.env.update(material.compose_env())

    def tls_names(self) -> list[str]:
        """What the gateway's certificate must be valid for: this machine, the bind
        address when it is a specific one, and `gateway` (the monitoring probes')."""
        bind = self.settings.variables.get("GATEWAY_BIND") or ""
        extra = [bind] if bind not in ("", "0.0.0.0", "127.0.0.1", "::") else []  # noqa: S104
        return ["localhost", "127.0.0.1", "::1", "gateway", *extra]

    @property
    def gateway_trust(self) -> str | bool:
        """What a client verifies the gateway's certificate against."""
        return self.tls.trust if self.tls is not None else True

    # -- reading state -----------------------------------------------------------------
    @cached_property
    def model(self) -> Model:
        return parse_model(self._config_json())

    def _config_json(self) -> str:
        """`docker compose config` output, cached on disk by its inputs.

        The output depends only on the compose files and the variables they interpolate,
        so a hash of those is a safe key; it saves a ~0.15 s subprocess on every task.
        """
        key = model_cache_key(self.settings)
        cache = self.settings.root / ".cache" / f"compose-config-{key}.json"
        try:
            return cache.read_text(encoding="utf-8")
        except FileNotFoundError:
            pass
        text = run(compose.config_json(self.base), env=self.env,
                   what="docker compose config").stdout
        cache.parent.mkdir(exist_ok=True)
        for old in cache.parent.glob("compose-config-*.json"):
            old.unlink(missing_ok=True)
        write_atomic(cache, text)
        return text

    def containers(self) -> list[Container]:
        return parse_ps(run(compose.ps(self.base), env=self.env, what="docker compose ps").stdout)

    def check_services(self, names) -> list[str]:
        for name in names:
            self.model.service(name)
        return list(names)

    def gateway_url(self) -> str | None:
        port = self.settings.variables.get("GATEWAY_PORT")
        if not port:
            return None
        host = self.settings.variables.get("GATEWAY_BIND") or "127.0.0.1"
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - display only
        return f"https://{host}:{port}"

    # -- lifecycle -----------------------------------------------------------------------
    def up(self, build: bool = False, timeout: float | None = None,
           before_start=None) -> float:
        """Every service healthy; `before_start()` runs once the images are built and
        before `compose up` (the migrations: `compose run` starts what they need)."""
        config.require(self.settings, REQUIRED)
        _engine().client()  # engine down -> one clear line before Compose prints anything
        self.tls = self._tls(issue=True)
        self.gateway_state.mkdir(parents=True, exist_ok=True)
        wait = timeout if timeout is not None else wait_budget(self.model)
        if build or self._needs_build():
            wheelhouse.ensure(self.settings.root, out=self.err)
        started = time.monotonic()
        if before_start is not None and self.blue_green_service():
            if build or self._needs_build():
                run(compose.build(self.base, self._built_services()), env=self.env,
                    stream=True, what="docker compose build")
                build = False
            # The databases (and all else that does not run or need the app) healthy
            # first, within the same budget, so that the migrations find them.
            first = run(compose.up(self.base, wait_timeout=wait, services=self._before_app()),
                        env=self.env, stream=True, check=False)
            if not first.ok:
                self._failed(started, wait)
            before_start()
        result = run(compose.up(self.base, build=build, wait_timeout=wait), env=self.env,
                     stream=True, check=False)
        if not result.ok:
            self._failed(started, wait)
        return time.monotonic() - started

    def _failed(self, started: float, wait: float):
        """Each unhealthy service explained, then the one line (and why, when known)."""
        self._explain_unhealthy()
        missing = _engine().missing_images(self._pulled_images())
        hint = (f"; images not available locally: {', '.join(missing)} "
                "(no registry? run `inv images.offline`)") if missing else ""
        refused = refused_passwords(run(compose.logs(self.base, tail="50"), env=self.env,
                                        check=False).stdout)
        if refused:
            hint += (f"; passwords refused ({', '.join(refused)}): the data volumes keep "
                     "the passwords they were created with (another checkout with "
                     f"COMPOSE_PROJECT_NAME={self.settings.project}?): use its .env, set "
                     "another COMPOSE_PROJECT_NAME, or `inv down --volumes` (deletes the data)")
        raise OpsError(not_healthy(self.settings.project, time.monotonic() - started, wait) + hint)

    def _before_app(self) -> list[str]:
        """The services that neither run the app's image nor depend on one that does."""
        services = self.model.services
        app_image = services[self.blue_green_service()].image
        app = {n for n, svc in services.items() if svc.image == app_image}
        changed = True
        while changed:
            more = {n for n, svc in services.items() if n not in app and app & set(svc.depends_on)}
            app |= more
            changed = bool(more)
        return sorted(n for n in services if n not in app)

    def _pulled_images(self) -> list[str]:
        """Images no service builds (a worker running the api's image is built, too)."""
        built = {s.image for s in self.model.services.values() if s.has_build}
        return [s.image for s in self.model.services.values()
                if s.image and not s.has_build and s.image not in built]

    def _built_services(self) -> list[str]:
        return [n for n, s in self.model.services.items() if s.has_build]

    def blue_green_service(self) -> str | None:
        """The app's service (label ops.deploy: blue-green): whose image migrates."""
        return next((n for n, s in self.model.services.items()
                     if s.labels.get("ops.deploy") == "blue-green"), None)

    def migration_runner(self, argv: list[str], restore_point):
        """How `argv` (deploy.migrate) runs here: a one-off container of the app's
        service, on the project's network with its secrets; None: no such service.
        `restore_point()`: a maker of restore points, or None (no archiving)."""
        from ...migrations import steps
        from ...runtime.runner import LOCAL

        service = self.blue_green_service()
        if service is None:
            return None

        def pending() -> str:
            return run(compose.run_once(self.base, service, [*argv, "--pending"]), env=self.env,
                       what=f"the migrate command ({service} --pending)").stdout

        def apply(say):
            return steps.stream(LOCAL, compose.run_once(self.base, service, argv), say, env=self.env)

        return steps.Runner(pending, apply, restore_point)

    def _needs_build(self) -> bool:
        built = [s.image for s in self.model.services.values() if s.has_build]
        return bool(_engine().missing_images(built))

    def _explain_unhealthy(self) -> None:
        """Name each service that is not healthy, with its last health output and logs."""
        bad = [c for c in self.containers() if not c.ok]
        for c in bad:
            state = f"{c.state}/{c.health}" if c.health else c.state
            print(f"✗ {c.service} ({c.name}): {state}", file=self.err)
            probe = _engine().last_health_output(c.name)
            if probe:
                print(f"  last health check: {probe}", file=self.err)
            logs = run(compose.logs(self.base, [c.service], tail="15"), env=self.env,
                       check=False).stdout.strip()
            for line in logs.splitlines()[-15:]:
                print(f"  | {line}", file=self.err)

    def down(self, volumes: bool = False) -> None:
        _engine().client()
        run(compose.down(self.base_all, volumes=volumes), env=self.env, stream=True,
            what="docker compose down")

    def clean(self) -> None:
        _engine().client()
        run(compose.down(self.base_all, rmi_local=True), env=self.env, stream=True,
            what="docker compose down --rmi local")

    def build(self, services=(), no_cache: bool = False) -> None:
        services = self.check_services(services)
        _engine().client()
        wheelhouse.ensure(self.settings.root, out=self.err)
        run(compose.build(self.base, services, no_cache=no_cache), env=self.env, stream=True,
            what="docker compose build")

    def build_release(self) -> list[str]:
        """The api image of the current commit (ops.release), built with this stack's
        variables."""
        from ... import release

        return release.build(self.settings, self.env, out=self.err)

    def logs(self, services=(), follow=False, tail=None, since=None, timestamps=False) -> None:
        services = self.check_services(services)
        _engine().client()
        run(compose.logs(self.base, services, follow=follow, tail=tail, since=since,
                         timestamps=timestamps), env=self.env, stream=True,
            what="docker compose logs")

    def search_logs(self, services, text: str, tail=None, since=None) -> list:
        """Every line of the chosen services (default all) that mentions `text`, in time
        order (ops.logsearch)."""
        from ... import logsearch
        from ...shell import read_lines

        services = self.check_services(services)
        _engine().client()
        return read_lines(compose.logs(self.base_all, services, tail=tail, since=since,
                                       timestamps=True),
                          lambda lines: logsearch.matching(lines, text), env=self.env,
                          what="docker compose logs")

    def exec(self, service: str, command: list[str], index: int = 1, tty: bool = False) -> int:
        self.check_services([service])
        if not command:
            raise OpsError("nothing to run: give a command, e.g. `inv exec api 'ls -la'`")
        _engine().client()
        result = run(compose.exec_(self.base, service, command, index=index, tty=tty),
                     env=self.env, stream=True, check=False)
        return result.returncode

    # -- scaling -------------------------------------------------------------------------
    def scale(self, spec: str, timeout: float | None = None, verify_requests: int = 400) -> dict:
        wanted = scaling.parse_spec(spec)
        scaling.check(self.model, wanted)
        _engine().client()
        wait = timeout if timeout is not None else wait_budget(self.model, list(wanted))
        result = run(compose.up(self.base, wait_timeout=wait, services=list(wanted), scale=wanted,
                                no_deps=True, no_recreate=True),
                     env=self.env, stream=True, check=False)
        if not result.ok:
            self._explain_unhealthy()
            raise OpsError(f"scaling {spec!r}: replicas did not become healthy within {wait:.0f}s")
        report = {}
        for name, count in wanted.items():
            replicas = [c for c in self.containers() if c.service == name and c.ok]
            if len(replicas) != count:
                raise OpsError(f"{name}: {len(replicas)} healthy replicas, expected {count}")
            report[name] = {"replicas": count}
            if count and self.routed_by_gateway(name):
                seen = self.verify_routing({c.id for c in replicas}, verify_requests)
                report[name]["answering"] = dict(seen)
        return report

    def routed_by_gateway(self, name: str) -> bool:
        return any(name in s.labels.get("ops.upstream", "").split(",")
                   for s in self.model.services.values() if s.role == "gateway")

    def verify_routing(self, expected: set[str], max_requests: int, deadline_s: float = 20.0):
        """Prove the gateway routes to exactly the expected replicas (by X-Instance)."""
        url = self.gateway_url()
        if not url:
            raise OpsError("GATEWAY_PORT is not set: cannot check routing through the gateway")
        return routing.verify(url, expected, max_requests, deadline_s, trust=self.gateway_trust)


def not_healthy(project: str, took: float, wait: float) -> str:
    """Why `up` failed, in time: Compose's --wait also gives up early, as soon as a
    container exits or turns unhealthy, and then the budget was not what ran out."""
    if took < wait - 1:
        return (f"stack {project!r} is not healthy: Compose stopped waiting after {took:.0f}s "
                f"of {wait:.0f}s (a container exited or turned unhealthy)")
    return f"stack {project!r} did not become healthy within {wait:.0f}s"
