"""The audit's rules: stable IDs, severity, the seed checklist's category, the risk
and a concrete fix. Findings point at one of these by ID."""

from __future__ import annotations

from dataclasses import dataclass, field

# compose-lint's severities and order (its IDs, severities and exit codes are the
# convention `inv audit` follows).
SEVERITIES = ("low", "medium", "high", "critical")

# The seed checklist's five categories, in its order.
CATEGORIES = {
    "docker": "Docker/Compose",
    "security": "Security",
    "scalability": "Scalability",
    "observability": "Observability",
    "cicd": "CI/CD",
}


def rank(severity: str) -> int:
    return SEVERITIES.index(severity)


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    category: str
    title: str
    risk: str
    fix: str  # what to do, with the YAML / Dockerfile lines to write


@dataclass
class Finding:
    rule: str
    message: str
    file: str = ""
    line: int = 0
    service: str = ""
    severity: str = ""  # the rule's unless a check knows better (e.g. Swarm-only)
    suppressed: str | None = None  # the reason given inline, when suppressed
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.severity:
            self.severity = RULES[self.rule].severity

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def as_dict(self) -> dict:
        rule = RULES[self.rule]
        return {"rule": self.rule, "severity": self.severity, "category": rule.category,
                "title": rule.title, "message": self.message, "file": self.file,
                "line": self.line or None, "service": self.service or None,
                "risk": rule.risk, "fix": rule.fix, "suppressed": self.suppressed is not None,
                "suppression_reason": self.suppressed}


def _rules(*rules: Rule) -> dict[str, Rule]:
    return {r.id: r for r in rules}


RULES = _rules(
    # -- Docker/Compose ---------------------------------------------------------------
    Rule("OA101", "medium", "docker", "healthcheck missing",
         "Compose reports the container as running while it cannot serve; depends_on and "
         "deploys cannot wait for it, and a hung process is never restarted.",
         "healthcheck:\n  test: [\"CMD-SHELL\", \"pg_isready -U postgres\"]  # or curl -f "
         "http://127.0.0.1:PORT/health\n  interval: 10s\n  timeout: 5s\n  retries: 5\n"
         "  start_period: 30s"),
    Rule("OA102", "medium", "docker", "healthcheck disabled",
         "The image's own healthcheck is switched off: nothing tells a hung container from "
         "a healthy one.",
         "Remove `disable: true` / `test: [\"NONE\"]` and give a real test:\nhealthcheck:\n"
         "  test: [\"CMD\", \"curl\", \"-f\", \"http://127.0.0.1:8000/health\"]"),
    Rule("OA103", "medium", "docker", "depends_on without condition: service_healthy",
         "The service starts as soon as its dependency's container exists, before the "
         "database or broker accepts connections: crash loops and failed migrations at "
         "start.",
         "depends_on:\n  db:\n    condition: service_healthy"),
    Rule("OA104", "medium", "docker", "no depends_on for a service it connects to",
         "Its environment names another service's host, but nothing orders the start: the "
         "first connection races the dependency.",
         "depends_on:\n  db:\n    condition: service_healthy"),
    Rule("OA105", "medium", "docker", "no CPU or memory limit",
         "One leaking or busy container takes the whole host's memory or CPU, and the "
         "kernel's OOM killer picks a victim (often the database).",
         "deploy:\n  resources:\n    limits: {cpus: \"0.5\", memory: 512M}\n"
         "    reservations: {memory: 128M}"),
    Rule("OA106", "medium", "docker", "no restart policy",
         "A crashed container or a rebooted host leaves the service down until someone "
         "notices.",
         "restart: unless-stopped   # in a Swarm stack: deploy.restart_policy.condition: any"),
    Rule("OA107", "medium", "docker", "`restart:` in a Swarm stack",
         "`docker stack deploy` ignores `restart:`; the service gets the default policy, not "
         "the one written.",
         "deploy:\n  restart_policy: {condition: any, delay: 5s}"),
    Rule("OA108", "medium", "docker", "no log rotation",
         "The json-file driver keeps every line forever by default: a chatty container "
         "fills the disk and takes every service down with it.",
         "logging:\n  driver: json-file\n  options: {max-size: \"10m\", max-file: \"3\"}"),
    Rule("OA109", "low", "docker", "single-stage Dockerfile",
         "Compilers, package caches and build tools ship in the runtime image: bigger "
         "pulls and more vulnerabilities to patch.",
         "FROM python:3.11-slim AS build\nRUN pip wheel -w /wheels -r requirements.txt\n"
         "FROM python:3.11-slim\nCOPY --from=build /wheels /wheels"),
    Rule("OA110", "medium", "docker", "build target ships the build stage",
         "The image is built only up to a stage other stages copy from: the toolchain and "
         "sources go to production.",
         "Remove `build.target`, or name the runtime (last) stage."),
    Rule("OA111", "medium", "docker", "key ignored by docker stack deploy",
         "Swarm silently drops it: the deployed service differs from what the file says.",
         "Move it to what Swarm reads (restart -> deploy.restart_policy, mem_limit -> "
         "deploy.resources.limits) or drop it from the stack file."),
    Rule("OA112", "high", "docker", "one named volume mounted by two services",
         "Two processes write the same data directory: a second Postgres or Redis on the "
         "same files corrupts them; a backup of one sees the other's writes.",
         "Give each service its own volume:\nvolumes:\n  app-db-data: {}\n  "
         "auth-db-data: {}"),
    Rule("OA113", "high", "docker", "one named volume mounted twice in one service",
         "The same data appears at two paths: writes through one are surprises through the "
         "other, and a restore of one path clobbers the other.",
         "Mount each volume once; use a subpath (volume.subpath) if two directories are "
         "needed."),
    Rule("OA114", "medium", "docker", "image tag `latest` or unpinned",
         "The image changes under you at the next pull: deploys are not reproducible and a "
         "rollback may not return to what ran.",
         "image: postgres:15.10-bookworm   # a version tag (or @sha256:<digest>), via a "
         "variable: ${POSTGRES_IMAGE:-postgres:15.10-bookworm}"),
    Rule("OA115", "high", "docker", "image reference Compose or Docker refuses",
         "An empty image, or an empty tag (`postgres:`): the stack does not start; usually a "
         "variable that was not set and read as blank.",
         "image: ${POSTGRES_IMAGE:?set POSTGRES_IMAGE in .env}   # fail loudly when unset"),
    # -- Security ---------------------------------------------------------------------
    Rule("OA201", "high", "security", "credential with a literal value",
         "The secret is in the repository and every copy of it, and in `docker inspect` "
         "for anyone with access to the engine.",
         "environment:\n  POSTGRES_PASSWORD_FILE: /run/secrets/db_password\nsecrets: "
         "[db_password]\n# top level:\nsecrets:\n  db_password:\n    environment: DB_PASSWORD"
         "   # from .env (git-ignored)"),
    Rule("OA202", "high", "security", "connection string with a password",
         "The password travels inside a URL: committed, logged with the URL, visible in "
         "`docker inspect`.",
         "Pass host, user and a password file separately, or interpolate the whole URL from "
         "the environment: DATABASE_URL: ${DATABASE_URL}"),
    Rule("OA203", "high", "security", "data-tier or admin UI port published on all interfaces",
         "The database, cache, broker or its admin UI is reachable from any network the host "
         "is on; with Docker's iptables rules, a host firewall does not stop it.",
         "ports:\n  - \"127.0.0.1:5432:5432\"   # or no `ports:` at all: services reach it by "
         "name on the network"),
    Rule("OA204", "critical", "security", "privileged container",
         "Root in the container is root on the host: every device, every capability, no "
         "seccomp or AppArmor.",
         "Remove `privileged: true`; add only the capability needed:\ncap_drop: [ALL]\n"
         "cap_add: [NET_BIND_SERVICE]"),
    Rule("OA205", "critical", "security", "Docker socket mounted",
         "Whoever controls the container controls the engine, and so the host.",
         "Remove the /var/run/docker.sock mount; if the service must read the engine, put a "
         "socket proxy that allows only GET of what it needs in between."),
    Rule("OA206", "high", "security", "host network, PID or IPC namespace",
         "The container shares the host's network stack, processes or shared memory: it "
         "can reach or signal what runs outside it.",
         "Remove network_mode/pid/ipc: host; publish the ports needed instead."),
    Rule("OA207", "high", "security", "dangerous capability added",
         "SYS_ADMIN, NET_ADMIN, SYS_PTRACE, SYS_MODULE and the like are most of the way to "
         "root on the host.",
         "cap_drop: [ALL]\ncap_add: [NET_BIND_SERVICE]   # only what the process needs"),
    Rule("OA208", "medium", "security", "no no-new-privileges",
         "A setuid binary in the image can still raise privileges inside the container.",
         "security_opt:\n  - no-new-privileges:true"),
    Rule("OA209", "medium", "security", "runs as root",
         "A process escape or a writable mount is root's: one bug away from the host.",
         "user: \"10001:10001\"   # in the Dockerfile: RUN useradd -u 10001 app && USER app"),
    Rule("OA210", "medium", "security", "data tier on a network that is not internal",
         "Databases, cache and broker share a network with a route out (and with the "
         "gateway): one compromised service reaches them all, and they reach the internet.",
         "networks:\n  backend:\n    internal: true   # data tier and the apps that use it\n"
         "  edge: {}           # gateway and apps"),
    # -- Scalability ------------------------------------------------------------------
    Rule("OA211", "medium", "security", "port published on all interfaces",
         "Whatever the service answers is reachable from every network the host is on (Docker's "
         "iptables rules bypass a host firewall), not only through the gateway.",
         "ports:\n  - \"127.0.0.1:3000:3000\"   # or no `ports:`: publish through the gateway"),
    Rule("OA301", "medium", "scalability", "fixed host port on a service meant to scale",
         "A second replica cannot bind the same host port: `scale` fails, and a deploy "
         "cannot start the new task beside the old.",
         "Publish through the gateway, not on the service:\nexpose: [\"8000\"]   # the "
         "gateway balances over the replicas"),
    Rule("OA302", "medium", "scalability", "container_name on a service meant to scale",
         "Compose refuses a second container with the same name: the service can never "
         "have more than one replica.",
         "Remove `container_name:`; reach the service by its service name."),
    # -- Observability ----------------------------------------------------------------
    Rule("OA401", "medium", "observability", "app service without a health endpoint",
         "The healthcheck only proves the process exists, not that it can serve (database "
         "and cache reachable): bad replicas stay in the gateway's pool.",
         "healthcheck:\n  test: [\"CMD\", \"curl\", \"-fsS\", "
         "\"http://127.0.0.1:8000/health/ready\"]"),
    Rule("OA402", "low", "observability", "app service without metrics labels",
         "Prometheus cannot find its /metrics endpoint by service discovery: no RED metrics "
         "for it.",
         "labels:\n  prometheus.io/scrape: \"true\"\n  prometheus.io/port: \"8000\"\n"
         "  prometheus.io/path: /metrics"),
    Rule("OA403", "high", "observability", "logging disabled",
         "`driver: none` throws every log line away: nothing to read when it fails.",
         "logging:\n  driver: json-file\n  options: {max-size: \"10m\", max-file: \"3\"}"),
    # -- CI/CD ------------------------------------------------------------------------
    Rule("OA501", "medium", "cicd", "no CI pipeline",
         "Nothing tests, builds or audits a change before it is deployed.",
         "Add .github/workflows/ci.yml: lint, tests, image build, `inv audit --format "
         "sarif`, image scan, deploy with rollback."),
    Rule("OA502", "medium", "cicd", "pipeline runs no tests",
         "A change that breaks the app is built and shipped anyway.",
         "- name: Tests\n  run: pytest -q"),
    Rule("OA503", "medium", "cicd", "pipeline scans no image",
         "Known vulnerabilities in base images and packages ship unnoticed.",
         "- uses: aquasecurity/trivy-action@0.28.0\n  with: {image-ref: \"app:${{ github.sha "
         "}}\", exit-code: \"1\", severity: CRITICAL,HIGH}"),
    Rule("OA504", "low", "cicd", "pipeline has no deploy step",
         "Deploys are manual: slower, and not the same steps twice.",
         "- name: Deploy to staging\n  run: inv deploy --env staging"),
    Rule("OA505", "medium", "cicd", "pipeline deploys with no rollback step",
         "A deploy that fails its health check stays failed until someone steps in.",
         "- name: Roll back on failed health\n  if: failure()\n  run: inv rollback --env "
         "staging --yes"),
    # -- The audit itself ---------------------------------------------------------------
    Rule("OA901", "low", "docker", "suppression without a reason",
         "A finding silenced with no reason cannot be reviewed: it is applied only with one.",
         "# ops-audit: ignore OA105 the sidecar is limited by its pod"),
    Rule("OA902", "low", "docker", "suppression of an unknown rule",
         "The comment silences nothing (a typo'd rule ID?).",
         "Use a rule ID from `inv audit --rules`."),
)
