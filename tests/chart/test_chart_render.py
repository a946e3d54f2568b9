"""The chart lints, renders and installs (client dry-run) for each supported set of values."""

from __future__ import annotations

import base64
import re
from typing import Any

import helm_python
import pytest

from tests.chart.render import CHART_DIR, MONITORING_ON, NAMESPACE, RELEASE, find_object, load_chart, render_chart

pytestmark = pytest.mark.unit

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "monitoring": MONITORING_ON,
    "deployment-mode": {"predictor": {"mode": "deployment"}},
    "external-mlflow": {"mlflow": {"externalUri": "http://mlflow.example.internal:5000"}},
    "cronjobs": {"training": {"cronJob": {"enabled": True}, "drift": {"enabled": True, "currentClaim": "logs"}}},
    "no-autoscaling-no-pdb": {
        "predictor": {"mode": "deployment", "autoscaling": {"enabled": False}, "pdb": {"enabled": False}},
        "ui": {"pdb": {"enabled": False}},
        "mlflow": {"persistence": {"enabled": False}},
    },
}


def kinds(values: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for o in render_chart(values):
        out.setdefault(o["kind"], []).append(o["metadata"]["name"])
    return out


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_lint_strict_has_no_warnings_or_errors(values: dict[str, Any]) -> None:
    report = helm_python.lint(str(CHART_DIR), values, strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_values_pass_the_schema_and_render(values: dict[str, Any]) -> None:
    load_chart().validate_schema(values)
    assert render_chart(values), "nothing rendered"


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_client_dry_run_install_with_memory_driver(values: dict[str, Any]) -> None:
    config = helm_python.Config(storage_driver="memory", namespace=NAMESPACE)
    release = config.install(load_chart(), RELEASE, values, namespace=NAMESPACE, dry_run="client")
    assert release["name"] == RELEASE
    assert "kind: InferenceService" in release["manifest"] or "kind: Deployment" in release["manifest"]
    assert "port-forward svc/churnguard-ui" in release["notes"]


@pytest.mark.parametrize(
    "typo",
    [
        {"predictor": {"mdoe": "deployment"}},
        {"predictor": {"mode": "knative"}},
        {"monitoring": {"podmonitor": {"enabled": True}}},
        {"mlflow": {"persistence": {"sise": "1Gi"}}},
        {"ui": {"service": {"prot": 80}}},
        {"training": {"cronjob": {"enabled": True}}},
        {"predictor": {"resources": {"limits": None}}},  # limits removed
        {"containerSecurityContext": {"readOnlyRootFilesystem": False}},
        {"podSecurityContext": {"runAsUser": 1000}},
        {"unknownTopLevel": True},
    ],
    ids=str,
)
def test_schema_rejects_misspelled_or_unsafe_values(typo: dict[str, Any]) -> None:
    with pytest.raises(helm_python.HelmValuesError):
        load_chart().validate_schema(typo)


def test_defaults_render_kserve_predictor_mlflow_training_ui_and_policies() -> None:
    k = kinds({})
    assert k["InferenceService"] == [RELEASE]
    assert sorted(k["Deployment"]) == ["churnguard-mlflow", "churnguard-ui"]
    assert sorted(k["Service"]) == ["churnguard-mlflow", "churnguard-ui"]
    (job,) = k["Job"]
    assert re.fullmatch(r"churnguard-train-[0-9a-f]{10}", job), job
    assert k["PersistentVolumeClaim"] == ["churnguard-mlflow"]
    assert sorted(k["PodDisruptionBudget"]) == ["churnguard-predictor", "churnguard-ui"]
    assert k["ServiceAccount"] == [RELEASE]
    assert "HorizontalPodAutoscaler" not in k  # KServe makes its own from min/max replicas
    assert k["Secret"] == ["churnguard-feedback"]  # the prediction ids' signing key
    for absent in ("PodMonitor", "PrometheusRule", "CronJob"):
        assert absent not in k


def training_job(values: dict[str, Any]) -> str:
    (job,) = kinds(values)["Job"]
    return job


def test_training_job_is_renamed_only_when_what_it_runs_changes() -> None:
    """`helm upgrade` with unchanged training renders the same Job (nothing retrains); a new image, setting or
    trigger renders a new one (a Job's pod template is immutable)."""
    base = training_job({})
    assert training_job({}) == base
    assert training_job({"predictor": {"replicas": 3}, "ui": {"replicas": 2}}) == base  # not training's business
    assert training_job({"images": {"train": {"tag": "v2"}}}) != base
    assert training_job({"training": {"extraEnv": [{"name": "CHURN_GATE_MIN_F1", "value": "0.8"}]}}) != base
    assert training_job({"training": {"trigger": "2026-12-02"}}) != base
    assert training_job({"training": {"trigger": "2026-12-02"}}) == training_job(
        {"training": {"trigger": "2026-12-02"}}
    )


def test_kserve_deployment_mode_is_a_value_for_older_kserve() -> None:
    values = {"predictor": {"kserve": {"deploymentMode": "RawDeployment"}}}
    isvc = find_object("InferenceService", RELEASE, values)
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    with pytest.raises(helm_python.HelmValuesError):
        load_chart().validate_schema({"predictor": {"kserve": {"deploymentMode": "Serverless"}}})


def test_inference_service_is_standard_mode_with_named_port_scaling_and_probes() -> None:
    isvc = find_object("InferenceService", RELEASE)
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    predictor = isvc["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"], predictor["scaleMetric"]) == (1, 3, "cpu")
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"
    assert container["ports"] == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CHURN_HOST"] == "0.0.0.0"
    assert env["MLFLOW_TRACKING_URI"] == f"http://churnguard-mlflow.{NAMESPACE}.svc:5000"
    assert env["TMPDIR"] == "/tmp"
    assert "CHURN_MODEL_REPOSITORY" not in env  # KServe's unauthenticated load/unload routes: off unless asked for
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    # KServe copies these onto the pods, where the PDB, PodMonitor and NetworkPolicies look for them.
    assert predictor["labels"]["app.kubernetes.io/component"] == "predictor"


def test_inference_log_gets_an_empty_dir_and_its_env_var() -> None:
    isvc = find_object("InferenceService", RELEASE, {"predictor": {"inferenceLog": {"enabled": True}}})
    predictor = isvc["spec"]["predictor"]
    (container,) = predictor["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in predictor["volumes"]}
    assert env["CHURN_INFERENCE_LOG_DIR"] == mounts["inference-log"] == "/var/log/churnguard"
    assert "emptyDir" in volumes["inference-log"]


@pytest.mark.parametrize("mode", ["inferenceservice", "deployment"])
def test_model_repository_routes_only_when_an_operator_turns_them_on(mode: str) -> None:
    values = {"predictor": {"mode": mode, "modelRepositoryRoutes": True}}
    kind = "InferenceService" if mode == "inferenceservice" else "Deployment"
    obj = find_object(kind, RELEASE if kind == "InferenceService" else "predictor", values)
    pod = obj["spec"]["predictor"] if kind == "InferenceService" else obj["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert {"name": "CHURN_MODEL_REPOSITORY", "value": "true"} in container["env"]


@pytest.mark.parametrize("mode", ["inferenceservice", "deployment"])
def test_mlflow_and_grafana_links_reach_the_predictor_only_when_set(mode: str) -> None:
    """/info's links (the UI's Model page shows them): MLflow's UI and the Grafana dashboard, each from its value."""
    kind, name = ("InferenceService", RELEASE) if mode == "inferenceservice" else ("Deployment", "predictor")

    def env(values: dict[str, Any]) -> dict[str, Any]:
        obj = find_object(kind, name, {"predictor": {"mode": mode}, **values})
        pod = obj["spec"]["predictor"] if kind == "InferenceService" else obj["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        return {e["name"]: e.get("value") for e in container["env"]}

    assert not {"CHURN_MLFLOW_UI_URL", "CHURN_GRAFANA_URL"} & set(env({}))
    links = {"mlflow": {"uiUrl": "http://localhost:5000"}, "monitoring": {"dashboard": {"url": "http://g:3000/d/cg"}}}
    got = env(links)
    assert (got["CHURN_MLFLOW_UI_URL"], got["CHURN_GRAFANA_URL"]) == ("http://localhost:5000", "http://g:3000/d/cg")
    with pytest.raises(helm_python.HelmValuesError):
        load_chart().validate_schema({"monitoring": {"dashboard": {"url": "grafana:3000"}}})


def test_deployment_mode_renders_deployment_service_hpa_with_the_kserve_service_shape() -> None:
    values = {"predictor": {"mode": "deployment"}}
    k = kinds(values)
    assert "InferenceService" not in k
    assert "churnguard-predictor" in k["Deployment"]
    service = find_object("Service", "predictor", values)
    assert service["spec"]["ports"] == [{"name": "http1", "port": 80, "targetPort": "http1", "protocol": "TCP"}]
    hpa = find_object("HorizontalPodAutoscaler", "predictor", values)
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "churnguard-predictor",
    }
    (container,) = find_object("Deployment", "predictor", values)["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "kserve-container"
    assert {"name": "CHURN_HOST", "value": "0.0.0.0"} in container["env"]


def test_external_mlflow_renders_no_mlflow_objects_and_points_clients_at_it() -> None:
    uri = "http://mlflow.example.internal:5000"
    values = {"mlflow": {"externalUri": uri}}
    assert not [o for o in render_chart(values) if "mlflow" in o["metadata"]["name"]]
    (container,) = find_object("InferenceService", RELEASE, values)["spec"]["predictor"]["containers"]
    assert {"name": "MLFLOW_TRACKING_URI", "value": uri} in container["env"]
    job = find_object("Job", "train", values)["spec"]["template"]["spec"]
    assert "initContainers" not in job  # nothing in-cluster to wait for
    assert {"name": "MLFLOW_TRACKING_URI", "value": uri} in job["containers"][0]["env"]


def test_mlflow_server_allows_its_service_host_names_and_serves_artifacts_from_the_volume() -> None:
    deployment = find_object("Deployment", "mlflow")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["mlflow", "server"]
    args = dict(a.split("=", 1) if "=" in a else (a, "") for a in container["args"])
    assert args["--backend-store-uri"] == "sqlite:////data/mlflow.db"
    assert args["--artifacts-destination"] == "/data/artifacts"
    assert "--serve-artifacts" in args
    hosts = args["--allowed-hosts"].split(",")
    for host in ("churnguard-mlflow:*", f"churnguard-mlflow.{NAMESPACE}.svc:*", "localhost:*"):
        assert host in hosts
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    claim = deployment["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert claim == find_object("PersistentVolumeClaim", "mlflow")["metadata"]["name"]


def test_training_job_runs_the_pipeline_after_mlflow_is_up() -> None:
    pod = find_object("Job", "train")["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert [c["name"] for c in pod["initContainers"]] == ["wait-for-mlflow"]
    (container,) = pod["containers"]
    assert container["args"] == ["run"]
    assert container["image"] == "churnguard-train:0.1.0"


def test_cronjobs_retrain_and_report_drift_on_schedule() -> None:
    values = VALUE_SETS["cronjobs"]
    retrain = find_object("CronJob", "retrain", values)
    drift = find_object("CronJob", "drift", values)
    assert retrain["spec"]["schedule"] == "0 3 * * 0"
    retrain_pod = retrain["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert retrain_pod["containers"][0]["args"] == ["run"]
    drift_pod = drift["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert drift_pod["containers"][0]["args"] == [
        "drift", "--reference", "champion", "--current", "/app/data/raw/churn.csv"
    ]  # fmt: skip
    assert {"name": "current", "persistentVolumeClaim": {"claimName": "logs", "readOnly": True}} in drift_pod["volumes"]


def test_monitoring_objects_carry_the_extra_labels_and_scrape_the_named_port() -> None:
    monitor = find_object("PodMonitor", "predictor", MONITORING_ON)
    rule = find_object("PrometheusRule", RELEASE, MONITORING_ON)
    dashboard = find_object("ConfigMap", "dashboard", MONITORING_ON)
    for obj in (monitor, rule, dashboard):
        assert obj["metadata"]["labels"]["release"] == "kps"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "http1", "path": "/metrics", "interval": "30s"}]
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "predictor"


def test_per_object_monitoring_labels_are_added() -> None:
    values = {"monitoring": {"podMonitor": {"enabled": True, "labels": {"team": "ml"}}}}
    assert find_object("PodMonitor", "predictor", values)["metadata"]["labels"]["team"] == "ml"


def test_helm_test_pod_calls_v1_predict_through_the_ui_service() -> None:
    pod = find_object("Pod", "test-predict")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["UI_URL"] == f"http://churnguard-ui.{NAMESPACE}.svc:80"
    script = container["args"][0]
    assert "{base}/v1/models/{model}:predict" in script
    compile(script, "helm-test", "exec")  # the embedded Python is at least valid Python


def test_no_literal_password_anywhere_and_the_only_secret_is_a_random_feedback_key() -> None:
    keys = set()
    for values in VALUE_SETS.values():
        for obj in render_chart(values):
            if obj["kind"] == "Secret":
                assert obj["metadata"]["name"] == "churnguard-feedback" and obj["type"] == "Opaque"
                (value,) = obj["data"].values()
                key = base64.b64decode(value).decode()
                assert re.fullmatch(r"[A-Za-z0-9]{48}", key)
                keys.add(key)
            text = str(obj).lower()
            assert "password" not in text, obj["metadata"]["name"]
    assert len(keys) > 1  # drawn at install, never a fixed default


def test_the_predictor_reads_the_feedback_key_from_a_mounted_secret_or_the_users() -> None:
    for values, secret in (
        ({}, "churnguard-feedback"),
        ({"predictor": {"feedback": {"existingSecret": "ours", "secretKey": "k"}}}, "ours"),
    ):
        pod = find_object("InferenceService", RELEASE, values)["spec"]["predictor"]
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["CHURN_FEEDBACK_KEY_FILE"] == "/etc/churnguard/feedback/key" and "CHURN_FEEDBACK_KEY" not in env
        mount = next(m for m in container["volumeMounts"] if m["name"] == "feedback-key")
        assert mount == {"name": "feedback-key", "mountPath": "/etc/churnguard/feedback", "readOnly": True}
        volume = next(v for v in pod["volumes"] if v["name"] == "feedback-key")
        assert volume["secret"]["secretName"] == secret
        assert volume["secret"]["items"] == [
            {"key": values.get("predictor", {}).get("feedback", {}).get("secretKey", "feedback-key"), "path": "key"}
        ]
    assert "Secret" not in kinds({"predictor": {"feedback": {"existingSecret": "ours"}}})


def test_fullname_override_and_long_release_names_stay_within_limits() -> None:
    long_name = "a-very-long-release-name-for-churnguard-tests-x"
    for obj in render_chart({}, name=long_name):
        assert len(obj["metadata"]["name"]) <= 63
    assert find_object("InferenceService", "cg", {"fullnameOverride": "cg"})["metadata"]["name"] == "cg"


def test_install_refuses_values_the_schema_rejects() -> None:
    config = helm_python.Config(storage_driver="memory", namespace=NAMESPACE)
    with pytest.raises(helm_python.HelmReleaseError, match="limits"):
        config.install(load_chart(), RELEASE, {"ui": {"resources": {"limits": None}}}, dry_run="client")
