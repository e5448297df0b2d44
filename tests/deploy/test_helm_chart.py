"""The Helm chart (deploy/helm/llmdispatcher), rendered with its default values and with every
option flipped, then checked manifest by manifest: probes on /livez and /readyz, ports, secrets
only by reference, the security context, the drain arithmetic, and a config file the gateway
accepts.

``helm`` itself cannot be installed here from the package registries (no PyPI wheel ships the
CLI for Python 3.11; see docs/deploy.md), so ``helm lint``/``helm template`` are not run: the
templates are rendered by tests/deploy/helm_render.py, which implements exactly the subset of
Go templates the chart uses and refuses anything else.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmdispatcher import Config
from tests.deploy.helm_render import Chart

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "llmdispatcher"
DEFAULTS: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())


def flipped() -> dict[str, Any]:
    values = copy.deepcopy(DEFAULTS)
    values["autoscaling"]["enabled"] = False
    values["podDisruptionBudget"]["enabled"] = False
    values["metrics"]["serviceMonitor"]["enabled"] = True
    values["externalRedis"]["enabled"] = False
    values["externalPostgres"]["enabled"] = False
    values["nodeSelector"] = {"pool": "gateways"}
    return values


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {doc["kind"]: doc for doc in docs}
    assert len(found) == len(docs), "one manifest of each kind"
    return found


@pytest.fixture(scope="module")
def default() -> dict[str, dict[str, Any]]:
    return by_kind(Chart(CHART).manifests(DEFAULTS))


def container(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def test_defaults_render_every_object(default: dict[str, dict[str, Any]]) -> None:
    assert set(default) == {
        "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
    }  # fmt: skip
    for doc in default.values():
        assert doc["metadata"]["name"] == "demo-llmdispatcher"
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == "demo"
    assert "replicas" not in default["Deployment"]["spec"]  # the HPA owns the count
    assert default["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 3
    assert default["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


def test_flipped_options_render_their_objects() -> None:
    manifests = by_kind(Chart(CHART).manifests(flipped()))
    assert "HorizontalPodAutoscaler" not in manifests
    assert "PodDisruptionBudget" not in manifests
    monitor = manifests["ServiceMonitor"]["spec"]
    assert monitor["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    assert manifests["Deployment"]["spec"]["replicas"] == 3
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "gateways"}
    names = [e["name"] for e in container(manifests)["env"]]
    assert "LLMDISPATCHER_REDIS_URL" not in names
    config = manifests["ConfigMap"]["data"]["llmdispatcher.yaml"]
    assert "state_url" not in config
    assert "ledger_url" not in config


def test_probes_ports_and_the_drain(default: dict[str, dict[str, Any]]) -> None:
    gateway = container(default)
    assert gateway["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert gateway["startupProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    service = default["Service"]["spec"]
    assert service["ports"][0]["targetPort"] == "http"
    assert service["selector"] == default["Deployment"]["spec"]["selector"]["matchLabels"]
    drain = DEFAULTS["drain"]
    assert gateway["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    pod = default["Deployment"]["spec"]["template"]["spec"]
    total = drain["preStopSeconds"] + drain["drainSeconds"] + drain["shutdownGraceSeconds"]
    assert pod["terminationGracePeriodSeconds"] > total
    # the readiness probe notices a drain well before it ends
    probe = gateway["readinessProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] < drain["drainSeconds"]


def test_secrets_only_by_reference(default: dict[str, dict[str, Any]]) -> None:
    env = container(default)["env"]
    plain = {e["name"]: e["value"] for e in env if "value" in e}
    assert plain == {"LLMDISPATCHER_PORT": "8080"}
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    assert set(refs) == {
        "LLMDISPATCHER_REDIS_URL", "LLMDISPATCHER_POSTGRES_URL", "OPENAI_API_KEY",
        "LLMDISPATCHER_API_KEY",
    }  # fmt: skip
    assert all(set(ref) == {"name", "key"} for ref in refs.values())
    # No kind: Secret is rendered, and no value anywhere looks like a key.
    assert "Secret" not in default
    text = yaml.safe_dump(list(default.values()))
    assert "sk-" not in text


def test_security_context(default: dict[str, dict[str, Any]]) -> None:
    pod = default["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's user
    assert pod["automountServiceAccountToken"] is False
    context = container(default)["securityContext"]
    assert context == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    mounts = {m["mountPath"] for m in container(default)["volumeMounts"]}
    assert mounts == {"/etc/llmdispatcher", "/data", "/tmp"}  # the only writable places


def test_the_config_file_is_one_the_gateway_accepts(
    default: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "llmdispatcher.yaml"
    path.write_text(default["ConfigMap"]["data"]["llmdispatcher.yaml"])
    env = {
        "LLMDISPATCHER_REDIS_URL": "redis://redis:6379/0",
        "LLMDISPATCHER_POSTGRES_URL": "postgresql://u:p@postgres/db",
        "OPENAI_API_KEY": "sk-test",
        "LLMDISPATCHER_API_KEY": "a-gateway-key-0123456789",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = Config.from_file(path)
    assert config.state_url == "redis://redis:6379/0"
    assert config.gateway.host == "0.0.0.0"
    assert config.gateway.port == 8080
    assert config.gateway.drain_s == DEFAULTS["drain"]["drainSeconds"]
    assert config.gateway.shutdown_grace_s == DEFAULTS["drain"]["shutdownGraceSeconds"]
    assert [k.name for k in config.gateway.api_keys] == ["default"]
    assert os.environ["OPENAI_API_KEY"] == "sk-test"


def test_a_config_change_rolls_the_replicas() -> None:
    changed = copy.deepcopy(DEFAULTS)
    changed["config"]["default_vendor"] = "anthropic"
    before = by_kind(Chart(CHART).manifests(DEFAULTS))["Deployment"]
    after = by_kind(Chart(CHART).manifests(changed))["Deployment"]
    annotations = [d["spec"]["template"]["metadata"]["annotations"] for d in (before, after)]
    assert annotations[0]["llmdispatcher/config"] != annotations[1]["llmdispatcher/config"]
