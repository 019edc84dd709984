#!/bin/sh
# Writes the server's config from the environment, then runs the command. The password
# goes into a config file on /tmp (mode 600), never onto a command line.
set -eu
if [ -n "${RABBITMQ_DEFAULT_PASS_FILE:-}" ]; then
    RABBITMQ_DEFAULT_PASS="$(cat "$RABBITMQ_DEFAULT_PASS_FILE")"
fi
umask 077
conf="${RABBITMQ_CONFIG_FILE:-/tmp/rabbitmq.conf}"
{
    echo "loopback_users = none"
    echo "listeners.tcp.default = 5672"
    echo "log.console = true"
    echo "log.console.level = ${RABBITMQ_LOG_LEVEL:-info}"
    echo "log.console.formatter = json"
    echo "log.file = false"
    # The container's memory limit, not the host's: the high watermark is relative to it.
    limit="$(cat /sys/fs/cgroup/memory.max 2>/dev/null \
             || cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || echo max)"
    case "$limit" in
        ''|max|*[!0-9]*) ;;
        *) [ "${#limit}" -ge 16 ] || echo "total_memory_available_override_value = $limit" ;;
    esac
    if [ -n "${RABBITMQ_DEFAULT_USER:-}" ]; then
        echo "default_user = $RABBITMQ_DEFAULT_USER"
        echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-}"
    fi
    [ -z "${RABBITMQ_DEFAULT_VHOST:-}" ] || echo "default_vhost = $RABBITMQ_DEFAULT_VHOST"
} > "$conf"
unset RABBITMQ_DEFAULT_PASS
exec "$@"
