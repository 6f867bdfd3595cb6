"""deploy/: the manifests pass real schema validators and agree with each other and the service.

Docker and a cluster are not available to the tests, so each file is checked by the tool
its consumer would apply: the Kubernetes OpenAPI schemas (kubernetes-validate, strict: an
unknown field is an error), the compose-spec JSON schema (as vendored by check-jsonschema),
``nginx -t``, and PromQL's own parser for the dashboard's queries, whose metrics and labels
must be ones the service really exports on /metrics.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import promql_parser
import pytest
import yaml
from llm_fixtures import (  # noqa: F401
    API_ROUTER,
    api_index_fixture,
    fake_fixture,
    fake_server_fixture,
    make_client_fixture,
)
from prometheus_client.parser import text_string_to_metric_families

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
# The oldest Kubernetes still commonly run with these API versions, and the newest known.
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
SERVICE_PORT = 8000
# Series Prometheus makes itself, not the service.
PROMETHEUS_SERIES = {"up"}
# Labels Prometheus or histograms add to every series of the service.
ADDED_LABELS = {"instance", "job", "le"}
# Exported once SEMROUTE_REDIS_URL's shared state is in; until then its panel stays empty.
AWAITED = {"semroute_shared_state_errors_total"}


def k8s_objects() -> list[dict[str, Any]]:
    text = (DEPLOY / "k8s.yaml").read_text(encoding="utf-8")
    return [doc for doc in yaml.safe_load_all(text) if doc]


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    found = [o for o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"one {kind} named {name} in deploy/k8s.yaml"
    return found[0]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    return loaded


def compose_problems(document: dict[str, Any]) -> list[str]:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


# -- Kubernetes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_kubernetes_object_matches_the_api_schema(version: str) -> None:
    objects = k8s_objects()
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)
    kinds = {obj["kind"] for obj in objects}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds


def test_the_kubernetes_check_refuses_a_misspelt_field() -> None:
    deployment = copy.deepcopy(k8s_object("Deployment", "semroute"))
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_autoscaler_and_disruption_budget_hold_the_service_pods() -> None:
    deployment = k8s_object("Deployment", "semroute")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    autoscaler = k8s_object("HorizontalPodAutoscaler", "semroute")
    budget = k8s_object("PodDisruptionBudget", "semroute")

    target = autoscaler["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "semroute")
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
    assert autoscaler["spec"]["minReplicas"] >= 2
    [metric] = autoscaler["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # CPU utilisation is measured against the request: without one the autoscaler is blind.
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"]["cpu"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert budget["spec"]["minAvailable"] < autoscaler["spec"]["minReplicas"]


def test_replicas_find_redis_through_an_optional_secret() -> None:
    container = k8s_object("Deployment", "semroute")["spec"]["template"]["spec"]["containers"][0]
    [env] = [e for e in container["env"] if e["name"] == "SEMROUTE_REDIS_URL"]
    ref = env["valueFrom"]["secretKeyRef"]
    assert ref["optional"] is True, "without a Redis URL the service keeps state in process"
    redis = k8s_object("Deployment", "semroute-redis")
    service = k8s_object("Service", "semroute-redis")
    redis_labels = redis["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= redis_labels.items()
    assert service["spec"]["ports"][0]["port"] == 6379
    header = (DEPLOY / "k8s.yaml").read_text(encoding="utf-8").split("apiVersion:")[0]
    assert f"--from-literal={ref['key']}='redis://semroute-redis:6379/0'" in header


# -- docker compose -----------------------------------------------------------------------------


def test_the_compose_file_matches_the_compose_spec() -> None:
    assert compose_problems(compose()) == []


def test_the_compose_check_refuses_a_misspelt_key() -> None:
    broken = compose()
    broken["services"]["semroute"]["deploy"] = {"replica": 2}
    assert any("replica" in problem for problem in compose_problems(broken))


def test_compose_runs_two_replicas_behind_nginx_with_redis_prometheus_and_grafana() -> None:
    services = compose()["services"]
    assert {"semroute", "nginx", "redis", "prometheus", "grafana"} <= set(services)
    semroute = services["semroute"]
    assert semroute["deploy"]["replicas"] == 2
    assert "ports" not in semroute, "replicas cannot share a host port; nginx is the way in"
    assert semroute["environment"]["SEMROUTE_REDIS_URL"] == "redis://redis:6379/0"
    assert str(SERVICE_PORT) in semroute["expose"]
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (DEPLOY / source).exists(), f"{source} is mounted but not in deploy/"


def test_prometheus_discovers_each_replica_on_the_service_port() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "semroute"]
    assert job["metrics_path"] == "/metrics"
    [discovery] = job["dns_sd_configs"]
    assert discovery["names"] == ["semroute"] and discovery["type"] == "A"
    assert discovery["port"] == SERVICE_PORT


def test_nginx_accepts_its_configuration(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    assert nginx, "nginx is needed (Debian package nginx; .ci/run installs it)"
    text = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    upstream = f"server semroute:{SERVICE_PORT} "
    assert upstream in text
    # Docker's DNS name does not resolve here; nginx -t resolves upstream names.
    conf = tmp_path / "nginx.conf"
    conf.write_text(text.replace(upstream, f"server 127.0.0.1:{SERVICE_PORT} "), "utf-8")
    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-g", f"pid {tmp_path}/nginx.pid;"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr


# -- Grafana ------------------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (DEPLOY / "grafana" / "dashboards" / "semroute.json").read_text(encoding="utf-8")
    )
    return loaded


def queries() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]


def selectors(expr: str) -> tuple[list[promql_parser.VectorSelector], set[str]]:
    """The series an expression reads, and the labels it groups by or matches on."""
    # Grafana replaces $__rate_interval before the query reaches Prometheus.
    tree = promql_parser.parse(expr.replace("$__rate_interval", "5m"))
    found: list[promql_parser.VectorSelector] = []
    labels: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
            labels.update(m.name for m in node.matchers.matchers)
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            labels.update(node.modifier.labels)

    promql_parser.walk(tree, visit)
    return found, labels


def test_the_dashboard_uses_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text(encoding="utf-8")
    )
    [source] = provisioned["datasources"]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    panels = dashboard()["panels"]
    assert panels and all(p["datasource"]["uid"] == source["uid"] for p in panels)
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/semroute.yaml").read_text(encoding="utf-8")
    )
    mounted = {volume.split(":")[1] for volume in compose()["services"]["grafana"]["volumes"]}
    assert provider["providers"][0]["options"]["path"] in mounted


def test_the_dashboard_aggregates_across_replicas_by_route_and_model() -> None:
    texts = queries()
    assert any("histogram_quantile" in q and "by (route, le)" in q for q in texts)
    assert any("histogram_quantile" in q and "by (model, le)" in q for q in texts)
    for expr in texts:
        series, _ = selectors(expr)
        if any(s.name.startswith("semroute_") and s.name.endswith("_total") for s in series):
            assert "rate(" in expr, f"a counter is shown as a rate: {expr}"
        assert expr.lstrip().startswith(("sum", "histogram_quantile", "count", "max")), (
            f"every query aggregates over replicas: {expr}"
        )


def exported(client: Any) -> dict[str, set[str]]:
    """Every series name /metrics exports (with histogram and counter suffixes) -> its labels."""
    text = client.get("/metrics").text
    series: dict[str, set[str]] = {}
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    for family in text_string_to_metric_families(text):
        labels = {name for sample in family.samples for name in sample.labels}
        for suffix in suffixes.get(family.type, [""]):
            series[family.name + suffix] = labels
    return series


def test_every_dashboard_query_reads_metrics_the_service_exports(make_client: Any) -> None:
    # Generous timeouts: the point is which series exist, not how fast the fake answers.
    client = make_client(router={**API_ROUTER, "completion": {"attempt_timeout_s": 10}})
    for prompt in ("what is 12 times 7", "give me a recipe for vegetarian lasagna"):
        assert client.post("/complete", json={"prompt": prompt}).status_code == 200
    series = exported(client)

    used: set[str] = set()
    for expr in queries():
        selected, labels = selectors(expr)
        for selector in selected:
            name = selector.name
            used.add(name)
            if name in PROMETHEUS_SERIES or (name in AWAITED and name not in series):
                continue
            assert name in series, f"{expr}: /metrics has no {name}"
            known = series[name] | ADDED_LABELS
            if series[name]:  # labels are seen on samples; a family without any says nothing
                assert labels <= known, f"{expr}: {name} has no label {labels - known}"
    families = {name for name in series if name.startswith("semroute_")}
    assert used & families, "the dashboard shows the service's own metrics"
