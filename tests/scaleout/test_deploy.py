"""deploy/: the Dockerfile and the Kubernetes manifests say what the code really serves and reads.

No container engine here, so the files are parsed, and the image's and the Deployment's own
command lines are run as processes (host, port and data directory swapped for test ones),
then probed on the paths the HEALTHCHECK and the probes name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.processes import UPWELL, free_port, wait_http_ok

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBE = DEPLOY / "kubernetes"
# Read by libraries upwell drives, not by upwell's own code: asyncpg (PG*) and botocore (AWS_*).
LIBRARY_ENV = re.compile(r"^(PG[A-Z]+|AWS_[A-Z_]+)$")


def dockerfile() -> dict[str, list[str]]:
    """Instructions of deploy/Dockerfile (continuation lines joined), by keyword."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.setdefault(keyword.upper(), []).append(rest.strip())
    return found


def manifests() -> dict[str, dict[str, Any]]:
    """The kustomization's resources, by kind."""
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    docs: dict[str, dict[str, Any]] = {}
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((KUBE / name).read_text()):
            docs[doc["kind"]] = doc
    return docs


def env_names_read_by_upwell() -> set[str]:
    names: set[str] = set()
    for path in (REPO / "src" / "upwell").rglob("*.py"):
        names.update(re.findall(r"\"([A-Z][A-Z0-9_]{3,})\"", path.read_text()))
    return names


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def swapped(argv: list[str], port: int, data_dir: Path) -> list[str]:
    """`argv` with its listening address and data directory replaced by test ones."""
    out = list(argv)
    out[out.index("--host") + 1] = "127.0.0.1"
    out[out.index("--port") + 1] = str(port)
    out[out.index("--data-dir") + 1] = str(data_dir)
    return out


@pytest.fixture
def state_env(postgres_dsn: str) -> dict[str, str]:
    """The ConfigMap's settings with the test's database in place of the cluster's."""
    data = dict(manifests()["ConfigMap"]["data"])
    data["UPWELL_STATE"] = postgres_dsn
    data.pop("AWS_ENDPOINT_URL")
    return data


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_image_is_slim_non_root_and_keeps_data_in_a_volume() -> None:
    found = dockerfile()
    assert re.match(r"python:3\.\d+-slim$", found["FROM"][0])
    user = found["USER"][-1]
    assert user not in ("root", "0")
    cmd = json.loads(found["CMD"][-1])
    assert json.loads(found["ENTRYPOINT"][-1]) == ["upwell"]
    assert cmd[0] == "serve"
    assert found["VOLUME"] == [option(cmd, "--data-dir")]
    assert found["EXPOSE"] == [option(cmd, "--port")]
    assert "'.[all]'" in " ".join(found["RUN"])  # PostgreSQL and S3 back ends installed


def test_the_images_command_serves_the_healthcheck(
    tmp_path: Path, state_env: dict[str, str]
) -> None:
    found = dockerfile()
    argv = json.loads(found["ENTRYPOINT"][-1]) + json.loads(found["CMD"][-1])
    port = free_port()
    argv = swapped(argv, port, tmp_path / "data")
    assert argv[0] == "upwell"
    check = found["HEALTHCHECK"][-1].split(" CMD ", 1)[1]
    probe = json.loads(check)
    # The healthcheck asks the image's own port; ask the test's instead.
    probe = [part.replace(":8080/", f":{port}/") for part in probe]
    assert "/healthz" in " ".join(probe)
    assert probe[0] == "python"
    with running([*UPWELL, *argv[1:]], state_env) as proc:
        wait_http_ok(f"http://127.0.0.1:{port}/healthz", proc, timeout=30)
        done = subprocess.run([UPWELL[0], *probe[1:]], capture_output=True, timeout=30)
        assert done.returncode == 0, done.stderr


def test_the_deployment_runs_three_replicas_of_the_image(tmp_path: Path) -> None:
    docs = manifests()
    deployment = docs["Deployment"]
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    argv = container["command"] + container["args"]
    found = dockerfile()
    assert argv == json.loads(found["ENTRYPOINT"][-1]) + json.loads(found["CMD"][-1])
    assert pod["securityContext"]["runAsNonRoot"] is True
    # The probes ask the port the command listens on, on the paths the server answers.
    (port,) = container["ports"]
    assert str(port["containerPort"]) == option(argv, "--port")
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    service = docs["Service"]
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    # The shared volume is the data directory, and every replica can write it.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    data = next(n for n, path in mounts.items() if path == option(argv, "--data-dir"))
    claim = volumes[data]["persistentVolumeClaim"]["claimName"]
    pvc = docs["PersistentVolumeClaim"]
    assert pvc["metadata"]["name"] == claim
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    refs = {next(iter(e.values()))["name"] for e in container["envFrom"]}
    assert refs == {docs["ConfigMap"]["metadata"]["name"], docs["Secret"]["metadata"]["name"]}


def test_every_variable_the_manifests_set_is_one_the_code_reads() -> None:
    docs = manifests()
    read = env_names_read_by_upwell()
    names = set(docs["ConfigMap"]["data"]) | set(docs["Secret"]["stringData"])
    unknown = {n for n in names if n not in read and not LIBRARY_ENV.match(n)}
    assert not unknown, f"the code reads none of {sorted(unknown)}"
    assert {"UPWELL_STATE", "UPWELL_STORAGE"} <= names
    # Credentials are in the Secret only.
    assert not {n for n in docs["ConfigMap"]["data"] if "KEY" in n or "PASSWORD" in n}


def test_the_deployments_command_with_the_configmap_is_ready(
    tmp_path: Path, state_env: dict[str, str]
) -> None:
    container = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    port = free_port()
    argv = swapped(container["command"] + container["args"], port, tmp_path / "data")
    with running([*UPWELL, *argv[1:]], state_env) as proc:
        wait_http_ok(f"http://127.0.0.1:{port}/readyz", proc, timeout=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            assert json.loads(r.read()) == {"status": "ready"}


def test_readiness_fails_while_the_database_is_gone(tmp_path: Path, postgres_dsn: str) -> None:
    """A replica that cannot reach PostgreSQL leaves the Service (503), but stays alive."""
    import asyncio

    import asyncpg

    from tests.support.services import POSTGRES_DSN

    port = free_port()
    argv = ["serve", "--port", str(port), "--data-dir", str(tmp_path), "--state", postgres_dsn]
    with running([*UPWELL, *argv], {}) as proc:
        wait_http_ok(f"http://127.0.0.1:{port}/readyz", proc, timeout=30)

        async def drop() -> None:
            conn = await asyncpg.connect(POSTGRES_DSN)
            try:
                name = postgres_dsn.rsplit("/", 1)[1]
                await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop())
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert refused.value.code == 503
        assert json.loads(refused.value.read())["status"] == "unavailable"
        wait_http_ok(f"http://127.0.0.1:{port}/healthz", proc)
