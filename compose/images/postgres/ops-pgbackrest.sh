#!/bin/sh
# ops-pgbackrest db [postgres ARGS...] | ops-pgbackrest repo
#
# pgBackRest for the stack, configured from the container's secrets and variables:
#   db    postgres with continuous WAL archiving (asynchronous archive-push) to the
#         repository service, and pgBackRest's TLS server beside it, through which the
#         repository takes base backups.
#   repo  the repository: pgBackRest's TLS server over its own volume (/var/lib/pgbackrest).
#         A database's options (pg1-host, its TLS files) are stanza-only: the commands
#         run here name them (ops.commands.pgbackrest), so a database added to the
#         stack needs no change to this service.
# Both ends authenticate with client certificates from one CA (secrets pgbackrest_ca,
# pgbackrest_<role>_cert, pgbackrest_<role>_key): the databases' CN is pgbackrest-db,
# the repository's pgbackrest-repo.
#
# Variables: PGBACKREST_STANZA (db: this database's stanza, its service name),
# OPS_PGBACKREST_REPO_HOST (db: the repository's address, default pgbackrest),
# OPS_ARCHIVE_TIMEOUT (db: seconds before a quiet WAL segment is archived anyway; it
# bounds what a crash can lose, default 5).
set -eu

role="${1:-}"
[ "$role" = db ] || [ "$role" = repo ] || { echo "usage: ops-pgbackrest db|repo [ARGS...]" >&2; exit 64; }
shift

# pgBackRest's archive-push forks a daemon: with postgres as PID 1 that orphan would be
# postgres's child, and its exit would look like a crashed backend (a restart).
if [ "$$" = 1 ]; then
	echo "ops-pgbackrest: run it under an init (compose: init: true)" >&2
	exit 64
fi

tls=/run/pgbackrest
install -d -o postgres -g postgres -m 700 "$tls" /tmp/pgbackrest /var/log/pgbackrest
for f in ca "${role}_cert" "${role}_key"; do
	if [ ! -s "/run/secrets/pgbackrest_$f" ]; then
		echo "ops-pgbackrest: secret pgbackrest_$f missing: give this service the pgbackrest secrets (see app-db in compose/compose.yaml)" >&2
		exit 1
	fi
done
# pgBackRest refuses a key readable by others; a secret's copy is root's, 0444.
install -o postgres -g postgres -m 600 /run/secrets/pgbackrest_ca "$tls/ca.crt"
install -o postgres -g postgres -m 600 "/run/secrets/pgbackrest_${role}_cert" "$tls/tls.crt"
install -o postgres -g postgres -m 600 "/run/secrets/pgbackrest_${role}_key" "$tls/tls.key"

mkdir -p /etc/pgbackrest
conf=/etc/pgbackrest/pgbackrest.conf
{
	echo "[global]"
	echo "log-level-file=off"
	echo "log-level-console=warn"
	echo "log-level-stderr=warn"
	echo "spool-path=/tmp/pgbackrest"
	echo "tls-server-address=*"
	echo "tls-server-ca-file=$tls/ca.crt"
	echo "tls-server-cert-file=$tls/tls.crt"
	echo "tls-server-key-file=$tls/tls.key"
} >"$conf.new"

server() {
	# The TLS server, restarted if it ends; its parent is the init, not postgres.
	(while :; do
		setpriv --reuid=postgres --regid=postgres --init-groups pgbackrest server || true
		sleep 2
	done) &
}

if [ "$role" = repo ]; then
	{
		echo "tls-server-auth=pgbackrest-db=*"
		echo "repo1-path=/var/lib/pgbackrest"
	} >>"$conf.new"
	mv "$conf.new" "$conf"
	chown postgres:postgres /var/lib/pgbackrest
	chmod 750 /var/lib/pgbackrest
	exec setpriv --reuid=postgres --regid=postgres --init-groups pgbackrest server
fi

stanza="${PGBACKREST_STANZA:?ops-pgbackrest: set PGBACKREST_STANZA (the service name) in its environment}"
case "$stanza" in
	*[!a-z0-9_-]*) echo "ops-pgbackrest: PGBACKREST_STANZA $stanza: use [a-z0-9_-] only" >&2; exit 64 ;;
esac
timeout="${OPS_ARCHIVE_TIMEOUT:-5}"
{
	echo "tls-server-auth=pgbackrest-repo=$stanza"
	echo "repo1-host=${OPS_PGBACKREST_REPO_HOST:-pgbackrest}"
	echo "repo1-host-type=tls"
	echo "repo1-host-ca-file=$tls/ca.crt"
	echo "repo1-host-cert-file=$tls/tls.crt"
	echo "repo1-host-key-file=$tls/tls.key"
	echo "archive-async=y"
	echo "process-max=2"
	echo "[$stanza]"
	echo "pg1-path=${PGDATA:-/var/lib/postgresql/data}"
	echo "pg1-user=${POSTGRES_USER:-postgres}"
} >>"$conf.new"
mv "$conf.new" "$conf"
server
[ $# -gt 0 ] || set -- postgres
exec docker-entrypoint.sh "$@" \
	-c archive_mode=on \
	-c "archive_command=pgbackrest --stanza=$stanza archive-push %p" \
	-c "archive_timeout=$timeout"
