"""docker-compose.yml without a Docker engine: it parses, every command is a real `evoforge`
command with real options, and ports, hosts and variables agree with .env.example."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from service.cli.app import app

REPO = Path(__file__).resolve().parents[2]
VAR = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _env() -> dict[str, str]:
    pairs = (ln.split("=", 1) for ln in (REPO / ".env.example").read_text().splitlines()
             if ln.strip() and not ln.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, str):
        return VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _interpolate(yaml.safe_load((REPO / "docker-compose.yml").read_text()), _env())


def _help(words: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": "250"})
    return result.exit_code, result.output


def test_every_variable_is_defined_and_every_setting_used() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    env = _env()
    used = {m.group(1) for m in VAR.finditer(text) if m.group(2) is None}
    assert used - set(env) == set(), "add these to .env.example"
    defaulted = {m.group(1) for m in VAR.finditer(text)}
    assert set(env) - defaulted == set(), "unused settings in .env.example"


def test_every_evoforge_command_and_option_exists(compose: dict[str, Any]) -> None:
    missing, checked = [], []
    for name, svc in compose["services"].items():
        cmd = svc.get("command") or []
        if not cmd or cmd[0] != "evoforge":
            continue
        words = [w for w in cmd[1:3] if not w.startswith("-")]
        words = words[:1] if words[:1] != ["db"] else words
        code, out = _help(words)
        if code != 0:
            missing.append(f"{name}: `evoforge {' '.join(words)}`")
            continue
        for opt in (w for w in cmd if w.startswith("--")):
            assert opt in out, f"{name}: `evoforge {' '.join(words)}` has no option {opt}"
        checked.append(name)
    assert {"migrate", "api", "controller", "worker", "trainer"} <= set(checked)
    assert not missing, f"not evoforge commands: {missing}"


def test_ports_hosts_and_health_agree(compose: dict[str, Any]) -> None:
    svc = compose["services"]
    env = _env()
    api_cmd = svc["api"]["command"]
    assert api_cmd[api_cmd.index("--port") + 1] == "8000"
    assert svc["api"]["ports"] == [f"{env['API_PORT']}:8000"]
    assert "127.0.0.1:8000/api/health" in " ".join(svc["api"]["healthcheck"]["test"])
    vllm = svc["vllm"]
    assert vllm["command"][vllm["command"].index("--port") + 1] == "8000"
    assert vllm["ports"] == [f"{env['VLLM_PORT']}:8000"]
    assert vllm["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert "--enable-lora" in vllm["command"]
    trainer = svc["trainer"]["command"]
    assert trainer[trainer.index("--llm-url") + 1] == "http://vllm:8000/v1"
    assert "adapters:/adapters" in vllm["volumes"] and "adapters:/adapters" in \
        svc["trainer"]["volumes"]
    env_db = svc["api"]["environment"]["EVOFORGE_DB"]
    assert re.fullmatch(r"postgresql\+psycopg://\w+:[^@]+@postgres:5432/\w+", env_db)
    assert svc["worker"]["environment"]["EVOFORGE_BROKER"].endswith("@rabbitmq:5672//")
    assert svc["worker"]["command"][:5] == ["evoforge", "worker", "--queues", "cpu",
                                            "--concurrency"]
    for name, s in svc.items():
        for dep, cond in (s.get("depends_on") or {}).items():
            assert dep in svc, f"{name} depends on unknown service {dep}"
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in svc[dep], f"{dep} needs a healthcheck for {name}"


def _scraped(compose: dict[str, Any]) -> dict[str, tuple[int, str]]:
    """Returns what Prometheus scrapes: service name -> (port, path)."""
    prometheus = yaml.safe_load(compose["configs"]["prometheus"]["content"])
    found = {}
    for job in prometheus["scrape_configs"]:
        path = job.get("metrics_path", "/metrics")
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.split(":")
                found[host] = (int(port), path)
        for dns in job.get("dns_sd_configs", []):  # every replica of a scaled service
            assert dns["type"] == "A"
            for name in dns["names"]:
                found[name] = (int(dns["port"]), path)
    return found


def _serving(compose: dict[str, Any]) -> dict[str, int]:
    """Returns the services that serve /metrics and on which port (serve: its API port)."""
    found = {}
    for name, svc in compose["services"].items():
        cmd = svc.get("command") or []
        if cmd[:2] == ["evoforge", "serve"]:
            found[name] = int(cmd[cmd.index("--port") + 1])
        elif cmd[:1] == ["evoforge"] and "--metrics-port" in cmd:
            found[name] = int(cmd[cmd.index("--metrics-port") + 1])
    return found


def test_prometheus_scrapes_the_api_controllers_and_workers_where_they_serve(
        compose: dict[str, Any]) -> None:
    scraped, serving = _scraped(compose), _serving(compose)
    assert {"api", "controller", "worker"} <= set(serving)
    assert {name: port for name, (port, _) in scraped.items()} == serving
    assert {path for _, path in scraped.values()} == {"/metrics"}
    prometheus = compose["services"]["prometheus"]
    assert prometheus["configs"] == [{"source": "prometheus",
                                      "target": "/etc/prometheus/prometheus.yml"}]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert prometheus["ports"] == [f"{_env()['PROMETHEUS_PORT']}:9090"]


def test_the_dashboard_asks_only_for_metrics_evoforge_serves() -> None:
    defined = set()
    for source in ("service/telemetry/metrics.py", "service/api/collector.py"):
        defined |= set(re.findall(r'"(evoforge_[a-z_]+)"', (REPO / source).read_text()))
    served = {name + suffix for name in defined
              for suffix in ("", "_total", "_bucket", "_count", "_sum")}
    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    asked = {name for panel in dashboard["panels"] for target in panel["targets"]
             for name in re.findall(r"evoforge_[a-z_]+", target["expr"])}
    assert asked and asked <= served, asked - served
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("throughput", "queue depth", "queue age", "failure kinds", "tokens per run",
                  "best score per run"):
        assert topic in titles
