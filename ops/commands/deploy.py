"""Command lines for a blue-green deploy on a Swarm manager (`line.Line`s). Pure: every
value is validated here or quoted as a word; file contents travel base64-encoded."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from . import image_refs
from .line import (
    Line,
    all_of,
    beyond_hangup,
    cmd,
    either,
    group,
    is_dir,
    is_file,
    mkdir_p,
    pipe,
    q,
    script,
    seq,
    when,
    words,
)

COLORS = ("blue", "green")
APP_SERVICE = "api"  # the blue-green service, as users name it (`api` = the live color)
SERVICE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
RELEASE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9_.-]{1,128}$")
# Where nginx finds the live upstream inside the gateway container (a directory mount).
LIVE_IN_GATEWAY = "/etc/nginx/ops/live"
NGINX_CONF_IN_GATEWAY = "/etc/nginx/ops/nginx.conf"
DEFAULT_HTTP_PORT = 8000  # of an upstream file written before the port was recorded


def other(color: str) -> str:
    return COLORS[1 - COLORS.index(color)]


def check_tag(tag: str) -> str:
    return image_refs.check_tag(tag)


@dataclass(frozen=True)
class Paths:
    """The app's state on the manager: lock, live upstream dir, releases, audit log."""

    base: str
    app: str

    def __post_init__(self):
        if not SERVICE.match(self.app):
            raise ValueError(f"invalid app name {self.app!r}")
        if not re.fullmatch(r"/[A-Za-z0-9_./-]*", self.base) or "/../" in self.base + "/":
            raise ValueError(f"invalid state directory {self.base!r} (an absolute path)")

    @property
    def root(self) -> str:
        return f"{self.base.rstrip('/')}/{self.app}"

    @property
    def live(self) -> str:
        return f"{self.root}/live"

    @property
    def upstream(self) -> str:
        return f"{self.live}/upstream.conf"

    @property
    def maintenance(self) -> str:
        """Maintenance mode's file (ops/maintenance.py), beside the live upstream."""
        return f"{self.live}/maintenance.conf"

    @property
    def releases(self) -> str:
        return f"{self.root}/releases"

    @property
    def scale(self) -> str:
        """Replica counts set by `inv scale`, kept across deploys."""
        return f"{self.root}/scale.json"

    @property
    def audit(self) -> str:
        return f"{self.root}/audit.jsonl"

    @property
    def textfile(self) -> str:
        """node_exporter's textfile directory on each node (the monitoring stack's)."""
        return f"{self.root}/textfile"

    @property
    def monitoring(self) -> str:
        """The monitoring part's stack file and configs, as last deployed."""
        return f"{self.root}/monitoring"

    def release(self, name: str) -> str:
        if not RELEASE.match(name):
            raise ValueError(f"invalid release name {name!r}")
        return f"{self.releases}/{name}"


def service(app: str, name: str) -> str:
    full = f"{app}_{name}"
    if not SERVICE.match(full):
        raise ValueError(f"invalid service name {full!r}")
    return full


# -- files ------------------------------------------------------------------------------

def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_file(path: str, content: str) -> Line:
    """Write then rename in the same directory: readers see the old or the new file."""
    tmp = f"{path}.tmp"
    return all_of(mkdir_p(path.rsplit("/", 1)[0]),
                  pipe(cmd("printf", "%s", _b64(content)), cmd("base64", "-d").to(tmp)),
                  cmd("mv", "-f", tmp, path))


def read_file(path: str) -> Line:
    return when(is_file(path), cmd("cat", path))


CLOCK = cmd("date", "-u", "+%Y-%m-%dT%H:%M:%S")


def clock_and_file(path: str) -> Line:
    """The manager's clock on the first line, then the file (if any): one round trip."""
    return seq(CLOCK, read_file(path))


def append_line(path: str, line: str) -> Line:
    if "\n" in line:
        raise ValueError("one line only")
    return all_of(mkdir_p(path.rsplit("/", 1)[0]), cmd("printf", "%s\\n", line).append_to(path))


def tail(path: str, lines: int) -> Line:
    return when(is_file(path), cmd("tail", "-n", int(lines), path))


def newest_release(paths: Paths, tag: str | None = None) -> Line:
    """The directory of the newest release (of `tag`), if any is kept."""
    # A script: the glob must stay unquoted for the shell to expand it.
    suffix = q(check_tag(tag)) if tag else "*"
    listing = script(f"ls -1d {q(paths.releases)}/*Z-{suffix} 2>/dev/null")
    return when(is_dir(paths.releases), pipe(listing, cmd("sort"), cmd("tail", "-n", 1)))


def list_releases(paths: Paths) -> Line:
    """The kept release directories' names, oldest first (none: no output)."""
    return when(is_dir(paths.releases), pipe(cmd("ls", "-1", paths.releases),
                                             cmd("grep", "-E", "^[0-9]{8}T[0-9]{6}Z-"), cmd("sort")))


def release_tags(listing: str) -> list[str]:
    """The tags of `list_releases`'s names, newest first, each once."""
    names = [n.strip() for n in listing.splitlines() if RELEASE.match(n.strip())]
    return list(dict.fromkeys(n.split("-", 1)[1] for n in reversed(names)))


def prune_releases(path: str, keep: int) -> Line:
    """Keep the newest `keep` release directories (names sort by time); remove what a
    killed upload left (runner.put's hidden `.partial-*`: run under the deploy lock, so
    no upload is under way)."""
    return when(is_dir(path), all_of(
        cmd("cd", path),
        script("rm -rf ./.partial-*"),
        pipe(script("ls -1d */ 2>/dev/null"), cmd("sed", "s#/$##"),
             cmd("grep", "-E", "^[0-9]{8}T[0-9]{6}Z-"), cmd("sort"),
             cmd("head", "-n", f"-{int(keep)}"), cmd("xargs", "-r", "rm", "-rf", "--"))))


# -- swarm ------------------------------------------------------------------------------

def swarm_state() -> Line:
    return cmd("docker", "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}")


def stack_deploy(stack_file: str, app: str, detach_flag: bool, resolve: str = "never",
                 registry_auth: bool = False) -> Line:
    """--resolve-image never where nodes got the image over SSH (no registry to ask);
    `always` pins the registry's digest, so every node runs the same bytes."""
    if resolve not in ("never", "always"):
        raise ValueError(f"resolve must be never or always, not {resolve!r}")
    directory, name = stack_file.rsplit("/", 1)
    return all_of(cmd("cd", directory), cmd(
        "docker", "stack", "deploy", "--resolve-image", resolve,
        *(["--with-registry-auth"] if registry_auth else []),
        *(["--detach=false"] if detach_flag else []), "-c", name, app))


def stack_deploy_has_detach() -> Line:
    """Docker >= 26 can wait for convergence itself (`--detach=false`)."""
    return pipe(cmd("docker", "stack", "deploy", "--help").no_errors(),
                cmd("grep", "-q", "--", "--detach"))


def secret_names() -> Line:
    """Every Swarm secret's name, one per line (one round trip for all the checks)."""
    return cmd("docker", "secret", "ls", "--format", "{{.Name}}")


def secret_create(name: str, app: str) -> Line:
    """The value comes on stdin: never on a command line (ps) or in a file."""
    return cmd("docker", "secret", "create", "--label", f"ops.app={app}", name, "-").quiet()


TASKS_MARK = "@@tasks"
NODES_MARK = "@@nodes"


def services_state(names: list[str], nodes: bool = False) -> Line:
    """Several services' inspect JSON, TASKS_MARK, then all their tasks' JSON (and with
    `nodes`, NODES_MARK and `docker node ls` as JSON lines): one round trip for a rollout
    wait that watches more than one service, and the nodes their tasks run on."""
    # A script: the task ids are gathered in a shell variable for one `docker inspect`.
    qs = " ".join(q(n) for n in names)
    tasks = script(f"ids=$(for s in {qs}; do docker service ps -q --no-trunc \"$s\" 2>/dev/null; done); "
                   f"if [ -n \"$ids\" ]; then docker inspect --type task $ids 2>/dev/null; "
                   f"else echo '[]'; fi")
    listing = [cmd("echo", NODES_MARK), cmd("docker", "node", "ls", "--format", "{{json .}}")
               .or_true()] if nodes else []
    # stderr kept: a missing service's "no such service" is harmless, and an engine that
    # does not answer must be seen (rollout.engine_gone).
    return seq(cmd("docker", "service", "inspect", *names).or_true(),
               cmd("echo", TASKS_MARK), tasks, *listing, cmd("true"))


def service_logs(name_or_task: str, lines: int = 30) -> Line:
    """A service's or one task's logs (`docker service logs` takes either)."""
    # Bounded: `docker service logs` can hang for good (docker/cli#4678).
    return cmd("timeout", "-k", 5, 30, "docker", "service", "logs", "--no-trunc", "--raw",
               "--tail", int(lines), name_or_task).merged().or_true()


def service_force_update(name: str) -> Line:
    """A new rollout of the service's current spec (its tasks replaced, start-first as
    configured): what unblocks an update that waits on a task of a node that is gone."""
    return cmd("docker", "service", "update", "--detach", "--force", "--quiet", name).quiet()


def service_scale(name: str, replicas: int) -> Line:
    return cmd("docker", "service", "scale", "--detach", f"{name}={int(replicas)}").quiet()


def gateway_container(app: str) -> Line:
    """The running gateway task's container on this (manager) node: the stack's
    service labelled ops.role=gateway in the compose file."""
    return pipe(cmd("docker", "ps", "-q", "--filter", f"label=com.docker.stack.namespace={app}",
                    "--filter", "label=ops.role=gateway", "--filter", "status=running"),
                cmd("head", "-n", 1))


def gateway_exec(container: str, argv: list[str]) -> Line:
    if not re.fullmatch(r"[0-9a-f]{12,64}", container):
        raise ValueError(f"invalid container id {container!r}")
    return cmd("docker", "exec", container, *words(argv))


def nginx_test(container: str) -> Line:
    return gateway_exec(container, ["nginx", "-t", "-q", "-c", NGINX_CONF_IN_GATEWAY]).merged()


def nginx_reload(container: str) -> Line:
    return gateway_exec(container, ["nginx", "-s", "reload", "-c", NGINX_CONF_IN_GATEWAY]).merged()


SWITCH_NOT_WRITTEN, SWITCH_REFUSED, SWITCH_NOT_RELOADED = 3, 4, 5


def switch_upstream(path: str, content: str | None, container: str,
                    audit: tuple[str, str] | None = None) -> Line:
    """Write the live upstream (or another file of the live directory; None: remove it),
    test the gateway's config with it, reload, and append `audit` ((log, line)) once
    reloaded: one round trip (a rollback's time is mostly round trips), which a cut
    connection cannot stop half-way (beyond_hangup): the file on the manager and what the
    gateway serves stay one. Exits SWITCH_NOT_WRITTEN, SWITCH_REFUSED (nginx -t's output
    printed; nothing reloaded) or SWITCH_NOT_RELOADED on failure."""
    change = write_file(path, content) if content is not None else cmd("rm", "-f", path)
    after = [append_line(*audit).or_true()] if audit else []
    steps = seq(either(group(change), cmd("exit", SWITCH_NOT_WRITTEN)),
                either(nginx_test(container), cmd("exit", SWITCH_REFUSED)),
                either(nginx_reload(container), cmd("exit", SWITCH_NOT_RELOADED)), *after)
    # One switch at a time on the manager (flock): a switch back, sent over a new
    # connection while the cut one still runs, waits for it, so that the audit log's
    # order is the order the gateway was pointed in.
    lock = f"{path.rsplit('/', 1)[0]}/.switch.lock"
    return beyond_hangup(cmd("flock", lock, "sh", "-c", str(steps)))


# Run inside the gateway container, over the overlay network: every address the color's
# name resolves to (dnsrr: one per task), its readiness status and the identity headers.
PROBE = r"""
for ip in $(getent ahostsv4 "$1" | awk '{print $1}' | sort -u); do
  h=$(curl -s -o /dev/null -D - -m 3 "http://$ip:$2/health/ready" | tr -d '\r')
  code=$(printf '%s\n' "$h" | awk 'NR==1{print $2}')
  ver=$(printf '%s\n' "$h" | awk -F': ' 'tolower($1)=="x-app-version"{print $2}')
  col=$(printf '%s\n' "$h" | awk -F': ' 'tolower($1)=="x-app-color"{print $2}')
  echo "probe $ip ${code:-none} ${ver:--} ${col:--}"
done
"""


def probe(container: str, target_service: str, port: int = 8000) -> Line:
    return gateway_exec(container, ["sh", "-c", PROBE, "probe", target_service, str(int(port))])


# Where a switch is verified: the health passthrough, which the gateway never
# rate-limits (a verification must not share the fate of the traffic it verifies).
VERIFY_PATH = "/health/live"


def fetch_through_gateway(container: str, port: int = 8080, path: str = VERIFY_PATH) -> Line:
    """Fallback verification when no public URL is configured: the gateway's own port
    (-k: its certificate names the public host, not 127.0.0.1 inside the container)."""
    return gateway_exec(container, ["curl", "-sk", "-o", "/dev/null", "-D", "-", "-m", "3",
                                    f"https://127.0.0.1:{int(port)}{path}"])


# -- removal ----------------------------------------------------------------------------

def stack_rm(app: str) -> Line:
    return cmd("docker", "stack", "rm", app).silent().or_true()


def _in_stack(app: str) -> str:
    return f"label=com.docker.stack.namespace={app}"


def stack_leftovers(app: str) -> Line:
    """Services and networks of the stack still present (removal is asynchronous)."""
    label = _in_stack(app)
    return seq(cmd("docker", "service", "ls", "-q", "--filter", label),
               cmd("docker", "network", "ls", "-q", "--filter", label),
               cmd("docker", "container", "ls", "-aq", "--filter", label))


def secrets_rm(app: str) -> Line:
    return pipe(cmd("docker", "secret", "ls", "-q", "--filter", f"label=ops.app={app}"),
                cmd("xargs", "-r", "docker", "secret", "rm").quiet())


def swarm_objects(app: str) -> Line:
    """The app's secrets (created by us, labelled) and configs (created by the stack),
    one `secret NAME` / `config NAME` per line."""
    return all_of(cmd("docker", "secret", "ls", "--filter", f"label=ops.app={app}",
                      "--format", "secret {{.Name}}"),
                  cmd("docker", "config", "ls", "--filter", _in_stack(app),
                      "--format", "config {{.Name}}"))


_REFS = ("{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}secret {{.SecretName}}\n{{end}}"
         "{{range .Spec.TaskTemplate.ContainerSpec.Configs}}config {{.ConfigName}}\n{{end}}")


def swarm_object_refs(app: str) -> Line:
    """Every secret and config the app's services reference, in the same format. Fails
    (rather than printing nothing) when the services cannot be read."""
    # A script: the service ids are kept in a variable, to inspect them all at once.
    ids = script(f"ids=$({cmd('docker', 'service', 'ls', '-q', '--filter', _in_stack(app))})")
    return all_of(ids, when(script('[ -n "$ids" ]'),
                            script(f"{cmd('docker', 'service', 'inspect', '--format', _REFS)} $ids")))


def secret_swap(service: str, refs: list[dict], new: str) -> Line:
    """Replace a service's references (SwarmService.secrets items) by the secret `new`,
    each at the same path, owner and mode; the service rolls its tasks as its
    update_config says."""
    argv = ["docker", "service", "update", "--quiet", "--detach"]
    for r in refs:
        argv += ["--secret-rm", r["name"], "--secret-add",
                 f"source={new},target={r['target']},uid={r['uid']},gid={r['gid']},mode=0{int(r['mode']):o}"]
    return cmd(*argv, service)


def swarm_objects_rm(kind: str, names: list[str]) -> Line:
    if kind not in ("secret", "config") or not names:
        raise ValueError(f"nothing to remove or unknown kind {kind!r}")
    return cmd("docker", kind, "rm", *names).quiet()


def volumes_rm(app: str) -> Line:
    """Every volume the stack created on this node (whatever the compose file names now)."""
    return pipe(cmd("docker", "volume", "ls", "-q", "--filter", _in_stack(app)),
                cmd("xargs", "-r", "docker", "volume", "rm").silent().or_true())


def state_rm(paths: Paths) -> Line:
    """The live upstream and releases go; the audit log stays (history outlives a stack)."""
    return cmd("rm", "-rf", paths.live, paths.releases)
