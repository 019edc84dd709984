"""`inv plan.new`: the seed's infrastructure plan template (seed 004), in Spanish as the
seed wrote it or in English, pre-filled with what the project knows. Pure: facts in,
Markdown out."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from .errors import OpsError

LANGS = ("en", "es")


def slug(title: str) -> str:
    """A file-name-safe slug: ASCII letters and digits joined by dashes (no dots or
    slashes survive, so a title cannot walk out of docs/plans)."""
    plain = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    out = re.sub(r"[^a-z0-9]+", "-", plain).strip("-")[:48].strip("-")
    if not out:
        raise OpsError(f"title {title!r} has no letters or digits to name the plan file by")
    return out


def plan_id(day: str, title: str) -> str:
    """INFRA-YYYYMMDD-<slug>; `day` is YYYY-MM-DD."""
    return f"INFRA-{day.replace('-', '')}-{slug(title)}"


@dataclass
class Env:
    name: str
    kind: str                  # compose | swarm-local | swarm-ssh
    hosts: list[str] = field(default_factory=list)  # "name role user@address"
    url: str | None = None
    note: str = ""


@dataclass
class Risk:
    severity: str
    title: str
    where: str
    fix: str


@dataclass
class Facts:
    title: str
    day: str
    owner: str
    services: dict[str, str]             # name -> role
    edges: dict[str, list[str]]          # name -> what it depends on
    envs: list[Env]
    backup: dict                         # invoke.yaml backup:
    offsite: list[str]                   # off-site targets, "" when none
    deploy: dict                         # app, replicas, gateway_port, ...
    blue_green: str | None
    followers: list[str]
    pipeline: list[str]                  # workflow files
    risks: list[Risk]
    audit_counts: dict[str, int]


L = {
    "en": {
        "head": "INFRASTRUCTURE PLAN", "id": "Plan ID", "date": "Date", "scope": "Scope",
        "owner": "Owner(s)", "duration": "Estimated duration", "duration_v": "[X days/hours]",
        "s1": "1. Objectives and context", "goal": "Main objective",
        "goal_v": "[What this task must achieve, e.g. \"{title}\" done, verified and "
                  "rolled out to every environment.]",
        "ctx": "Business/technical context", "ctx_v": "[Why it is needed; what it solves.]",
        "known": "What the project has today",
        "req": "Key requirements",
        "r1": "**R1: [Security]** No secret in a committed file or a log: secrets come from "
              "`.env` / `.env.<env>` (git-ignored) as Docker secrets.",
        "r2": "**R2: [Performance]** [e.g. p99 latency of the api below N ms under the expected "
              "load.]",
        "r3": "**R3: [Reliability]** Deploys are health-gated blue-green with instant rollback; "
              "backups are verified ({verify}) and restore-drilled every {drill} h.",
        "r4": "**R4: [Cost]** [budget limit]",
        "s2": "2. Solution architecture", "diagram": "Diagram",
        "components": "Components and technologies",
        "c_containers": "Containers", "c_containers_v": "Docker; Docker Compose locally, "
                                                          "Docker Swarm on deployed environments",
        "c_cicd": "CI/CD", "c_iac": "Infrastructure as code",
        "c_iac_v": "compose/compose.yaml (+ compose/deploy.yaml for Swarm), invoke.yaml",
        "c_mon": "Monitoring", "c_mon_v": "[Prometheus / Alertmanager: to define]; the api "
                                          "exposes /metrics, backups write a metrics textfile",
        "c_backup": "Backups", "none": "none", "verified": "verified:",
        "flow": "Process flow (deploy)",
        "flow_v": ["`inv deploy --env ENV` builds the image tagged with the commit and delivers "
                   "it to the nodes",
                   "the idle color of `{bg}` starts with {replicas} task(s) and must turn healthy",
                   "the nginx gateway switches its upstream to it (atomic, checked through the "
                   "public URL)",
                   "services running the same image ({followers}) follow the release",
                   "`inv rollback --env ENV` switches back to the previous color at once"],
        "s3": "3. Detailed implementation plan",
        "phase1": "Phase 1: Close the open audit findings",
        "phase2": "Phase 2: [Implementation of {title}]",
        "phase3": "Phase 3: [Security and monitoring]",
        "task": "Task", "todo": "[to define]",
        "s4": "4. Verification and rollback plan", "dod": "Acceptance criteria (Definition of Done)",
        "dod_v": ["`inv audit --fail-on medium` passes (no finding at medium or above)",
                  "`inv health --env ENV` passes on every environment after the change",
                  "the newest backup of each database passes `inv db.verify --level restore`",
                  "the pipeline ({pipeline}) runs green end to end",
                  "no secret is exposed in the pipeline, the repository or the logs"],
        "rollback": "Rollback strategy",
        "rb_deploy": "**Deploy rollback:** `inv rollback --env ENV` switches the gateway back to "
                     "the previous color (health-checked first, audit-logged); the followers "
                     "return to that release.",
        "rb_data": "**Data rollback:** `inv db.restore --env ENV` from a verified backup: a "
                   "safety backup first, restore beside the live database, row counts compared, "
                   "then the swap.",
        "rb_backup": "**Backup policy:** keep {keep}; verification after each backup: {verify}; "
                     "restore drill every {drill} h; off-site copies: {offsite}.",
        "s5": "5. Risks and considerations",
        "risk_head": "| Risk | Probability | Impact | Mitigation |",
        "no_risks": "| No open audit finding when this plan was written | - | - | Keep `inv "
                    "audit` in the pipeline |",
        "levels": {"critical": ("High", "High"), "high": ("Medium", "High"),
                   "medium": ("Medium", "Medium"), "low": ("Low", "Low")},
        "env": "Environments", "services": "Services", "hosts": "hosts",
        "kinds": {"compose": "Docker Compose on this machine",
                  "swarm-local": "Docker Swarm on this machine's engine",
                  "swarm-ssh": "Docker Swarm over SSH"},
        "not_created": "not created yet",
        "audit": "Open audit findings: {counts}",
        "end": "END OF THE INFRASTRUCTURE PLAN",
    },
    "es": {
        "head": "PLAN DE INFRAESTRUCTURA", "id": "ID de Plan", "date": "Fecha", "scope": "Scope",
        "owner": "Responsable(s)", "duration": "Duración Estimada", "duration_v": "[X días/horas]",
        "s1": "1. Objetivos y Contexto", "goal": "Objetivo Principal",
        "goal_v": "[Qué se busca lograr, ej: \"{title}\" hecho, verificado y desplegado en "
                  "todos los entornos.]",
        "ctx": "Contexto del Negocio/Técnico", "ctx_v": "[¿Por qué es necesaria esta tarea? "
                                                        "¿Qué problema resuelve?]",
        "known": "Lo que el proyecto tiene hoy",
        "req": "Requisitos Clave",
        "r1": "**R1: [Seguridad]** Ningún secreto en archivos versionados ni en logs: vienen "
              "de `.env` / `.env.<env>` (ignorados por git) como Docker secrets.",
        "r2": "**R2: [Rendimiento]** [ej: latencia p99 de la api menor a N ms con la carga "
              "esperada.]",
        "r3": "**R3: [Fiabilidad]** Despliegues blue-green con health checks y rollback "
              "inmediato; backups verificados ({verify}) y con prueba de restauración cada "
              "{drill} h.",
        "r4": "**R4: [Costo]** [límite de presupuesto]",
        "s2": "2. Arquitectura de la Solución", "diagram": "Diagrama",
        "components": "Componentes y Tecnologías",
        "c_containers": "Contenedores", "c_containers_v": "Docker; Docker Compose en local, "
                                                           "Docker Swarm en los entornos desplegados",
        "c_cicd": "CI/CD", "c_iac": "Infra como Código (IaC)",
        "c_iac_v": "compose/compose.yaml (+ compose/deploy.yaml para Swarm), invoke.yaml",
        "c_mon": "Monitoreo", "c_mon_v": "[Prometheus / Alertmanager: a definir]; la api expone "
                                         "/metrics, los backups escriben un textfile de métricas",
        "c_backup": "Backups", "none": "ninguno", "verified": "verificación:",
        "flow": "Flujo del Proceso (despliegue)",
        "flow_v": ["`inv deploy --env ENV` construye la imagen etiquetada con el commit y la "
                   "entrega a los nodos",
                   "el color inactivo de `{bg}` arranca con {replicas} tarea(s) y debe quedar "
                   "healthy",
                   "el gateway nginx cambia su upstream a ese color (atómico, verificado por la "
                   "URL pública)",
                   "los servicios con la misma imagen ({followers}) siguen la release",
                   "`inv rollback --env ENV` vuelve al color anterior al instante"],
        "s3": "3. Plan de Implementación Detallado",
        "phase1": "Fase 1: Cerrar los hallazgos abiertos de la auditoría",
        "phase2": "Fase 2: [Implementación de {title}]",
        "phase3": "Fase 3: [Seguridad y Monitoreo]",
        "task": "Tarea", "todo": "[a definir]",
        "s4": "4. Plan de Verificación y Rollback",
        "dod": "Criterios de Aceptación (Definition of Done)",
        "dod_v": ["`inv audit --fail-on medium` pasa (ningún hallazgo medium o mayor)",
                  "`inv health --env ENV` pasa en cada entorno después del cambio",
                  "el backup más reciente de cada base pasa `inv db.verify --level restore`",
                  "el pipeline ({pipeline}) se ejecuta exitosamente de principio a fin",
                  "no hay secretos expuestos en el pipeline, el repositorio ni los logs"],
        "rollback": "Estrategia de Rollback",
        "rb_deploy": "**Rollback del Despliegue:** `inv rollback --env ENV` vuelve el gateway al "
                     "color anterior (con health check previo, registrado en el audit log); los "
                     "servicios seguidores vuelven a esa release.",
        "rb_data": "**Rollback de Datos:** `inv db.restore --env ENV` desde un backup "
                   "verificado: backup de seguridad, restauración al lado de la base viva, "
                   "comparación de filas y luego el swap.",
        "rb_backup": "**Política de backups:** conservar {keep}; verificación tras cada backup: "
                     "{verify}; prueba de restauración cada {drill} h; copias off-site: "
                     "{offsite}.",
        "s5": "5. Riesgos y Consideraciones",
        "risk_head": "| Riesgo | Probabilidad | Impacto | Mitigación |",
        "no_risks": "| Ningún hallazgo abierto de la auditoría al escribir este plan | - | - | "
                    "Mantener `inv audit` en el pipeline |",
        "levels": {"critical": ("Alta", "Alto"), "high": ("Media", "Alto"),
                   "medium": ("Media", "Medio"), "low": ("Baja", "Bajo")},
        "env": "Entornos", "services": "Servicios", "hosts": "hosts",
        "kinds": {"compose": "Docker Compose en esta máquina",
                  "swarm-local": "Docker Swarm en el engine de esta máquina",
                  "swarm-ssh": "Docker Swarm por SSH"},
        "not_created": "aún no creado",
        "audit": "Hallazgos abiertos de la auditoría: {counts}",
        "end": "FIN DEL PLAN DE INFRAESTRUCTURA",
    },
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise OpsError(f"--lang must be one of {', '.join(LANGS)}, not {lang!r}")
    return lang


def render(f: Facts, lang: str = "en") -> str:
    t = L[check_lang(lang)]
    keep = ", ".join(f"{k} {v}" for k, v in (f.backup.get("keep") or {}).items()) or t["none"]
    verify = f.backup.get("verify_after", "read")
    drill = f.backup.get("drill_every_hours", 24)
    offsite = ", ".join(x for x in f.offsite if x) or t["none"]
    pipeline = ", ".join(f.pipeline) or t["none"]
    counts = ", ".join(f"{n} {s}" for s, n in f.audit_counts.items() if n) or t["none"]
    roles = ", ".join(f"`{s}` ({r})" for s, r in f.services.items())
    out = [f"# 🏗️ {t['head']} - {f.title}", "",
           f"**{t['id']}:** {plan_id(f.day, f.title)}  ",
           f"**{t['date']}:** {f.day}  ",
           f"**{t['scope']}:** {f.title} — {t['services'].lower()}: {roles}  ",
           f"**{t['owner']}:** {f.owner}  ",
           f"**{t['duration']}:** {t['duration_v']}", "", "---", "",
           f"## {t['s1']}", "", f"### {t['goal']}", t["goal_v"].format(title=f.title), "",
           f"### {t['ctx']}", t["ctx_v"], "", f"#### {t['known']}",
           f"- **{t['services']}:** {roles}", f"- **{t['env']}:**"]
    for e in f.envs:
        line = f"  - `{e.name}`: {t['kinds'].get(e.kind, e.kind)}"
        if e.url:
            line += f", {e.url}"
        if e.hosts:
            line += f"; {t['hosts']}: " + "; ".join(e.hosts)
        if e.note:
            line += f" ({t['not_created'] if e.note == 'not created' else e.note})"
        out.append(line)
    out += [f"- {t['audit'].format(counts=counts)}", "", f"### {t['req']}",
            f"- {t['r1']}", f"- {t['r2']}", f"- {t['r3'].format(verify=verify, drill=drill)}",
            f"- {t['r4']}", "", "---", "", f"## {t['s2']}", "", f"### {t['diagram']}", "```"]
    out += [f"{s} -> {', '.join(d)}" for s, d in f.edges.items() if d] or ["[diagram]"]
    out += ["```", "", f"### {t['components']}",
            f"- **{t['c_containers']}:** {t['c_containers_v']}",
            f"- **{t['c_cicd']}:** GitHub Actions ({pipeline})",
            f"- **{t['c_iac']}:** {t['c_iac_v']}",
            f"- **{t['c_mon']}:** {t['c_mon_v']}",
            f"- **{t['c_backup']}:** pg_dump + sha256 + manifest, {t['verified']} {verify}; "
            f"off-site: {offsite}", "",
            f"### {t['flow']}"]
    followers = ", ".join(f"`{x}`" for x in f.followers) or t["none"]
    for i, step in enumerate(t["flow_v"], 1):
        out.append(f"{i}. " + step.format(bg=f.blue_green or "api", followers=followers,
                                          replicas=f.deploy.get("replicas", 2)))
    out += ["", "---", "", f"## {t['s3']}", "", f"### {t['phase1']}"]
    if f.risks:
        for i, r in enumerate(f.risks[:7], 1):
            out.append(f"- [ ] {t['task']} 1.{i}: {r.title} ({r.where}) — {r.fix.splitlines()[0]}")
    else:
        out.append(f"- [x] {t['task']} 1.1: `inv audit --fail-on medium`")
    out += ["", f"### {t['phase2'].format(title=f.title)}", f"- [ ] {t['task']} 2.1: {t['todo']}",
            "", f"### {t['phase3']}", f"- [ ] {t['task']} 3.1: {t['todo']}", "", "---", "",
            f"## {t['s4']}", "", f"### {t['dod']}"]
    out += [f"- [ ] {d.format(pipeline=pipeline)}" for d in t["dod_v"]]
    out += ["", f"### {t['rollback']}", f"- {t['rb_deploy']}", f"- {t['rb_data']}",
            f"- {t['rb_backup'].format(keep=keep, verify=verify, drill=drill, offsite=offsite)}",
            "", "---", "", f"## {t['s5']}", "", t["risk_head"], "|---|---|---|---|"]
    if f.risks:
        for r in f.risks:
            prob, impact = t["levels"][r.severity]
            out.append(f"| **{_cell(r.title)}** ({_cell(r.where)}) | {prob} | {impact} | "
                       f"{_cell(r.fix.splitlines()[0])} |")
    else:
        out.append(t["no_risks"])
    out += ["", "---", f"**{t['end']}**", ""]
    return "\n".join(out)
