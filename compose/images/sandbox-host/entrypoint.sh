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
# A restarted container keeps /run but not its processes: containerd's stale socket and
# pid files would make the new dockerd wait for a containerd that never answers.
rm -rf /var/run/docker /var/run/docker.pid /var/run/docker.sock /run/containerd
dockerd >/var/log/dockerd.log 2>&1 &
exec /usr/sbin/sshd -D -e
