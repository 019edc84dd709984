"""inv plan.new's pure parts: the slug (no path tricks) and the filled template."""

from __future__ import annotations

import pytest

from ops.errors import OpsError
from ops.plan import Env, Facts, Risk, plan_id, render, slug


def facts(**kw):
    base = dict(title="Off-site backups", day="2026-11-23", owner="ops team",
                services={"api": "app", "app-db": "database"}, edges={"api": ["app-db"]},
                envs=[Env("local", "compose"),
                      Env("staging", "swarm-ssh", ["mgr1 (manager) deploy@10.0.0.1:22"],
                          "https://staging.example.com")],
                backup={"keep": {"last": 7, "daily": 7}, "verify_after": "read",
                        "drill_every_hours": 24},
                offsite=["s3:backups"], deploy={"replicas": 2}, blue_green="api",
                followers=["worker"], pipeline=[".github/workflows/ci.yml"],
                risks=[Risk("high", "OA203 data-tier port published on all interfaces", "app-db",
                            "ports:\n  - \"127.0.0.1:5432:5432\"")],
                audit_counts={"critical": 0, "high": 1, "medium": 0, "low": 0})
    base.update(kw)
    return Facts(**base)


@pytest.mark.parametrize("title, expected", [
    ("Off-site backups to S3", "off-site-backups-to-s3"),
    ("../../etc/passwd", "etc-passwd"),
    ("Migración a Kubernetes; rm -rf /", "migracion-a-kubernetes-rm-rf"),
    ("x" * 80, "x" * 48),
])
def test_slug_is_file_name_safe(title, expected):
    assert slug(title) == expected
    assert plan_id("2026-11-23", title) == f"INFRA-20261123-{expected}"


@pytest.mark.parametrize("title", ["", "  ", "../..", "¿?"])
def test_a_title_with_nothing_to_name_the_file_by_is_refused(title):
    with pytest.raises(OpsError, match="no letters or digits"):
        slug(title)


def test_english_plan_is_filled_from_the_facts():
    text = render(facts(), "en")
    assert text.startswith("# 🏗️ INFRASTRUCTURE PLAN - Off-site backups")
    for fragment in ("**Plan ID:** INFRA-20261123-off-site-backups", "**Owner(s):** ops team",
                     "`api` (app), `app-db` (database)",
                     "`staging`: Docker Swarm over SSH, https://staging.example.com; hosts: mgr1",
                     "api -> app-db", "(`worker`) follow the release", "keep last 7, daily 7",
                     "off-site copies: s3:backups", "restore drill every 24 h",
                     "| **OA203 data-tier port published on all interfaces** (app-db) | Medium | "
                     "High | ports: |", "`inv rollback --env ENV`", "## 5. Risks and considerations"):
        assert fragment in text, fragment


def test_spanish_plan_keeps_the_seed_template_headings():
    text = render(facts(), "es")
    for heading in ("## 1. Objetivos y Contexto", "### Requisitos Clave",
                    "## 2. Arquitectura de la Solución", "## 3. Plan de Implementación Detallado",
                    "## 4. Plan de Verificación y Rollback", "### Estrategia de Rollback",
                    "## 5. Riesgos y Consideraciones", "| Riesgo | Probabilidad | Impacto |",
                    "**FIN DEL PLAN DE INFRAESTRUCTURA**", "**Responsable(s):** ops team",
                    "`staging`: Docker Swarm por SSH, https://staging.example.com"):
        assert heading in text, heading


def test_no_risks_and_unknown_language():
    assert "No open audit finding" in render(facts(risks=[]), "en")
    with pytest.raises(OpsError, match="--lang must be one of en, es"):
        render(facts(), "fr")
