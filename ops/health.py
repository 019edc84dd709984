"""`inv health`: every check at once, one verdict.

Checks run concurrently (threads: each is I/O bound), so the whole run costs about as
much as the slowest single check. Which checks apply follows each service's `ops.role`
label: database -> SELECT 1, cache -> PING, app -> live/ready inside each replica,
gateway -> the app's live/ready through the published port.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass

from .commands import probes
from .facts.compose import Model
from .text import table

CHECK_TIMEOUT = 5.0
# While a slow probe runs, the probes that exec a process in a container take turns, and
# none waits longer than this after the one before it started (so a hung dependency
# delays the next by this much, once). Measured locally: the broker's ping took 0.62 s
# beside four concurrent execs, 0.55 s beside the same four in turn, 0.51 s alone.
TURN_CAP = 0.25
# A backstop: each probe in a container is killed there after its own timeout (5-10 s),
# but an engine or an SSH channel can hang too, and health must still answer.
JOB_DEADLINE = 20.0


@dataclass(frozen=True)
class Check:
    service: str
    check: str
    ok: bool
    latency_ms: float
    detail: str
    warning: bool = False  # passes, but someone should look (low disk, a held lock)

    @property
    def status(self) -> str:
        return ("warn" if self.warning else "ok") if self.ok else "FAIL"


class Turns:
    """While `slow` jobs run, one job at a time, each waiting at most `cap` s after the
    previous one started; once every slow job has called `slow_done()`, all at once."""

    def __init__(self, slow: int, cap: float = TURN_CAP):
        self.cap = cap
        self._cond = threading.Condition()
        self._holder = None  # (token, monotonic start) of the job whose turn it is
        self._slow = slow

    @contextmanager
    def turn(self):
        with self._cond:
            while self._holder is not None and self._slow > 0:
                left = self._holder[1] + self.cap - time.monotonic()
                if left <= 0:
                    break  # overdue: it keeps running, the next one starts
                self._cond.wait(left)
            token = object()
            self._holder = (token, time.monotonic())
        try:
            yield
        finally:
            with self._cond:
                if self._holder is not None and self._holder[0] is token:
                    self._holder = None
                self._cond.notify_all()

    def slow_done(self) -> None:
        with self._cond:
            self._slow -= 1
            self._cond.notify_all()


def _timed(service, name, fn, turns=None) -> Check:
    """Run one probe; it returns (ok, detail) or (ok, warning, detail). A probe started
    ahead of its job (early_probe) is timed from its own start, one waiting for its turn
    from its turn."""
    warning = False
    with turns.turn() if turns is not None else nullcontext():
        start = getattr(fn, "started", None) or time.perf_counter()
        try:
            result = fn()
            ok, detail = (result[0], result[-1])
            warning = bool(result[1]) if len(result) == 3 else False
        except Exception as exc:  # noqa: BLE001 - any failure of a probe is its result
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        took = time.perf_counter() - start
    return Check(service, name, ok, round(took * 1000, 1), detail, warning)


def run_jobs(jobs, first=(), execs=(), deadline: float = JOB_DEADLINE) -> list[Check]:
    """(service, check, callable) jobs, all at once: the run costs the slowest one.

    The jobs whose callables are in `first` (the slow probes) start before the others:
    a run then lasts about as long as they do. Meanwhile those in `execs` (a process
    exec'd in a container: CPU on the same engine as the slow probe) take turns, and
    all go at once when the slow ones are done. A job with no answer by `deadline` is a
    failed check; its thread is a daemon, so a hung engine or SSH channel never holds
    the command's exit. The report keeps the jobs' order.
    """
    if not jobs:
        return []
    order = sorted(range(len(jobs)), key=lambda i: jobs[i][2] not in first)
    slow = sum(fn in first for *_, fn in jobs)
    turns = Turns(slow) if slow and execs else None
    results: list[Check | None] = [None] * len(jobs)

    def work(i: int) -> None:
        service, name, fn = jobs[i]
        try:
            results[i] = _timed(service, name, fn, turns if fn in execs else None)
        finally:
            if turns is not None and fn in first:
                turns.slow_done()

    threads = [threading.Thread(target=work, args=(i,), name=f"check-{i}", daemon=True)
               for i in range(len(jobs))]
    for i in order:
        threads[i].start()
    end = time.monotonic() + deadline
    out = []
    for i, (service, name, _) in enumerate(jobs):
        threads[i].join(max(0.0, end - time.monotonic()))
        out.append(results[i] or Check(service, name, False, round(deadline * 1000, 1),
                                       f"no answer in {deadline:g} s"))
    return out


def container_state(c) -> tuple[bool, str]:
    state = c.attrs.get("State") or {}
    status = state.get("Status", "?")
    health = (state.get("Health") or {}).get("Status", "")
    if status != "running":
        return False, f"{status} (exit {state.get('ExitCode')})"
    if health and health != "healthy":
        return False, f"running, {health}"
    return True, f"running, {health or 'no healthcheck'}"


def _exec(c, argv) -> tuple[int, str]:
    from .commands.line import words

    code, output = c.exec_run(words(argv), demux=False)
    return code, (output or b"").decode(errors="replace").strip()


def role_probe(c, probe: probes.RoleProbe) -> tuple:
    return probe.verdict(*_exec(c, probe.line))


def http_inside(c, port: int) -> dict[str, str]:
    code, out = _exec(c, probes.http_probe(port, ["/health/live", "/health/ready"]))
    if code != 0:
        raise RuntimeError(f"probe exit {code}: {out[-200:]}")
    return probes.parse_http_probe(out)


def http_get(url: str, version: str | None = None, trust: str | bool = True) -> tuple[bool, bool, str]:
    """200 from the URL; with `version`, the X-App-Version header must name it too.
    `trust`: the CA file an https URL's certificate is verified against. The gateway's
    X-Maintenance header (maintenance mode) is a warning: users get 503 meanwhile."""
    import requests  # here: a Swarm health run imports it while its probes wait

    resp = requests.get(url, timeout=CHECK_TIMEOUT, verify=trust)
    served = resp.headers.get("X-App-Version")
    ok = resp.status_code == 200 and (version is None or served == version)
    detail = f"HTTP {resp.status_code}" + (f" (v {served})" if served else "")
    if version is not None and served != version:
        detail += f", expected v {version}"
    maintenance = resp.headers.get("X-Maintenance", "")
    if maintenance:
        detail += f"; MAINTENANCE MODE {maintenance}: users get 503 (inv maintenance.off)"
    return ok, bool(maintenance), detail


def tls_check(url: str, trust: str | bool = True) -> tuple[bool, bool, str]:
    """A TLS handshake with the gateway, verified as any client would (chain and name);
    then how long its certificate has left: failing within tls.CRITICAL_DAYS, a warning
    within tls.WARN_DAYS."""
    import datetime as dt
    import socket
    import ssl
    from urllib.parse import urlsplit

    from . import tls

    parts = urlsplit(url)
    ctx = ssl.create_default_context(cafile=trust if isinstance(trust, str) else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        with socket.create_connection((parts.hostname, parts.port or 443), CHECK_TIMEOUT) as raw, \
                ctx.wrap_socket(raw, server_hostname=parts.hostname) as conn:
            der, version = conn.getpeercert(binary_form=True), conn.version()
    except ssl.SSLCertVerificationError as exc:
        return False, False, f"certificate not trusted: {exc.verify_message}"
    except (OSError, ssl.SSLError) as exc:
        return False, False, f"no TLS handshake: {exc}"
    cert = tls.info(ssl.DER_cert_to_PEM_cert(der))
    now = dt.datetime.now(dt.UTC)
    level = tls.expiry_level(cert.days_left(now))
    return level != "fail", level == "warn", f"{version}, {tls.describe_expiry(cert, now)}"


def plan(model: Model, containers, gateway_url: str | None, early=None, trust: str | bool = True):
    """The list of (service, check name, callable) to run, the callables of the slow
    probes among them (to start first) and of those that exec in a container (to take
    turns meanwhile). `early`: container name -> the probe already running there
    (early_probe), used when that container is the one listed."""
    slow, execs, early = set(), set(), early or {}
    by_service: dict[str, list] = {}
    for c in containers:
        by_service.setdefault(c.labels.get("com.docker.compose.service", "?"), []).append(c)
    jobs = []
    for name, svc in sorted(model.services.items()):
        replicas = sorted(by_service.get(name, []), key=lambda c: c.name)
        if not replicas:
            if svc.replicas:
                jobs.append((name, "container", lambda: (False, "no container (stack down?)")))
            continue
        for c in replicas:
            label = "container" if len(replicas) == 1 else f"container {c.name}"
            jobs.append((name, label, lambda c=c: container_state(c)))
            running = (c.attrs.get("State") or {}).get("Status") == "running"
            probe = probes.BY_ROLE.get(svc.role)
            if probe:
                fn = (lambda c=c, p=probe: role_probe(c, p)) if running else _not_running
                if running and c.name in early:
                    fn = early[c.name].job(c.name, fn)
                jobs.append((name, probe.name + _suffix(c, replicas), fn))
                (slow if probe.slow else execs).add(fn)
            for extra in probes.ALSO_BY_ROLE.get(svc.role, ()):
                fn = (lambda c=c, p=extra: role_probe(c, p)) if running else _not_running
                jobs.append((name, extra.name + _suffix(c, replicas), fn))
                execs.add(fn)
            if not probe and svc.labels.get("ops.http.port"):
                fn = ((lambda c=c, p=int(svc.labels["ops.http.port"]): _direct(c, p))
                      if running else _not_running)
                jobs.append((name, "live+ready direct" + _suffix(c, replicas), fn))
                execs.add(fn)
        if svc.role == "gateway" and gateway_url:
            if gateway_url.startswith("https://"):
                jobs.append((name, "TLS certificate", lambda: tls_check(gateway_url, trust)))
            for upstream in filter(None, svc.labels.get("ops.upstream", "").split(",")):
                for path in ("/health/live", "/health/ready"):
                    jobs.append((name, f"{upstream} {path} via gateway",
                                 lambda u=gateway_url + path: http_get(u, trust=trust)))
    return jobs, slow, execs


def _suffix(c, replicas) -> str:
    return "" if len(replicas) == 1 else f" ({c.name})"


def _not_running():
    return False, "container not running"


def _direct(c, port) -> tuple[bool, str]:
    statuses = http_inside(c, port)
    ok = statuses.get("/health/live") == "200" and statuses.get("/health/ready") == "200"
    return ok, ", ".join(f"{p.rsplit('/', 1)[1]} {s}" for p, s in statuses.items())


def guessed_names(model: Model, project: str) -> dict[str, probes.RoleProbe]:
    """The containers Compose names after each service of a slow probe's role, and that
    probe: known before anything is asked of the engine."""
    out = {}
    for name, svc in model.services.items():
        probe = probes.BY_ROLE.get(svc.role)
        if probe and probe.slow and svc.replicas:
            names = ([svc.container_name] if svc.container_name else
                     [f"{project}-{name}-{i}" for i in range(1, svc.replicas + 1)])
            out.update(dict.fromkeys(names, probe))
    return out


def run_checks(model: Model, project: str, gateway_url: str | None,
               trust: str | bool = True) -> list[Check]:
    from . import early_probe

    # The slow probes go first, through the CLI, while the docker SDK imports.
    early = {}
    for name, probe in guessed_names(model, project).items():
        try:
            early[name] = early_probe.docker_cli(name, probe.line, probe.verdict)
        except OSError:  # no docker CLI here: the SDK does it all, only later
            break
    try:
        from . import docker_api
        from .monitoring import health as monitoring

        containers = docker_api.project_containers(project)
        jobs, slow, execs = plan(model, containers, gateway_url, early, trust)
        return run_jobs(jobs + monitoring.jobs(containers, container_state), first=slow,
                        execs=execs)
    finally:
        for probe in early.values():
            probe.close()


def healthy(checks) -> bool:
    return bool(checks) and all(c.ok for c in checks)


def render_table(checks) -> str:
    rows = [("SERVICE", "CHECK", "STATUS", "LATENCY", "DETAIL")]
    rows += [(c.service, c.check, c.status, f"{c.latency_ms:.0f} ms", c.detail) for c in checks]
    lines = table(rows)
    bad = sum(not c.ok for c in checks)
    warned = sum(c.ok and c.warning for c in checks)
    lines.append(f"{len(checks) - bad}/{len(checks)} checks ok" + ("" if not bad else f", {bad} failing")
                 + (f", {warned} warning(s)" if warned else ""))
    return "\n".join(lines)


def render_json(checks) -> str:
    return json.dumps({"healthy": healthy(checks),
                       "checks": [{**asdict(c), "status": c.status} for c in checks]}, indent=2)
