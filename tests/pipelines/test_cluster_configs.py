"""Every file in cluster/ parses, has its required fields, and agrees with the others and the pipeline."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import ray
import yaml

from swarmcast.ops import __version__
from swarmcast.pipelines.config import load_pipeline_file
from swarmcast.pipelines.stages.hindcast import HindcastConfig

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"


def load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def cluster_spec(doc: dict) -> dict:
    return doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]


def pods(doc: dict) -> list[dict]:
    spec = cluster_spec(doc)
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def env_of(container: dict) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


def hindcast() -> HindcastConfig:
    pipeline, _ = load_pipeline_file(CLUSTER / "hindcast-pipeline.yaml", [])
    (stage,) = pipeline.stages
    assert isinstance(stage, HindcastConfig)
    return stage


def test_the_cluster_pipeline_is_a_valid_hindcast_on_shared_storage():
    pipeline, _ = load_pipeline_file(CLUSTER / "hindcast-pipeline.yaml", [])
    stage = hindcast()
    assert stage.init_times == "latest" and stage.actors.use_gpu
    assert pipeline.shared_storage == ["/data"]
    for p in (stage.data, stage.checkpoints, stage.output):
        assert p.startswith("/data/")


@pytest.mark.parametrize("name", ["kuberay-raycluster.yaml", "kuberay-rayjob-hindcast.yaml"])
def test_kuberay_manifests_are_complete_and_match_the_pipeline(name):
    doc = load(name)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] in ("RayCluster", "RayJob")
    spec = cluster_spec(doc)
    assert spec["rayVersion"] == ray.__version__
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # no actors on the head
    workers = spec["workerGroupSpecs"]
    assert workers and all(w["minReplicas"] <= w["replicas"] <= w["maxReplicas"] for w in workers)
    stage = hindcast()
    gpus = [
        int(c["resources"]["limits"].get("nvidia.com/gpu", 0))
        for w in workers
        for c in w["template"]["spec"]["containers"]
    ]
    assert max(gpus) >= 1, "the pipeline's actors ask for GPUs; a worker group must have them"
    cpus = [int(c["resources"]["limits"]["cpu"]) for w in workers for c in w["template"]["spec"]["containers"]]
    assert min(cpus) >= stage.actors.cpus * max(gpus) // stage.actors.per_gpu
    for c in pods(doc):
        assert c["image"].endswith(f":{__version__}-gpu")
        env = env_of(c)
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]  # the token comes from a Secret
        assert {"name": "data", "mountPath": "/data"} in c["volumeMounts"]
    if doc["kind"] == "RayJob":
        assert "hindcast-pipeline.yaml" in doc["spec"]["entrypoint"] and doc["spec"]["shutdownAfterJobFinishes"]
        assert yaml.safe_load(doc["spec"]["runtimeEnvYAML"])["env_vars"]["SWARMCAST_EXPECTED_VERSION"] == __version__


def test_cronjob_submits_the_pipeline_daily_with_the_token_from_a_secret():
    doc = load("cronjob-hindcast.yaml")
    assert doc["apiVersion"] == "batch/v1" and doc["kind"] == "CronJob"
    spec = doc["spec"]
    fields = spec["schedule"].split()
    assert len(fields) == 5 and spec["concurrencyPolicy"] == "Forbid"
    (container,) = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    cmd = container["command"]
    assert cmd[:2] == ["swarmcast", "submit"] and cmd[2].endswith("hindcast-pipeline.yaml") and "--wait" in cmd
    address = cmd[cmd.index("--address") + 1]
    service = load("kuberay-raycluster.yaml")["metadata"]["name"] + "-head-svc"
    assert address == f"http://{service}:8265"
    assert "secretKeyRef" in env_of(container)["RAY_AUTH_TOKEN"]["valueFrom"]
    assert container["image"] == pods(load("kuberay-raycluster.yaml"))[0]["image"]


def test_cluster_launcher_config_binds_the_dashboard_to_loopback_with_token_auth():
    doc = load("ray-cluster-gpu.yaml")
    for key in ("cluster_name", "provider", "auth", "available_node_types", "head_node_type"):
        assert key in doc
    assert doc["head_node_type"] in doc["available_node_types"]
    gpu_types = [t for t in doc["available_node_types"].values() if t["resources"].get("GPU", 0) >= 1]
    assert gpu_types and all(t["max_workers"] >= t["min_workers"] for t in gpu_types)
    head = " ".join(doc["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "RAY_AUTH_MODE=token" in head
    assert all("RAY_AUTH_MODE=token" in c for c in doc["worker_start_ray_commands"] if "ray start" in c)
    assert doc["docker"]["image"].endswith(f":{__version__}-gpu")


def test_runtime_env_and_local_script():
    env = load("runtime-env.yaml")
    assert env["env_vars"]["SWARMCAST_EXPECTED_VERSION"] == __version__
    script = (CLUSTER / "local-two-node.sh").read_text()
    assert "--dashboard-host=127.0.0.1" in script and "RAY_AUTH_MODE=token" in script
    assert subprocess.run(["bash", "-n", str(CLUSTER / "local-two-node.sh")]).returncode == 0  # parses
    readme = (CLUSTER / "README.md").read_text()
    for f in CLUSTER.iterdir():
        if f.name != "README.md":
            assert f"`{f.name}`" in readme, f"cluster/README.md does not describe {f.name}"
    assert not re.search(
        r"RAY_AUTH_TOKEN\s*[:=]\s*[\"']?[0-9a-f]{16,}", "".join(p.read_text() for p in CLUSTER.iterdir())
    )


def test_the_rayjob_entrypoint_refuses_a_cluster_of_another_version(capsys, monkeypatch):
    """The manifest's SWARMCAST_EXPECTED_VERSION reaches `swarmcast run`'s version guard."""
    from swarmcast.pipelines.cli import main

    doc = load("kuberay-rayjob-hindcast.yaml")
    env = yaml.safe_load(doc["spec"]["runtimeEnvYAML"])["env_vars"]
    argv = doc["spec"]["entrypoint"].split()
    assert argv[:2] == ["swarmcast", "run"]
    other = env["SWARMCAST_EXPECTED_VERSION"] + ".other"
    monkeypatch.setenv("SWARMCAST_EXPECTED_VERSION", other)
    assert main([*argv[1:], "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"this node has swarmcast {__version__}, the submitted job needs {other}" in err


def _mounted(doc: dict) -> list[tuple[dict, list[dict]]]:
    """(pod spec, its containers) of every pod template a manifest holds."""
    if doc["kind"] == "CronJob":
        spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return [(spec, spec["containers"])]
    spec = cluster_spec(doc)
    return [
        (g["template"]["spec"], g["template"]["spec"]["containers"])
        for g in (spec["headGroupSpec"], *spec["workerGroupSpecs"])
    ]


MANIFESTS = ["kuberay-raycluster.yaml", "kuberay-rayjob-hindcast.yaml", "cronjob-hindcast.yaml"]


def test_the_shared_volume_and_the_token_secret_are_the_ones_every_manifest_mounts_and_reads():
    claim, secret = load("shared-volume.yaml"), load("ray-auth-token-secret.yaml")
    assert claim["kind"] == "PersistentVolumeClaim" and "ReadWriteMany" in claim["spec"]["accessModes"]
    assert secret["kind"] == "Secret" and set(secret["stringData"]) == {"token"}
    assert not re.fullmatch(r"[0-9a-f]{16,}", secret["stringData"]["token"])  # a placeholder, never a token
    for name in MANIFESTS:
        for pod, containers in _mounted(load(name)):
            claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
            assert claims == {claim["metadata"]["name"]}, name
            for c in containers:
                ref = env_of(c)["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
                assert ref == {"name": secret["metadata"]["name"], "key": "token"}, name


def test_the_dockerfile_installs_this_repository_as_the_readme_does_and_tags_the_manifests_image():
    text = (CLUSTER / "Dockerfile").read_text()
    root = CLUSTER.parent
    for line in text.splitlines():
        if line.startswith("COPY "):
            *sources, _ = line.split()[1:]
            assert all((root / s).exists() for s in sources), line  # the build context is the repository root
    assert 'pip install ".[s3]"' in text and "swarmcast --version" in text and "USER ray" in text
    assert re.search(r"FROM python:\$\{PYTHON\}-slim", text) and "ARG PYTHON=3.11" in text
    tags = set(re.findall(r"-t (ghcr\.io/\S+)", text))
    assert tags == {f"ghcr.io/swarmcast/swarmcast:{__version__}-{v}" for v in ("gpu", "cpu")}
    images = {c["image"] for name in MANIFESTS for _, cs in _mounted(load(name)) for c in cs}
    assert images <= tags
