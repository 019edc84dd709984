"""Runtime settings from the environment; secrets from VAR or VAR_FILE (Docker secrets)."""

import os
from dataclasses import dataclass


def secret(name: str, default: str = "") -> str:
    """VAR wins; else the content of the file named by VAR_FILE (trailing newline dropped)."""
    if os.environ.get(name):
        return os.environ[name]
    path = os.environ.get(f"{name}_FILE")
    if path:
        with open(path, encoding="utf-8") as fh:
            return fh.read().rstrip("\n")
    return default


@dataclass(frozen=True)
class Database:
    name: str  # logical name used in /health output ("app", "auth")
    host: str
    port: int
    database: str
    user: str
    password: str


@dataclass(frozen=True)
class Settings:
    port: int
    version: str
    color: str
    databases: tuple[Database, ...]
    redis_host: str
    redis_port: int
    redis_password: str
    check_timeout: float
    log_level: str
    broker: "Broker | None" = None


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    user: str
    password: str
    vhost: str
    queue: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def broker() -> "Broker | None":
    """The AMQP broker, when BROKER_HOST is set (jobs are then enabled)."""
    host = os.environ.get("BROKER_HOST", "")
    if not host:
        return None
    return Broker(host=host, port=int(os.environ.get("BROKER_PORT", "5672")),
                  user=os.environ.get("BROKER_USER", "guest"),
                  password=secret("BROKER_PASSWORD", "guest"),
                  vhost=os.environ.get("BROKER_VHOST", "/"),
                  queue=os.environ.get("JOBS_QUEUE", "jobs"))


def database(name: str) -> Database:
    prefix = f"{name.strip().upper()}_DB_"
    return Database(
        name=name.strip(),
        host=os.environ.get(prefix + "HOST", f"{name}-db"),
        port=int(os.environ.get(prefix + "PORT", "5432")),
        database=os.environ.get(prefix + "NAME", name),
        user=os.environ.get(prefix + "USER", name),
        password=secret(prefix + "PASSWORD"),
    )


def load() -> Settings:
    dbs = [database(n) for n in filter(None, os.environ.get("API_DATABASES", "app").split(","))]
    return Settings(
        port=int(os.environ.get("API_PORT", "8000")),
        version=os.environ.get("APP_VERSION", "dev"),
        color=os.environ.get("APP_COLOR", ""),
        databases=tuple(dbs),
        redis_host=os.environ.get("REDIS_HOST", "redis"),
        redis_port=int(os.environ.get("REDIS_PORT", "6379")),
        redis_password=secret("REDIS_PASSWORD"),
        check_timeout=float(os.environ.get("API_CHECK_TIMEOUT", "2")),
        log_level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        broker=broker(),
    )
