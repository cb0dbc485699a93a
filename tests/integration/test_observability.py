"""The Grafana dashboard and the Prometheus alert rules (deploy/) against a real Prometheus:
it scrapes a real gateway and a real worker (LLM narrator on the tests' local server) under a
short load that also fails turns and refuses requests, and every panel's expression and every
rule's measure returns data; `promtool check rules` passes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from playwright.sync_api import sync_playwright

from tests.support.dashboard_plot import Series, page
from tests.support.fake_llm import FakeLLM, fake_llm
from tests.support.player import Player
from tests.support.ports import free_port
from tests.support.processes import CeleryWorker, Gateway
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

DEPLOY = Path(__file__).parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"
DASHBOARD = DEPLOY / "grafana" / "pocket-portals.json"


def binary(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing: ./scripts/test installs Debian's prometheus"
    return found


def panel_expressions() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def rules() -> list[dict[str, Any]]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def test_promtool_passes_the_rules_and_each_alert_is_its_measure_against_a_threshold() -> None:
    checked = subprocess.run(
        [binary("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for rule in rules():
        measure = rule["annotations"]["measure"]
        assert rule["expr"].startswith(f"({measure})"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["action"]


def test_the_dashboard_is_grafana_json_over_one_prometheus_data_source() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "pocket-portals" and dashboard["panels"]
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert len(set(titles)) == len(titles)
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "pocket-portals-prometheus", panel
        assert panel["targets"], panel
    assert {p["id"] for p in dashboard["panels"]} == set(range(1, len(titles) + 1))


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query_range(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        answer = httpx.get(
            f"{self.url}/api/v1/query_range",
            params={"query": expr, "start": start, "end": end, "step": 1},
            timeout=10,
        )
        body = answer.json()
        assert body["status"] == "success", (expr, body)
        return list(body["data"]["result"])

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = answer.json()
        assert body["status"] == "success", (expr, body)
        return list(body["data"]["result"])


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Callable[[str, str], Prometheus]]:
    """Start Debian's Prometheus scraping a gateway and a worker every second with the rules;
    stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []

    def start(gateway: str, worker: str) -> Prometheus:
        port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {"job_name": "pocket-portals-gateway", "static_configs": [{"targets": [gateway]}]},
                {"job_name": "pocket-portals-worker", "static_configs": [{"targets": [worker]}]},
            ],
        }
        path = tmp_path / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        log = (tmp_path / "prometheus.log").open("wb")
        logs.append(log)
        process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=log,
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=60, what="Prometheus ready")
        return Prometheus(url)

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=30)
    for log in logs:
        log.close()


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with fake_llm() as server:
        yield server


@pytest.fixture
def store_limit(redis_url: str) -> Iterator[None]:
    """A maxmemory on the suite's Redis for the test's length (restored after), so the
    store-memory measure has a limit to compare with."""
    client = redis.Redis.from_url(redis_url)
    before = client.config_get("maxmemory")["maxmemory"]
    client.config_set("maxmemory", str(2 * 1024**3))
    yield
    client.config_set("maxmemory", before)
    client.close()


def load(gateway: Gateway) -> None:
    """Turns that complete (told by the LLM, or offline when its call failed) and turns that
    fail (the LLM failed and so did the offline drill, on "Doom"), and turns refused while too
    many are pending."""
    players = [Player(gateway.url) for _ in range(3)]
    try:
        for player in players:
            for body in ({"choice_index": 1}, {"action": "Doom"}, {"action": "Doom again"}) * 2:
                sent = player.submit(body)
                if sent.status_code == 202:
                    player.turn(sent.json()["turn_id"], wait=30)
        with ThreadPoolExecutor(max_workers=6) as pool:
            burst = list(
                pool.map(lambda _: players[0].submit({"action": "I look around"}), range(6))
            )
        assert 429 in [answer.status_code for answer in burst]
    finally:
        for player in players:
            player.close()


def legend_of(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{(\w+)\}\}", lambda m: labels.get(m.group(1), ""), template).strip()


def picture(prometheus: Prometheus, start: float, target: Path) -> None:
    """The dashboard's panels drawn from Prometheus's own figures (Grafana cannot run here)."""
    panels = []
    end = time.time()
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        lines = [
            Series(
                legend_of(query["legendFormat"], series["metric"]),
                [(float(t), float(v)) for t, v in series["values"]],
            )
            for query in panel["targets"]
            for series in prometheus.query_range(query["expr"], start, end)
        ]
        panels.append((panel["title"], panel["fieldConfig"]["defaults"]["unit"], lines))
    page_html = target.with_suffix(".html")
    page_html.write_text(
        page("Pocket Portals, under a short test load (Prometheus query_range)", panels)
    )
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "chromium is missing: ./scripts/test installs Debian's chromium"
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable)
        shot = browser.new_page(viewport={"width": 1130, "height": 900})
        shot.goto(page_html.as_uri())
        shot.screenshot(path=str(target), full_page=True)
        browser.close()


def test_every_panel_and_rule_has_data_from_a_real_gateway_and_worker(
    worker_factory: Callable[..., CeleryWorker],
    gateway_factory: Callable[..., Gateway],
    prometheus_for: Callable[[str, str], Prometheus],
    llm: FakeLLM,
    store_limit: None,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    worker_port = free_port()
    metrics_dir = tmp_path / "worker-metrics"
    env = {
        "NARRATOR": "llm",
        "LLM_MODEL": "openai/flaky",
        "LLM_BASE_URL": llm.base_url,
        "LLM_API_KEY": "sk-local-test",
        "LLM_RETRIES": "0",
        "LLM_FALLBACK": "offline",
        "NARRATOR_FAIL_ON": "Doom",
        "LLM_DESIGN_MAX_TOKENS": "0",
        "MAX_PENDING_TURNS": "2",
        "SWEEP_INTERVAL": "1",
    }
    worker = worker_factory(
        {
            **env,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "WORKER_METRICS_PORT": str(worker_port),
        }
    )
    gateway = gateway_factory(env)
    prometheus = prometheus_for(gateway.url.removeprefix("http://"), f"127.0.0.1:{worker_port}")
    started = time.time()
    load(gateway)
    measures = [(rule["alert"], rule["annotations"]["measure"]) for rule in rules()]
    for name, expr in [*panel_expressions(), *measures]:
        wait_until(
            lambda expr=expr: prometheus.query(expr) or None,
            timeout=90,
            what=f"data for {name}: {expr}",
            interval=0.5,
        )
    # The alerts are quiet: nothing here is wrong for long.
    firing = prometheus.query('ALERTS{alertstate="firing"}')
    assert firing == [], firing
    # README's picture of the dashboard (./scripts/test --update-golden rewrites it).
    update = request.config.getoption("--update-golden")
    target = DEPLOY.parent / "docs" / "dashboard.png" if update else tmp_path / "dashboard.png"
    picture(prometheus, started - 5, target)
    assert target.stat().st_size > 10_000
    # And an alert does go off: with the worker gone, "no worker scraped" is pending at once
    # (it fires after its `for`).
    worker.stop()
    wait_until(
        lambda: prometheus.query('ALERTS{alertname="PocketPortalsWorkersDown"}') or None,
        timeout=60,
        what="the workers-down alert",
        interval=0.5,
    )


def test_the_compose_observability_profile_runs_prometheus_and_grafana() -> None:
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())
    profiled = {name for name, spec in compose["services"].items() if "profiles" in spec}
    assert profiled == {"jaeger", "prometheus", "grafana"}
    for name in profiled:
        assert compose["services"][name]["profiles"] == ["observability"]
        for volume in compose["services"][name].get("volumes", []):
            assert (DEPLOY.parent / volume.split(":")[0]).exists(), volume
    config = DEPLOY / "prometheus" / "prometheus.yml"
    checked = subprocess.run(
        [binary("promtool"), "check", "config", "--syntax-only", str(config)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    scraped = yaml.safe_load(config.read_text())
    # The jobs the rules count on, each service's metrics port, and the rules mounted.
    assert {job["job_name"] for job in scraped["scrape_configs"]} == {
        "pocket-portals-gateway",
        "pocket-portals-worker",
    }
    worker_port = compose["services"]["worker"]["environment"]["WORKER_METRICS_PORT"]
    assert scraped["scrape_configs"][1]["dns_sd_configs"][0]["port"] == int(worker_port)
    assert scraped["rule_files"] == ["/etc/prometheus/rules.yml"]
    assert (
        "./deploy/prometheus/rules.yml:/etc/prometheus/rules.yml:ro"
        in (compose["services"]["prometheus"]["volumes"])
    )
    source = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    dashboard = json.loads(DASHBOARD.read_text())
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {source["uid"]}
    # Jaeger takes OTLP/HTTP on 4318, where the services export when told to.
    assert "4318" in compose["services"]["jaeger"]["expose"]
    assert compose["services"]["api"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == (
        "${OTEL_EXPORTER_OTLP_ENDPOINT:-}"
    )
