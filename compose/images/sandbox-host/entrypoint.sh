#!/bin/sh
# Fresh host keys, the authorized key from the environment, dockerd, then sshd.
set -eu
rm -f /etc/ssh/ssh_host_*
ssh-keygen -A >/dev/null
if [ -n "${SANDBOX_AUTHORIZED_KEY:-}" ]; then
  printf '%s\n' "$SANDBOX_AUTHORIZED_KEY" > /root/.ssh/authorized_keys
  chmod 600 /root/.ssh/authorized_keys
fi
unset SANDBOX_AUTHORIZED_KEY
dockerd >/var/log/dockerd.log 2>&1 &
exec /usr/sbin/sshd -D -e
