"""The ops/ files against a real Prometheus (Debian's package, installed by ``make test``).

``promtool`` checks and unit-tests the alert rules and checks every dashboard
query; then a Prometheus server on loopback scrapes a running ``som worker``
every second and PromQL over its HTTP API must count exactly the orders published.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from connectors.tansu import free_port, stop_process
from tests.test_metrics import REQUIRED
from tests.test_metrics_worker import get, publish_and_wait, running_worker

OPS = Path(__file__).resolve().parent.parent / "ops"
RULES = OPS / "prometheus" / "som-rules.yml"
DASHBOARD = OPS / "grafana" / "som-dashboard.json"


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    found = {name: shutil.which(name) for name in ("prometheus", "promtool")}
    missing = [n for n, p in found.items() if not p]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: `make prometheus` installs Debian's "
                    "prometheus package (make test does it first)")
    return found


def promtool(tools, *args: str, cwd: Path | None = None) -> str:
    run = subprocess.run([tools["promtool"], *args], capture_output=True, text=True, cwd=cwd,
                         timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout + run.stderr


def test_rules_file_passes_promtool_check(tools):
    assert f"SUCCESS: {_rule_count()} rules found" in promtool(tools, "check", "rules", str(RULES))


def test_alert_rules_fire_as_specified(tools):
    """promtool's rule unit tests: each alert fires (and stays quiet) on synthetic series."""
    assert "SUCCESS" in promtool(tools, "test", "rules", "som-rules.test.yml",
                                 cwd=RULES.parent)


def test_example_scrape_config_is_valid(tools):
    promtool(tools, "check", "config", str(RULES.parent / "prometheus.yml"))


def _rule_count() -> int:
    return len(re.findall(r"^\s*- alert: ", RULES.read_text(), flags=re.MULTILINE))


def _dashboard_queries() -> dict[str, list[str]]:
    dash = json.loads(DASHBOARD.read_text())
    return {p["title"]: [t["expr"] for t in p["targets"]] for p in dash["panels"]}


def test_dashboard_has_the_panels_and_valid_queries(tools, tmp_path):
    queries = _dashboard_queries()
    for title in ("Throughput", "Holds by reason", "Decision latency percentiles",
                  "Consumer lag by partition", "Rejections by reason", "Certificates expiring"):
        assert title in queries
    exprs = [e for es in queries.values() for e in es]
    assert exprs and all(exprs)
    known = {n.removesuffix("_total") for n in REQUIRED} | {
        "som_orders_rekeyed", "som_ready", "som_batches", "som_rebalances",
        "som_partitions_assigned", "som_consumer_lag_age_seconds", "som_reviews",
        "som_trust_certificates", "som_trust_reload_failed", "som_reviews_unsigned",
        "som_orders_ship_to"}
    for expr in exprs:
        for name in re.findall(r"\b(som_[a-z_]+)", expr):
            base = re.sub(r"_(total|bucket|sum|count)$", "", name)
            assert base in known, f"dashboard uses unknown metric {name}"
    # every query must parse: promtool checks them as recording rules (Grafana variables filled)
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}",
         "expr": e.replace("$__rate_interval", "5m").replace("$job", "som")
                  .replace("$instance", ".*")}
        for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    promtool(tools, "check", "rules", str(path))


def _query(port: int, promql: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def _scalar(port: int, promql: str) -> float | None:
    result = _query(port, promql)
    return float(result[0]["value"][1]) if result else None


def test_real_prometheus_scrapes_the_worker_and_counts_the_batch(tools, broker, tmp_path):
    started = time.monotonic()
    with running_worker(broker, tmp_path / "worker") as w:
        data = tmp_path / "prometheus"
        data.mkdir()
        shutil.copy(RULES, data / RULES.name)
        (data / "prometheus.yml").write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [RULES.name],
            "scrape_configs": [{"job_name": "som", "scrape_timeout": "1s",
                                "static_configs": [{"targets": [f"127.0.0.1:{w.port}"]}]}],
        }))
        port = free_port()
        log = (data / "prometheus.log").open("wb")
        prom = subprocess.Popen(
            [tools["prometheus"], f"--config.file={data / 'prometheus.yml'}",
             f"--storage.tsdb.path={data / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
             "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, cwd=data)
        try:
            _wait(lambda: get(port, "/-/ready")[0] == 200, 20, "prometheus ready", data)
            _wait(lambda: _scalar(port, 'up{job="som"}') == 1, 15, "first scrape", data)
            got = publish_and_wait(w)
            decisions, rejections = got[w.topics[1]], got[w.topics[2]]
            n = len(w.messages)
            holds = sum(d["decision"] == "HOLD" for d in decisions)

            def counted():
                return (_scalar(port, "sum(som_decisions_total)") == len(decisions)
                        and _scalar(port, "sum(som_orders_received_total)") == n)

            _wait(counted, 15, "Prometheus to see every decision", data)
            assert _scalar(port, 'sum(som_decisions_total{decision="HOLD"})') == holds >= 1
            by_reason = {r["metric"]["reason"]: float(r["value"][1]) for r in _query(
                port, "sum by (reason) (som_orders_rejected_total) > 0")}
            expected: dict[str, float] = {}
            for r in rejections:
                expected[r["reason"]] = expected.get(r["reason"], 0) + 1
            assert by_reason == expected == {"malformed": 1, "unknown_ndc": 1,
                                             "bad_signature": 1, "duplicate_order": 1}
            assert _scalar(port, "sum(som_decision_latency_seconds_count)") == len(decisions)
            assert _scalar(port, "sum(som_registrants_tracked)") == 5
            p99 = _scalar(port, "histogram_quantile(0.99, sum by (le) "
                                "(som_decision_latency_seconds_bucket))")
            assert p99 is not None and 0 < p99 <= 10
            # the rules load and evaluate against real series without errors
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5) as r:
                groups = json.loads(r.read())["data"]["groups"]
            rules = [rule for g in groups for rule in g["rules"]]
            assert len(rules) == _rule_count()
            _wait(lambda: all(_rule_health(port).values()), 10, "rules evaluated", data)
        finally:
            stop_process(prom, 10)
            log.close()
    assert time.monotonic() - started < 60


def _rule_health(port: int) -> dict[str, bool]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5) as r:
        groups = json.loads(r.read())["data"]["groups"]
    return {rule["name"]: rule.get("health") == "ok" and rule.get("lastError", "") == ""
            for g in groups for rule in g["rules"]}


def _wait(predicate, timeout: float, what: str, data: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.5)
    log = (data / "prometheus.log").read_text(errors="replace")[-2000:]
    pytest.fail(f"timed out waiting for {what}\n{log}")
