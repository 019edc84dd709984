"""ps, health, logs and exec on a deployed Swarm stack: the I/O around facts.swarm_stack.

The manager answers for the whole stack in one round trip (`docker inspect` of its
services, tasks and nodes); what must run inside a container (SELECT 1, PING, a
command of the user's) runs on the node that hosts the task, over that node's
connection from the session's fleet (ops/runtime/fleet.py)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from ... import early_probe
from ...commands import cluster as cluster_cmd
from ...commands import probes
from ...errors import OpsError
from ...facts import swarm_stack as state
from ...health import Check, http_get, run_jobs, tls_check


class SwarmStack:
    def __init__(self, session):
        self.session = session
        self.deployment = session.deployment
        self.fleet = session.fleet

    # -- connections ----------------------------------------------------------------------
    def node_target(self, snap: state.Snapshot, node_id: str):
        """The runner of the node running a task."""
        return self.fleet.runner(self.node_host(snap, node_id))

    def node_host(self, snap: state.Snapshot, node_id: str):
        """The inventory Host a node is (no connection is opened for it)."""
        node = snap.node(node_id)
        host = self.fleet.host_of(node) if node else None
        if host is None:
            raise OpsError(f"node {snap.node_name(node_id)} is not one of the hosts of "
                           f"--env {self.deployment.env}: add it to the inventory to reach its containers")
        return host

    def connect_nodes(self) -> None:
        """Start opening every host's connection now (a failure is said by the check
        that needs that host, if any)."""
        self.fleet.warm()

    def close(self) -> None:
        """The monitoring tunnels, then the session (and every connection it opened)."""
        if getattr(self, "_monitor", None) is not None:
            self._monitor.close_tunnels()
        self.session.close()

    # -- reads ----------------------------------------------------------------------------
    def snapshot(self) -> state.Snapshot:
        from . import deployment

        return deployment.snapshot(self.deployment)

    # -- scale ----------------------------------------------------------------------------
    def scale(self, spec: str, timeout: float | None = None, verify_requests: int = 400) -> dict:
        """Scale services of the deployed stack in place; `api` is the live color. The
        count is kept for later deploys (the next color starts with as many tasks), and
        a scaled live color is proven through the public URL: every task answers."""
        from ... import routing
        from ...commands.deploy import APP_SERVICE, COLORS
        from ...scaling import parse_spec
        from . import deployment

        wanted = parse_spec(spec)
        snap = self.snapshot()
        live_color = snap.live_color
        targets = state.scale_targets(snap, wanted, live_color)
        keep = {(APP_SERVICE if short == live_color else short): n for short, _, n in targets
                if short not in COLORS or short == live_color}
        deployment.scale(self.deployment, [(short, svc.image, n) for short, svc, n in targets], keep, timeout)
        report = {short: {"replicas": n} for short, _, n in targets}
        live_count = report.get(live_color, {}).get("replicas", 0)
        if live_count and self.deployment.url:
            after = self.snapshot()
            expected = {t.container[:12] for t in after.running(after.services[live_color])}
            report[live_color]["answering"] = dict(
                routing.verify(self.deployment.url, expected, verify_requests, trust=self.deployment.trust))
        return report

    def task_target(self, snap, name: str, index: int = 1):
        """The index-th running task of a service (by slot), and where it runs."""
        running = snap.running(snap.services[name])
        if not running:
            raise OpsError(f"{name}: no running task" + state.problem(snap, snap.services[name]))
        if index > len(running):
            raise OpsError(f"{name}: only {len(running)} running task(s), not {index}")
        task = running[index - 1]
        return task, self.node_target(snap, task.node)

    # -- health ---------------------------------------------------------------------------
    def health(self) -> list[Check]:
        self.connect_nodes()  # the disk check needs every node: open them meanwhile
        early = self._early_probes()  # the slow ones, where the last run found them
        snap = self.snapshot()
        live_color, live_tag = snap.live or (None, None)
        jobs, slow, execs, places = [], set(), set(), []
        for name, svc in sorted(snap.services.items()):
            label = f"{name} (live)" if name == live_color else name
            jobs.append((label, "tasks", lambda n=name: state.service_verdict(snap, n, live_color)))
            role = state.role(name, svc)
            probe = probes.BY_ROLE.get(role)
            if probe:
                for task in snap.running(svc):
                    fn = lambda t=task, p=probe: self._probe(snap, t, p)  # noqa: E731
                    if probe.slow:
                        if task.container in early:
                            fn = early[task.container].job(task.container, fn)
                        slow.add(fn)
                        places.append(self._place(snap, task, role))
                    else:
                        execs.add(fn)
                    jobs.append((label, f"{probe.name} on {snap.node_name(task.node)}", fn))
            for extra in probes.ALSO_BY_ROLE.get(role, ()):
                for task in snap.running(svc):
                    fn = lambda t=task, p=extra: self._probe(snap, t, p)  # noqa: E731
                    execs.add(fn)
                    jobs.append((label, f"{extra.name} on {snap.node_name(task.node)}", fn))
        env = self.deployment.env
        for node in snap.nodes:
            jobs.append((f"node {node.hostname}", "ready",
                         lambda n=node: state.node_verdict(n, snap.nodes, env)))
        for node in self._disk_nodes(snap):
            jobs.append((f"node {node.hostname}", "disk", lambda n=node: self._disk(snap, n)))
        if self.deployment.url and live_color:
            if self.deployment.url.startswith("https://"):
                jobs.append(("gateway", f"TLS certificate of {self.deployment.url}",
                             lambda: tls_check(self.deployment.url, self.deployment.trust)))
            url, trust = self.deployment.url, self.deployment.trust
            for path in ("/health/live", "/health/ready"):
                jobs.append((f"{live_color} (live)", f"{path} via {url}",
                             lambda p=path: http_get(url + p, live_tag, trust)))
        elif not live_color:
            jobs.append(("gateway", "live color", lambda: (False, "no live color: nothing deployed")))
        jobs.append(("deploy lock", "state", self._lock_state))
        if "prometheus" in snap.services:
            jobs += self._monitoring_jobs()
        places = [p for p in places if p]
        if places != self._last_places:
            early_probe.save_places(self._places_file, places)
        try:
            return run_jobs(jobs, first=slow, execs=execs)
        finally:
            for probe in early.values():
                probe.close()

    @property
    def _places_file(self):
        return self.session.settings.root / ".cache" / f"health-places-{self.deployment.env}.json"

    def _place(self, snap, task, role: str) -> dict | None:
        """Where a slow probe's task runs, for the next run's head start."""
        if not task.container:
            return None
        try:
            host = self.node_host(snap, task.node)  # a name: not worth waiting for its SSH
        except OpsError:
            return None
        return {"host": host.name, "container": task.container, "role": role}

    def _early_probes(self) -> dict:
        """container -> the slow probe started in it now, on the host the last run
        found it on (early_probe: the snapshot decides whether it counts)."""
        hosts = self.fleet.by_name()
        out = {}
        self._last_places = early_probe.load_places(self._places_file)
        for place in self._last_places:
            probe = probes.BY_ROLE.get(place.get("role"))
            host = hosts.get(place["host"])
            if probe is None or not probe.slow or host is None or \
                    not cluster_cmd.CONTAINER.match(place["container"]):
                continue

            def run(host=host, container=place["container"], probe=probe):
                return self._probe_in(self.fleet.runner(host), container, probe)

            out[place["container"]] = early_probe.in_thread(place["container"], run)
        return out

    def _monitoring_jobs(self) -> list:
        """The monitoring part's own view, when it is deployed: its targets and the
        alerts firing (through the same tunnel as `inv monitoring.status`)."""
        from ...monitoring import health, status
        from .monitoring import SwarmMonitoring

        mon = self._monitor = SwarmMonitoring(self.session, None)
        return [("monitoring", "prometheus targets",
                 lambda: health.targets_verdict(status.targets(mon.targets()))),
                ("monitoring", "alerts", lambda: health.alerts_verdict(status.alerts(mon.alerts())))]

    def _probe(self, snap, task, probe) -> tuple[bool, str]:
        return self._probe_in(self.node_target(snap, task.node), task.container, probe)

    def _probe_in(self, node, container: str, probe) -> tuple[bool, str]:
        result = node.run(cluster_cmd.container_exec(container, probe.line), probe.name, check=False)
        return probe.verdict(result.returncode, result.stdout or result.stderr or "")

    def _disk_nodes(self, snap) -> list[state.Node]:
        # One df per machine: on this engine every node is the same one.
        return self.fleet.separate(snap.nodes)

    def _disk(self, snap, node) -> tuple[bool, bool, str]:
        # The manager also holds the deploy's state: a full disk there stops every deploy.
        paths = ["/var/lib/docker", *([self.deployment.paths.root] if node.role == "manager" else [])]
        result = self.node_target(snap, node.id).run(cluster_cmd.disk_free(*paths), "df", check=False)
        return state.disk_verdict(result.stdout)

    def _lock_state(self) -> tuple[bool, bool, str]:
        from ...deploy.lock import describe, stale_reason

        holder = self.deployment.lock().holder()
        if not holder:
            return True, False, "not held"
        stale = stale_reason(holder, datetime.now(UTC))
        if stale:
            return False, False, f"STALE: {describe(holder)} ({stale}); `inv deploy.unlock`"
        return True, True, f"held by {describe(holder)}"

    # -- logs and exec --------------------------------------------------------------------
    def logs(self, names, follow=False, tail=None, since=None, timestamps=False) -> None:
        full = self._chosen(self.snapshot(), names)
        result = self.deployment.target.attached(
            cluster_cmd.service_logs(full, follow, tail, since, timestamps), capture_stderr=True)
        hung = cluster_cmd.hung_services(result.stderr or "")
        rest = [x for x in (result.stderr or "").splitlines() if not x.startswith(cluster_cmd.LOGS_HUNG)]
        if rest:
            print("\n".join(rest), file=sys.stderr)
        if hung:
            raise OpsError(f"docker service logs of {', '.join(hung)} did not finish within "
                           f"{cluster_cmd.SERVICE_LOGS_WAIT} s (a Docker hang, docker/cli#4678): "
                           "the lines above may be incomplete; run it again")

    @staticmethod
    def _chosen(snap, names) -> list[str]:
        """The full names of the services asked for (`api` is the live color), or all."""
        chosen = [snap.service(n, snap.live_color)[1] for n in names] if names else snap.services.values()
        return sorted(svc.name for svc in chosen)

    def search_logs(self, names, text: str, tail=None, since=None) -> list:
        """Every line of the chosen services (default all, both colors) that mentions
        `text`, in time order: each node reads and filters its own containers' logs
        (logsearch.node_search), all nodes at once; merged here. A node that is down,
        not in the inventory or not answering is named after the lines found
        (logsearch.Incomplete)."""
        from ... import logsearch
        from ...runtime.fanout import each_host

        snap = self.snapshot()
        command = logsearch.node_search(snap.app, self._chosen(snap, names), text, tail, since)
        nodes, missing = self._log_nodes(snap)

        def search(host):
            try:
                return self.fleet.runner(host).run(command, f"the log search on {host.name}").stdout
            except OpsError as exc:
                return exc

        outputs = each_host([host for _, host in nodes], search)
        found = []
        for node_name, host in nodes:
            out = outputs[host.name]
            if isinstance(out, OpsError):
                missing.append(f"node {node_name}'s logs ({out})")
                continue
            entries, unread = logsearch.node_entries(out, node_name, text)
            found += entries
            missing += unread
        found.sort(key=lambda e: e.ts)
        if missing:
            raise logsearch.Incomplete(found, missing)
        return found

    def _log_nodes(self, snap) -> tuple[list, list[str]]:
        """[(node name, inventory Host)] whose logs can be read, and the nodes that
        cannot, said why."""
        nodes, missing = [], []
        for node in self.fleet.separate(snap.nodes):
            host = self.fleet.host_of(node)
            if host is None:
                missing.append(f"node {node.hostname}'s logs (not one of the hosts of --env "
                               f"{self.deployment.env})")
            elif node.state != "ready":
                missing.append(f"node {node.hostname}'s logs (the node is {node.state})")
            else:
                nodes.append((node.hostname, host))
        return nodes, missing

    def exec(self, name: str, argv: list[str], index: int = 1, tty: bool = False) -> int:
        snap = self.snapshot()
        short, _ = snap.service(name, snap.live_color)
        task, node = self.task_target(snap, short, index)
        return node.attached(cluster_cmd.container_exec(task.container, argv, interactive=tty),
                             tty=tty).returncode
