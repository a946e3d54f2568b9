"""Rendered Kubernetes objects run as Docker containers, mechanically: nothing is re-typed from the templates.

Every field of a pod spec that the chart uses maps to a `docker run` option the way the kubelet applies it;
a field this module does not know raises `UnsupportedError`, so a new template feature cannot be silently ignored.

- securityContext (pod, then container): runAsUser/runAsGroup -> --user, fsGroup and supplementalGroups ->
  --group-add, runAsNonRoot is enforced like the kubelet does, readOnlyRootFilesystem -> --read-only,
  allowPrivilegeEscalation: false -> no-new-privileges, capabilities -> --cap-drop/--cap-add, privileged,
  seccompProfile RuntimeDefault -> Docker's default profile.
- resources: limits -> --memory (no swap) and --cpus; requests -> --memory-reservation and --cpu-shares.
- volumes: emptyDir -> a tmpfs of its sizeLimit; configMap -> a read-only folder of its keys (items honoured);
  secret -> the same from the rendered Secret, files root:fsGroup with its defaultMode, as the kubelet makes them;
  persistentVolumeClaim -> a host folder per claim, owned by the pod's UID and fsGroup.
- env (value, fieldRef metadata.name/namespace), command/args with Kubernetes' entrypoint semantics,
  workingDir, init containers run to completion first, then the containers.
- Services: each rendered Service (and the `<isvc>-predictor` Service KServe creates in Standard mode) is a
  forwarder container whose network aliases are the Service's DNS names, forwarding port -> targetPort of the
  pod it selects, so the chart's URLs resolve and connect as in a cluster.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DOCKER = shutil.which("/usr/bin/docker") or shutil.which("docker") or "docker"
LABEL = "churnguard.test=containers"
FORWARD_PY = Path(__file__).with_name("forward.py")

# InferenceService predictor fields that KServe consumes itself; the rest of spec.predictor is a PodSpec.
KSERVE_COMPONENT_FIELDS = {
    "minReplicas", "maxReplicas", "scaleMetric", "scaleMetricType", "scaleTarget", "labels", "annotations",
    "containerConcurrency", "timeout", "canaryTrafficPercent", "batcher", "logger", "deploymentStrategy",
}  # fmt: skip
POD_FIELDS = {
    "containers", "initContainers", "volumes", "securityContext", "serviceAccountName", "automountServiceAccountToken",
    "restartPolicy", "imagePullSecrets", "nodeSelector", "tolerations", "affinity", "topologySpreadConstraints",
    "terminationGracePeriodSeconds", "enableServiceLinks", "priorityClassName",
}  # fmt: skip
CONTAINER_FIELDS = {
    "name", "image", "imagePullPolicy", "command", "args", "env", "ports", "readinessProbe", "livenessProbe",
    "startupProbe", "securityContext", "resources", "volumeMounts", "workingDir",
}  # fmt: skip


class UnsupportedError(Exception):
    """A field of the rendered spec that this translation does not implement."""


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} ... failed ({result.returncode}): {result.stderr.strip()}")
    return result


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity ("512Mi", "1", "250m", "1Gi") as a number (bytes or cores)."""
    text = str(value)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", text)
    if not match or (match.group(2) and match.group(2) not in units):
        raise UnsupportedError(f"quantity {text!r}")
    return float(match.group(1)) * units.get(match.group(2), 1)


@dataclass
class Pod:
    name: str
    kind: str
    spec: dict[str, Any]
    labels: dict[str, str]

    def container(self, name: str | None = None) -> dict[str, Any]:
        containers = self.spec["containers"]
        return next(c for c in containers if c["name"] == name) if name else containers[0]

    def port(self, container: dict[str, Any], port: int | str) -> int:
        """A port number, or a named port of the container, as a number."""
        if isinstance(port, int):
            return port
        return int(next(p["containerPort"] for p in container.get("ports", []) if p.get("name") == port))


@dataclass
class Service:
    name: str
    selector: dict[str, str]
    ports: list[dict[str, Any]]


def pods_of(manifests: list[dict[str, Any]]) -> dict[str, Pod]:
    """Every pod the manifests make, by the name its pods get a prefix of (Deployment, Job, InferenceService, Pod)."""
    pods: dict[str, Pod] = {}
    for obj in manifests:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind in ("Deployment", "Job"):
            template = obj["spec"]["template"]
            pods[name] = Pod(name, kind, template["spec"], template["metadata"].get("labels", {}))
        elif kind == "Pod":
            pods[name] = Pod(name, kind, obj["spec"], obj["metadata"].get("labels", {}))
        elif kind == "InferenceService":
            # What KServe's Standard mode makes of spec.predictor (read in KServe's source, v0.17 to v0.20): a
            # Deployment <isvc>-predictor whose pods get INFERENCE_SERVICE_NAME in every container and KServe's
            # labels on top of spec.predictor.labels; no arguments, ports or probes are added when they are set.
            predictor = copy.deepcopy(obj["spec"]["predictor"])
            spec = {k: v for k, v in predictor.items() if k not in KSERVE_COMPONENT_FIELDS}
            for container in spec["containers"]:
                container["env"] = [*container.get("env", []), {"name": "INFERENCE_SERVICE_NAME", "value": name}]
            labels = {
                **predictor.get("labels", {}),
                "serving.kserve.io/inferenceservice": name,
                "component": "predictor",
                "app": f"isvc.{name}-predictor",
            }
            pods[f"{name}-predictor"] = Pod(f"{name}-predictor", kind, spec, labels)
    return pods


def services_of(manifests: list[dict[str, Any]]) -> list[Service]:
    """The rendered Services, plus the one KServe creates for each InferenceService in Standard mode: named
    <isvc>-predictor, port 80 to the predictor container's first port, selecting the predictor's pods."""
    services = [
        Service(o["metadata"]["name"], o["spec"]["selector"], o["spec"]["ports"])
        for o in manifests
        if o["kind"] == "Service"
    ]
    for obj in manifests:
        if obj["kind"] == "InferenceService":
            predictor = obj["spec"]["predictor"]
            first = predictor["containers"][0]["ports"][0]
            services.append(
                Service(
                    f"{obj['metadata']['name']}-predictor",
                    predictor.get("labels", {}),
                    [{"name": first.get("name"), "port": 80, "targetPort": first["containerPort"]}],
                )
            )
    return services


def pod_address(pod: Pod) -> str:
    """The pod's own network alias, what its Services forward to. Not its bare name: a Service often has the
    same name as the Deployment behind it, and pods have no DNS name of their own in a cluster (Docker makes a
    container's hostname an alias too, so the hostname is "<pod>-pod")."""
    return f"{pod.name}.pod"


def dns_names(service: str, namespace: str) -> list[str]:
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]


def _security(pod: Pod, container: dict[str, Any]) -> list[str]:
    pod_ctx = pod.spec.get("securityContext", {})
    ctx = {**pod_ctx, **container.get("securityContext", {})}
    known = {
        "runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "supplementalGroups", "seccompProfile",
        "readOnlyRootFilesystem", "allowPrivilegeEscalation", "privileged", "capabilities", "fsGroupChangePolicy",
    }  # fmt: skip
    if unknown := set(ctx) - known:
        raise UnsupportedError(f"securityContext fields {sorted(unknown)}")
    args: list[str] = []
    uid = ctx.get("runAsUser")
    if uid is None:
        user = docker("image", "inspect", "-f", "{{.Config.User}}", container["image"]).stdout.strip()
        uid = int(user.split(":")[0]) if user.split(":")[0].isdigit() else (0 if not user else None)
    if ctx.get("runAsNonRoot") and uid in (0, None):
        raise RuntimeError(f"{container['name']}: runAsNonRoot, but the image runs as root or a non-numeric user")
    if ctx.get("runAsUser") is not None:
        args += ["--user", f"{ctx['runAsUser']}:{ctx.get('runAsGroup', 0)}"]
    for gid in [pod_ctx.get("fsGroup"), *pod_ctx.get("supplementalGroups", [])]:
        if gid is not None:
            args += ["--group-add", str(gid)]
    if ctx.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    if ctx.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges:true"]
    if ctx.get("privileged"):
        args.append("--privileged")
    caps = ctx.get("capabilities", {})
    args += [a for cap in caps.get("drop", []) for a in ("--cap-drop", cap)]
    args += [a for cap in caps.get("add", []) for a in ("--cap-add", cap)]
    seccomp = ctx.get("seccompProfile", {}).get("type", "RuntimeDefault")
    if seccomp == "Unconfined":
        args += ["--security-opt", "seccomp=unconfined"]
    elif seccomp != "RuntimeDefault":
        raise UnsupportedError(f"seccompProfile {seccomp}")
    return args


def _resources(container: dict[str, Any]) -> list[str]:
    res = container.get("resources", {})
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    args: list[str] = []
    if "memory" in limits:
        mem = str(int(quantity(limits["memory"])))
        args += ["--memory", mem, "--memory-swap", mem]
    if "cpu" in limits:
        args += ["--cpus", f"{quantity(limits['cpu']):g}"]
    if "memory" in requests:
        args += ["--memory-reservation", str(int(quantity(requests["memory"])))]
    if "cpu" in requests:
        args += ["--cpu-shares", str(max(2, int(quantity(requests["cpu"]) * 1024)))]
    return args


def _env(pod: Pod, container: dict[str, Any], namespace: str) -> list[str]:
    if "envFrom" in container:
        raise UnsupportedError("envFrom")
    args: list[str] = []
    for var in container.get("env", []):
        if "value" in var:
            value = str(var["value"])
        elif path := var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath"):
            fields = {"metadata.name": pod.name, "metadata.namespace": namespace}
            if path not in fields:
                raise UnsupportedError(f"env fieldRef {path}")
            value = fields[path]
        else:
            raise UnsupportedError(f"env {var['name']}: {var}")
        args += ["--env", f"{var['name']}={value}"]
    return args


def _command(container: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(docker run options, trailing arguments) for Kubernetes' command/args semantics: command replaces the
    image's ENTRYPOINT (and its CMD), args replace CMD."""
    command, args = container.get("command"), container.get("args")
    if command:
        return ["--entrypoint", command[0]], [*command[1:], *(args or [])]
    return [], list(args or [])


class Cluster:
    """One private Docker network standing in for a namespace; runs pods and Services of rendered manifests."""

    def __init__(
        self,
        manifests: list[dict[str, Any]],
        *,
        namespace: str,
        workdir: Path,
        forward_image: str,
        deferred_services: frozenset[str] = frozenset(),
    ) -> None:
        self.manifests = manifests
        self.deferred_services = deferred_services  # started later, by start_service (KServe creates its own late)
        self.namespace = namespace
        self.workdir = workdir
        self.forward_image = forward_image
        self.pods = pods_of(manifests)
        self.network = f"churnguard-test-{os.getpid()}"
        self.containers: list[str] = []  # every container started, for logs, memory and cleanup
        self.memory = MemorySampler()

    # --- lifecycle
    def __enter__(self) -> Cluster:
        docker("network", "create", "--label", LABEL, self.network)
        self.memory.start()
        for service in services_of(self.manifests):
            if service.name not in self.deferred_services:
                self._start_service(service)
        return self

    def __exit__(self, *_: object) -> None:
        self.memory.stop()
        for name in self.containers:
            docker("rm", "-f", "-v", name, check=False)
        docker("network", "rm", self.network, check=False)

    # --- objects
    def configmap(self, name: str) -> dict[str, Any]:
        return next(o for o in self.manifests if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name)

    def _volume_dir(self, pod: Pod, volume: dict[str, Any]) -> Path:
        """A host folder holding a configMap or secret volume's files or a claim's data."""
        if "secret" in volume:
            import base64

            spec = volume["secret"]
            secret = next(
                o for o in self.manifests if o["kind"] == "Secret" and o["metadata"]["name"] == spec["secretName"]
            )
            contents = {k: base64.b64decode(v) for k, v in secret.get("data", {}).items()}
            items = spec.get("items") or [{"key": k, "path": k} for k in contents]
            folder = self.workdir / "volumes" / pod.name / volume["name"]
            group = pod.spec.get("securityContext", {}).get("fsGroup", 0)
            for item in items:
                target = folder / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(contents[item["key"]])
                os.chown(target, 0, group)
                target.chmod(item.get("mode", spec.get("defaultMode", 0o644)))
            for d in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
                d.chmod(0o755)
            return folder
        if "configMap" in volume:
            import base64

            cm = self.configmap(volume["configMap"]["name"])
            contents = {k: str(v).encode() for k, v in cm.get("data", {}).items()}
            contents |= {k: base64.b64decode(v) for k, v in cm.get("binaryData", {}).items()}
            items = volume["configMap"].get("items") or [{"key": k, "path": k} for k in contents]
            folder: Path = self.workdir / "volumes" / pod.name / volume["name"]
            for item in items:
                target = folder / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(contents[item["key"]])
                target.chmod(0o644)
            for d in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
                d.chmod(0o755)
            return folder
        if "persistentVolumeClaim" in volume:
            folder = self.workdir / "claims" / str(volume["persistentVolumeClaim"]["claimName"])
            ctx = pod.spec.get("securityContext", {})
            if not folder.exists():
                folder.mkdir(parents=True)
                os.chown(folder, ctx.get("runAsUser", 0), ctx.get("fsGroup", ctx.get("runAsGroup", 0)))
                folder.chmod(0o2770 if "fsGroup" in ctx else 0o700)
            return folder
        raise UnsupportedError(f"volume {volume['name']}: {sorted(set(volume) - {'name'})}")

    def _mounts(self, pod: Pod, container: dict[str, Any]) -> list[str]:
        volumes = {v["name"]: v for v in pod.spec.get("volumes", [])}
        users = [m["name"] for c in pod.spec["containers"] + pod.spec.get("initContainers", []) for m in
                 c.get("volumeMounts", [])]  # fmt: skip
        args: list[str] = []
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if set(mount) - {"name", "mountPath", "readOnly"}:
                raise UnsupportedError(f"volumeMount fields {sorted(set(mount))}")
            if "emptyDir" in volume:
                if users.count(mount["name"]) > 1:
                    raise UnsupportedError(f"emptyDir {mount['name']} shared by several containers")
                opts = [f"destination={mount['mountPath']}", "tmpfs-mode=1777"]
                if size := volume["emptyDir"].get("sizeLimit"):
                    opts.append(f"tmpfs-size={int(quantity(size))}")
                args += ["--mount", ",".join(["type=tmpfs", *opts])]
                continue
            read_only = mount.get("readOnly", False) or "configMap" in volume or "secret" in volume
            source = self._volume_dir(pod, volume)
            args += [
                "--mount",
                f"type=bind,source={source},destination={mount['mountPath']}" + (",readonly" * read_only),
            ]
        return args

    # --- running
    def container_name(self, pod: Pod, container: dict[str, Any]) -> str:
        return f"{self.network}-{pod.name}-{container['name']}"

    def run_container(self, pod: Pod, container: dict[str, Any], *, aliases: list[str]) -> str:
        if unknown := set(container) - CONTAINER_FIELDS:
            raise UnsupportedError(f"container fields {sorted(unknown)}")
        if unknown := set(pod.spec) - POD_FIELDS:
            raise UnsupportedError(f"pod fields {sorted(unknown)}")
        name = self.container_name(pod, container)
        docker("rm", "-f", name, check=False)
        entrypoint, trailing = _command(container)
        options = [
            "--detach", "--name", name, "--label", LABEL, "--network", self.network, "--hostname", f"{pod.name[:59]}-pod",
            *(a for alias in aliases for a in ("--network-alias", alias)),
            *_security(pod, container), *_resources(container), *_env(pod, container, self.namespace),
            *self._mounts(pod, container), *entrypoint,
            *(["--workdir", container["workingDir"]] if "workingDir" in container else []),
        ]  # fmt: skip
        docker("run", *options, container["image"], *trailing)
        if name not in self.containers:
            self.containers.append(name)
        self.memory.watch(name)
        return name

    def start_pod(self, pod_name: str) -> PodRun:
        """Init containers one after another (each must exit 0), then the containers, in a background thread,
        as the kubelet does."""
        run = PodRun(self, self.pods[pod_name])
        run.start()
        return run

    def start_service(self, name: str, generation: int = 0) -> str:
        """Create the Service `name`; a later generation is a second copy (another address, the same DNS names),
        for a Service deleted and created again. Returns its container's name."""
        (service,) = [s for s in services_of(self.manifests) if s.name == name]
        return self._start_service(service, generation)

    def _start_service(self, service: Service, generation: int = 0) -> str:
        targets = [p for p in self.pods.values() if service.selector.items() <= p.labels.items()]
        if len(targets) != 1:
            raise UnsupportedError(f"Service {service.name} selects {len(targets)} pods")
        pod = targets[0]
        rules = [f"{p['port']}={pod_address(pod)}:{pod.port(pod.container(), p.get('targetPort', p['port']))}"
                 for p in service.ports]  # fmt: skip
        name = f"{self.network}-svc-{service.name}" + (f"-{generation}" if generation else "")
        docker("rm", "-f", name, check=False)
        docker(
            "run", "--detach", "--name", name, "--label", LABEL, "--network", self.network,
            *(a for alias in dns_names(service.name, self.namespace) for a in ("--network-alias", alias)),
            "--user", "65534:65534", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
            "--mount", f"type=bind,source={FORWARD_PY},destination=/forward.py,readonly",
            "--entrypoint", "python", self.forward_image, "/forward.py", *rules,
        )  # fmt: skip
        if name not in self.containers:
            self.containers.append(name)
        return name

    def remove(self, name: str) -> None:
        docker("rm", "-f", "-v", name)
        self.containers.remove(name)

    # --- inspection
    def inspect(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(docker("inspect", name).stdout)[0]
        return result

    def ip(self, name: str) -> str:
        return str(self.inspect(name)["NetworkSettings"]["Networks"][self.network]["IPAddress"])

    def logs(self, name: str) -> str:
        result = docker("logs", name, check=False)
        return result.stdout + result.stderr

    def exec(self, name: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return docker("exec", name, *cmd, check=False, timeout=60)

    def wait_exit(self, name: str, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.inspect(name)["State"]
            if state["Status"] == "exited":
                return int(state["ExitCode"])
            time.sleep(0.5)
        raise TimeoutError(f"{name} still running after {timeout:.0f} s\n{self.logs(name)[-3000:]}")


@dataclass
class PodRun:
    cluster: Cluster
    pod: Pod
    names: dict[str, str] = field(default_factory=dict)  # container name in the spec -> docker container
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"pod-{self.pod.name}", daemon=True).start()

    def _run(self) -> None:
        try:
            for init in self.pod.spec.get("initContainers", []):
                name = self.cluster.run_container(self.pod, init, aliases=[])
                self.names[init["name"]] = name
                code = self.cluster.wait_exit(name, timeout=900)
                if code != 0:
                    self.error = f"init container {init['name']} exited {code}"
                    return
            for container in self.pod.spec["containers"]:
                self.names[container["name"]] = self.cluster.run_container(
                    self.pod, container, aliases=[pod_address(self.pod)]
                )
        except Exception as exc:  # reported by wait_started
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.done.set()

    def wait_started(self, timeout: float = 900) -> None:
        """Until every container is started (init containers finished with 0); raises on a failed init."""
        if not self.done.wait(timeout):
            raise TimeoutError(f"pod {self.pod.name} not started after {timeout:.0f} s")
        if self.error:
            logs = "\n".join(f"--- {n}\n{self.cluster.logs(c)[-2000:]}" for n, c in self.names.items())
            raise RuntimeError(f"pod {self.pod.name}: {self.error}\n{logs}")

    def running(self, container: str) -> str:
        """The docker name of a container once it runs (init containers included)."""
        deadline = time.monotonic() + 120
        while container not in self.names:
            if self.done.is_set() or time.monotonic() > deadline:
                raise RuntimeError(f"container {container} of {self.pod.name} never started: {self.error}")
            time.sleep(0.1)
        return self.names[container]


class MemorySampler:
    """Peak memory of each watched container, read from its cgroup every 0.25 s while it runs (cgroup v1:
    memory.max_usage_in_bytes and the largest total_rss seen; v2: memory.peak and anon)."""

    def __init__(self) -> None:
        self.peak: dict[str, int] = {}
        self.peak_rss: dict[str, int] = {}
        self.limit: dict[str, int] = {}
        self._ids: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def watch(self, name: str) -> None:
        info = json.loads(docker("inspect", name).stdout)[0]
        self._ids[name] = info["Id"]
        self.limit[name] = int(info["HostConfig"]["Memory"])

    @staticmethod
    def _read(container_id: str) -> tuple[int, int] | None:
        v1 = Path(f"/sys/fs/cgroup/memory/docker/{container_id}")
        v2 = Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope")
        try:
            if v1.exists():
                stat = dict(line.split() for line in (v1 / "memory.stat").read_text().splitlines())
                return int((v1 / "memory.max_usage_in_bytes").read_text()), int(stat["total_rss"])
            if v2.exists():
                stat = dict(line.split() for line in (v2 / "memory.stat").read_text().splitlines())
                return int((v2 / "memory.peak").read_text()), int(stat["anon"])
        except (OSError, KeyError, ValueError):
            return None  # the container ended between the check and the read
        return None

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            for name, cid in list(self._ids.items()):
                read = self._read(cid)
                if read:
                    self.peak[name] = max(self.peak.get(name, 0), read[0])
                    self.peak_rss[name] = max(self.peak_rss.get(name, 0), read[1])
