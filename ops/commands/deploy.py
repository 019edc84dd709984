"""Shell lines for a blue-green deploy on a Swarm manager. Pure: every interpolated
value is validated here or shlex-quoted; file contents travel base64-encoded."""

from __future__ import annotations

import base64
import re
import shlex
from dataclasses import dataclass

from . import image_refs

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


def write_file(path: str, content: str) -> str:
    """Write then rename in the same directory: readers see the old or the new file."""
    q, tmp = shlex.quote(path), shlex.quote(f"{path}.tmp")
    parent = shlex.quote(path.rsplit("/", 1)[0])
    return (f"umask 022 && mkdir -p {parent} && printf %s {_b64(content)} | base64 -d > {tmp} "
            f"&& mv -f {tmp} {q}")


def read_file(path: str) -> str:
    q = shlex.quote(path)
    return f"if [ -f {q} ]; then cat {q}; fi"


CLOCK = "date -u +%Y-%m-%dT%H:%M:%S"


def clock_and_file(path: str) -> str:
    """The manager's clock on the first line, then the file (if any): one round trip."""
    return f"{CLOCK}; {read_file(path)}"


def upload_dir(path: str, files: dict[str, str]) -> str:
    """A release directory appears whole or not at all: filled under a temporary name,
    then renamed (a directory rename is atomic)."""
    tmp = f"{path}.partial"
    parts = [f"umask 022 && rm -rf {shlex.quote(tmp)} && mkdir -p {shlex.quote(tmp)}"]
    for name, content in sorted(files.items()):
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name):
            raise ValueError(f"invalid file name {name!r}")
        parts.append(f"printf %s {_b64(content)} | base64 -d > {shlex.quote(f'{tmp}/{name}')}")
    parts.append(f"rm -rf {shlex.quote(path)} && mv {shlex.quote(tmp)} {shlex.quote(path)}")
    return " && ".join(parts)


def append_line(path: str, line: str) -> str:
    if "\n" in line:
        raise ValueError("one line only")
    q = shlex.quote(path)
    return (f"umask 022 && mkdir -p {shlex.quote(path.rsplit('/', 1)[0])} && "
            f"printf '%s\\n' {shlex.quote(line)} >> {q}")


def tail(path: str, lines: int) -> str:
    q = shlex.quote(path)
    return f"if [ -f {q} ]; then tail -n {int(lines)} {q}; fi"


def newest_release(paths: Paths, tag: str | None = None) -> str:
    """The directory of the newest release (of `tag`), if any is kept."""
    q = shlex.quote(paths.releases)
    suffix = shlex.quote(check_tag(tag)) if tag else "*"
    return (f"if [ -d {q} ]; then ls -1d {q}/*Z-{suffix} 2>/dev/null | sort | "
            f"tail -n 1; fi")


def prune_releases(path: str, keep: int) -> str:
    """Keep the newest `keep` release directories (names sort by time)."""
    q = shlex.quote(path)
    return (f"if [ -d {q} ]; then cd {q} && ls -1d */ 2>/dev/null | sed 's#/$##' | "
            f"grep -E '^[0-9]{{8}}T[0-9]{{6}}Z-' | sort | head -n -{int(keep)} | "
            f"xargs -r rm -rf --; fi")


# -- swarm ------------------------------------------------------------------------------

def swarm_state() -> str:
    return ("docker info --format "
            "'{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}'")


def stack_deploy(stack_file: str, app: str, detach_flag: bool, resolve: str = "never",
                 registry_auth: bool = False) -> str:
    """--resolve-image never where nodes got the image over SSH (no registry to ask);
    `always` pins the registry's digest, so every node runs the same bytes."""
    if resolve not in ("never", "always"):
        raise ValueError(f"resolve must be never or always, not {resolve!r}")
    flags = f"--resolve-image {resolve}" + (" --with-registry-auth" if registry_auth else "")
    detach = " --detach=false" if detach_flag else ""
    return (f"cd {shlex.quote(stack_file.rsplit('/', 1)[0])} && docker stack deploy "
            f"{flags}{detach} -c {shlex.quote(stack_file.rsplit('/', 1)[1])} "
            f"{shlex.quote(app)}")


def stack_deploy_has_detach() -> str:
    """Docker >= 26 can wait for convergence itself (`--detach=false`)."""
    return "docker stack deploy --help 2>/dev/null | grep -q -- '--detach'"


def secret_names() -> str:
    """Every Swarm secret's name, one per line (one round trip for all the checks)."""
    return "docker secret ls --format '{{.Name}}'"


def secret_create(name: str, app: str) -> str:
    """The value comes on stdin: never on a command line (ps) or in a file."""
    return (f"docker secret create --label {shlex.quote(f'ops.app={app}')} "
            f"{shlex.quote(name)} - >/dev/null")


TASKS_MARK = "@@tasks"


def services_state(names: list[str]) -> str:
    """Several services' inspect JSON, TASKS_MARK, then all their tasks' JSON: one round
    trip for a rollout wait that watches more than one service."""
    qs = " ".join(shlex.quote(n) for n in names)
    return (f"docker service inspect {qs} 2>/dev/null || true; echo {TASKS_MARK}; "
            f"ids=$(for s in {qs}; do docker service ps -q --no-trunc \"$s\" 2>/dev/null; done); "
            f"if [ -n \"$ids\" ]; then docker inspect --type task $ids 2>/dev/null; "
            f"else echo '[]'; fi; true")


def service_logs(name_or_task: str, lines: int = 30) -> str:
    """A service's or one task's logs (`docker service logs` takes either)."""
    # Bounded: `docker service logs` can hang for good (docker/cli#4678).
    return (f"timeout -k 5 30 docker service logs --no-trunc --raw --tail {int(lines)} "
            f"{shlex.quote(name_or_task)} 2>&1 || true")


def service_scale(name: str, replicas: int) -> str:
    return f"docker service scale --detach {shlex.quote(f'{name}={int(replicas)}')} >/dev/null"


def gateway_container(app: str) -> str:
    """The running gateway task's container on this (manager) node: the stack's
    service labelled ops.role=gateway in the compose file."""
    return (f"docker ps -q --filter {shlex.quote(f'label=com.docker.stack.namespace={app}')}"
            " --filter label=ops.role=gateway --filter status=running | head -n 1")


def gateway_exec(container: str, argv: list[str]) -> str:
    if not re.fullmatch(r"[0-9a-f]{12,64}", container):
        raise ValueError(f"invalid container id {container!r}")
    return "docker exec " + shlex.quote(container) + " " + " ".join(shlex.quote(a) for a in argv)


def nginx_test(container: str) -> str:
    return gateway_exec(container, ["nginx", "-t", "-q", "-c", NGINX_CONF_IN_GATEWAY]) + " 2>&1"


def nginx_reload(container: str) -> str:
    return gateway_exec(container, ["nginx", "-s", "reload", "-c", NGINX_CONF_IN_GATEWAY]) + " 2>&1"


SWITCH_NOT_WRITTEN, SWITCH_REFUSED, SWITCH_NOT_RELOADED = 3, 4, 5


def switch_upstream(path: str, content: str, container: str) -> str:
    """Write the live upstream, test the gateway's config with it, reload: one round trip
    (a rollback's time is mostly round trips). Exits SWITCH_NOT_WRITTEN, SWITCH_REFUSED
    (nginx -t's output printed; nothing reloaded) or SWITCH_NOT_RELOADED on failure."""
    return (f"{{ {write_file(path, content)}; }} || exit {SWITCH_NOT_WRITTEN}; "
            f"{nginx_test(container)} || exit {SWITCH_REFUSED}; "
            f"{nginx_reload(container)} || exit {SWITCH_NOT_RELOADED}")


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


def probe(container: str, target_service: str, port: int = 8000) -> str:
    return gateway_exec(container, ["sh", "-c", PROBE, "probe", target_service, str(int(port))])


# Where a switch is verified: the health passthrough, which the gateway never
# rate-limits (a verification must not share the fate of the traffic it verifies).
VERIFY_PATH = "/health/live"


def fetch_through_gateway(container: str, port: int = 8080, path: str = VERIFY_PATH) -> str:
    """Fallback verification when no public URL is configured: the gateway's own port
    (-k: its certificate names the public host, not 127.0.0.1 inside the container)."""
    return gateway_exec(container, ["curl", "-sk", "-o", "/dev/null", "-D", "-", "-m", "3",
                                    f"https://127.0.0.1:{int(port)}{path}"])


# -- removal ----------------------------------------------------------------------------

def stack_rm(app: str) -> str:
    return f"docker stack rm {shlex.quote(app)} >/dev/null 2>&1 || true"


def stack_leftovers(app: str) -> str:
    """Services and networks of the stack still present (removal is asynchronous)."""
    label = shlex.quote(f"label=com.docker.stack.namespace={app}")
    return (f"docker service ls -q --filter {label}; docker network ls -q --filter {label}; "
            f"docker container ls -aq --filter {label}")


def secrets_rm(app: str) -> str:
    label = shlex.quote(f"label=ops.app={app}")
    return f"docker secret ls -q --filter {label} | xargs -r docker secret rm >/dev/null"


def swarm_objects(app: str) -> str:
    """The app's secrets (created by us, labelled) and configs (created by the stack),
    one `secret NAME` / `config NAME` per line."""
    ours = shlex.quote(f"label=ops.app={app}")
    stack = shlex.quote(f"label=com.docker.stack.namespace={app}")
    return (f"docker secret ls --filter {ours} --format 'secret {{{{.Name}}}}' && "
            f"docker config ls --filter {stack} --format 'config {{{{.Name}}}}'")


_REFS = ("{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}secret {{.SecretName}}\n{{end}}"
         "{{range .Spec.TaskTemplate.ContainerSpec.Configs}}config {{.ConfigName}}\n{{end}}")


def swarm_object_refs(app: str) -> str:
    """Every secret and config the app's services reference, in the same format. Fails
    (rather than printing nothing) when the services cannot be read."""
    stack = shlex.quote(f"label=com.docker.stack.namespace={app}")
    return (f"ids=$(docker service ls -q --filter {stack}) && "
            f"if [ -n \"$ids\" ]; then docker service inspect --format {shlex.quote(_REFS)} $ids; fi")


def secret_swap(service: str, refs: list[dict], new: str) -> str:
    """Replace a service's references (SwarmService.secrets items) by the secret `new`,
    each at the same path, owner and mode; the service rolls its tasks as its
    update_config says."""
    argv = ["docker", "service", "update", "--quiet", "--detach"]
    for r in refs:
        argv += ["--secret-rm", r["name"], "--secret-add",
                 f"source={new},target={r['target']},uid={r['uid']},gid={r['gid']},mode=0{int(r['mode']):o}"]
    return shlex.join([*argv, service])


def swarm_objects_rm(kind: str, names: list[str]) -> str:
    if kind not in ("secret", "config") or not names:
        raise ValueError(f"nothing to remove or unknown kind {kind!r}")
    return f"docker {kind} rm {' '.join(shlex.quote(n) for n in names)} >/dev/null"


def volumes_rm(app: str) -> str:
    """Every volume the stack created on this node (whatever the compose file names now)."""
    label = shlex.quote(f"label=com.docker.stack.namespace={app}")
    return f"docker volume ls -q --filter {label} | xargs -r docker volume rm >/dev/null 2>&1 || true"


def state_rm(paths: Paths) -> str:
    """The live upstream and releases go; the audit log stays (history outlives a stack)."""
    return f"rm -rf {shlex.quote(paths.live)} {shlex.quote(paths.releases)}"
