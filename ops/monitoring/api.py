"""Reading Prometheus' and Alertmanager's HTTP APIs, wherever they run: a runtime
gives `url(service, port)` (a loopback port Compose published, a task's address, or
the local end of an SSH tunnel) and gets the rest from `ApiReader`."""

from __future__ import annotations

import time
import urllib.parse

from ..errors import OpsError

API_TIMEOUT = 5.0
PROMETHEUS, ALERTMANAGER = ("prometheus", 9090), ("alertmanager", 9093)


def http_get(url: str):
    import requests

    try:
        resp = requests.get(url, timeout=API_TIMEOUT)
    except requests.RequestException as exc:
        raise OpsError(f"{url}: {type(exc).__name__}") from exc
    if resp.status_code != 200:
        raise OpsError(f"{url}: HTTP {resp.status_code}")
    try:
        return resp.json()
    except ValueError as exc:
        raise OpsError(f"{url}: not JSON") from exc


def http_post(url: str) -> None:
    import requests

    try:
        requests.post(url, timeout=API_TIMEOUT).raise_for_status()
    except requests.RequestException as exc:
        raise OpsError(f"{url}: {exc}") from exc


class ApiReader:
    def url(self, service: str, port: int) -> str:
        raise NotImplementedError

    def targets(self) -> dict:
        return http_get(self.url(*PROMETHEUS) + "/api/v1/targets?state=active")

    def alerts(self) -> list[dict]:
        return http_get(self.url(*ALERTMANAGER) + "/api/v2/alerts?active=true"
                        "&silenced=false&inhibited=false")

    def query(self, promql: str) -> dict:
        return http_get(self.url(*PROMETHEUS) + "/api/v1/query?query=" + urllib.parse.quote(promql))

    def jobs(self) -> set[str]:
        """The scrape jobs the rendered configuration defines."""
        raise NotImplementedError

    def settle(self, timeout: float, poll: float = 2.0) -> tuple[bool, str]:
        """Wait up to `timeout` seconds for every target to be up (a job without any
        target counts as down); the verdict and its detail."""
        from . import health, status

        deadline = time.monotonic() + timeout
        while True:
            rows = status.with_missing(status.targets(self.targets()), self.jobs())
            ok, detail = health.targets_verdict(rows)
            if ok or time.monotonic() > deadline:
                return ok, detail
            time.sleep(poll)
