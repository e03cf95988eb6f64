"""The deployment files under docker/ -- the image, docker compose, Kubernetes and Slurm --
keep their contract, and every `sweep ...` command line in them parses with the real CLI
(so a renamed or misspelt option fails here, not on a GPU cluster). Reads files only: no
Docker engine, no cluster, no TensorFlow; the Slurm script runs with a stand-in `sweep`."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from fnmatch import fnmatch
from functools import cache
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from sweep.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
DOCKERIGNORE = DOCKER / "Dockerfile.dockerignore"
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
INIT_SQL = DOCKER / "postgres-init" / "01-mlflow.sql"
K8S = DOCKER / "k8s"
K8S_FILES = ("secret.yaml", "create-job.yaml", "workers-job.yaml", "mlflow.yaml",
             "proxy.yaml")
SBATCH = DOCKER / "slurm" / "sweep-array.sbatch"

SECRET_NAME = "regsweep-store"
# Environment variables that carry connection URLs (and so passwords).
URL_VARIABLES = ("SWEEP_STORAGE", "MLFLOW_TRACKING_URI", "MLFLOW_BACKEND_STORE_URI")
# Stands in for the real password when compose.yaml is interpolated.
SAMPLE_PASSWORD = "sample-Passw0rd"
K8S_PLACEHOLDER = "CHANGE-ME"


# ------------------------------------------------------------------ reading the files
@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, Any]:
    return compose()["services"]


@cache
def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def sample_values() -> dict[str, str]:
    """.env.example as a user would fill it in."""
    return {**env_example(), "POSTGRES_PASSWORD": SAMPLE_PASSWORD}


@cache
def k8s_docs() -> tuple[tuple[str, dict[str, Any]], ...]:
    return tuple((name, doc) for name in K8S_FILES
                 for doc in yaml.safe_load_all((K8S / name).read_text()) if doc)


def k8s_doc(kind: str, name: str) -> dict[str, Any]:
    found = [doc for _, doc in k8s_docs()
             if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(doc)
    return [*spec.get("initContainers", []), *spec["containers"]]


def workloads() -> list[tuple[str, dict[str, Any]]]:
    return [(f, d) for f, d in k8s_docs() if d["kind"] in ("Job", "Deployment")]


@cache
def dockerfile() -> tuple[tuple[str, str], ...]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return tuple(instructions)


def dockerfile_args(keyword: str) -> list[str]:
    return [rest for kw, rest in dockerfile() if kw == keyword]


# ------------------------------------------------------------------ variables and argv
_REFERENCE = re.compile(
    r"\$\$"                                                         # an escaped dollar
    r"|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"  # ${X}, ${X:-d}, ...
    r"|\$\((?P<k8s>[A-Za-z_]\w*)\)"                                 # Kubernetes' $(X)
    r"|\$(?P<bare>[A-Za-z_]\w*)"                                    # $X
)


def substitute(text: str, values: dict[str, str]) -> str:
    """Shell / compose style interpolation of ``text`` with ``values``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match["name"] or match["k8s"] or match["bare"]
        value = values.get(name)
        op = match["op"] or ""
        unset = value is None or (op.startswith(":") and value == "")
        if op.endswith("-") and unset:
            return match["arg"]
        if op.endswith("+"):
            return "" if unset else match["arg"]
        if value is None:
            raise AssertionError(f"{match.group(0)!r} has no value (missing from the samples)")
        return value

    return _REFERENCE.sub(replace, text)


def variables_in(node: Any) -> Iterator[str]:
    """Names referenced as ${NAME...} or $NAME in every string of a parsed YAML tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from variables_in(key)
            yield from variables_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from variables_in(item)
    elif isinstance(node, str):
        for match in _REFERENCE.finditer(node):
            if match.group(0) != "$$" and not match["k8s"]:
                yield match["name"] or match["bare"]


def as_argv(value: Any) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(item) for item in value]


def image_entrypoint() -> list[str]:
    return json.loads(dockerfile_args("ENTRYPOINT")[-1])


def image_cmd() -> list[str]:
    return json.loads(dockerfile_args("CMD")[-1])


def is_project_image(service: dict[str, Any]) -> bool:
    build = service.get("build")
    if isinstance(build, dict) and str(build.get("dockerfile", "")).endswith("Dockerfile"):
        return True
    return "regsweep" in str(service.get("image", ""))


def compose_argv(service: dict[str, Any]) -> list[str]:
    """The process a compose service runs: its entrypoint and command, image defaults
    filled in from docker/Dockerfile for services built from it."""
    if "entrypoint" in service:
        entrypoint = as_argv(service["entrypoint"])
    elif is_project_image(service):
        entrypoint = image_entrypoint()
    else:
        return as_argv(service.get("command"))
    if "command" in service:
        command = as_argv(service["command"])
    else:
        command = image_cmd() if is_project_image(service) else []
    return [*entrypoint, *command]


def container_argv(container: dict[str, Any]) -> list[str]:
    if "command" in container:
        command = as_argv(container["command"])
    elif "regsweep" in container["image"]:
        command = image_entrypoint()
    else:
        command = []
    return [*command, *as_argv(container.get("args"))]


def sbatch_sweep_lines() -> list[tuple[int, list[str]]]:
    """(line number, argv after `sweep`) of each line of the script that runs `sweep`."""
    found = []
    pending, start = "", 0
    for number, line in enumerate(SBATCH.read_text().splitlines(), start=1):
        if not pending and line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            pending, start = pending + line[:-1], start or number
            continue
        words = shlex.split(pending + line, comments=True)
        if "sweep" in words:
            found.append((start or number, words[words.index("sweep") + 1:]))
        pending, start = "", 0
    return found


SBATCH_SAMPLES = {"STUDY_NAME": "digits", "SWEEP_STORAGE": "postgresql://u:p@db/sweeps",
                  "MLFLOW_TRACKING_URI": "http://mlflow:5000"}


def sweep_invocations() -> list[tuple[str, list[str]]]:
    """Every `sweep` command line in compose, Kubernetes and Slurm: (where, argv without
    the leading `sweep`), with variables replaced by sample values."""
    found: list[tuple[str, list[str]]] = []
    values = sample_values()
    for name, service in services().items():
        argv = compose_argv(service)
        if argv[:1] == ["sweep"]:
            found.append((f"compose:{name}", [substitute(a, values) for a in argv[1:]]))
    for filename, doc in workloads():
        for container in containers(doc):
            argv = container_argv(container)
            if argv[:1] == ["sweep"]:
                found.append((f"k8s:{filename}:{container['name']}", argv[1:]))
    for number, argv in sbatch_sweep_lines():
        args = [substitute(a, SBATCH_SAMPLES) for a in argv if a not in ("$@", "$*")]
        found.append((f"slurm:{SBATCH.name}:{number}", args))
    return found


def parse_sweep(args: list[str]) -> click.Context:
    """Parse ``sweep ARGS`` as the real CLI does, without running it; raises
    click.UsageError (or a subclass) for an unknown command or option, a bad value or a
    missing argument."""
    ctx = cli.make_context("sweep", list(args), resilient_parsing=False)
    name, command, rest = cli.resolve_command(ctx, list(args))
    assert command is not None and name is not None
    return command.make_context(name, rest, parent=ctx)


INVOCATIONS = sweep_invocations()


def study_name_of(study_file: str) -> str:
    return yaml.safe_load((ROOT / "studies" / study_file).read_text())["name"]


# ------------------------------------------------------------------ the CLI contract
def test_every_sweep_command_line_is_found() -> None:
    where = {w for w, _ in INVOCATIONS}
    assert {"compose:create", "compose:worker", "compose:worker-cpu",
            "k8s:create-job.yaml:create", "k8s:workers-job.yaml:worker"} <= where
    assert any(w.startswith("slurm:") for w in where)


@pytest.mark.parametrize(("where", "args"), INVOCATIONS, ids=[w for w, _ in INVOCATIONS])
def test_sweep_command_line_parses_with_the_real_cli(where: str, args: list[str]) -> None:
    ctx = parse_sweep(args)
    assert ctx.command.name in ("create", "worker", "proxy"), where
    if ctx.command.name == "worker":
        assert ctx.params["no_progress"] is True, f"{where}: workers log one line per trial"
        if not where.startswith("slurm:"):
            assert ctx.params["study_name"] == study_name_of(sample_values()["STUDY_FILE"])
    elif ctx.command.name == "proxy":
        assert ctx.params["host"] == "0.0.0.0", f"{where}: workers reach it over the network"
    else:
        path = ctx.params["study_file"]
        assert path.startswith("/studies/"), where
        assert (ROOT / "studies" / path.removeprefix("/studies/")).is_file(), where


def test_the_cli_check_catches_a_misspelt_option() -> None:
    parse_sweep(["worker", "digits", "--no-progress", "--max-trials", "3"])
    for bad in (["worker", "digits", "--no-progres"], ["wroker", "digits"],
                ["worker", "digits", "--max-trials", "zero"], ["create"]):
        with pytest.raises(click.UsageError):
            parse_sweep(bad)


def test_substitute_follows_shell_rules() -> None:
    values = {"A": "x", "E": ""}
    assert substitute("${A}-$A-${B:-d}-${E:-e}-${E-f}-$$A", values) == "x-x-d-e--$A"
    with pytest.raises(AssertionError):
        substitute("${B:?set B}", values)


# ------------------------------------------------------------------ Dockerfile
def test_dockerfile_base_is_the_pinned_tensorflow_gpu_image() -> None:
    froms = dockerfile_args("FROM")
    assert len(froms) == 1
    image = froms[0].split()[0]
    tag = image.rpartition("/")[2].partition(":")[2]
    assert (tag and tag != "latest") or "@sha256:" in image, image
    assert image == "tensorflow/tensorflow:2.21.0-gpu"
    text = DOCKERFILE.read_text()
    assert "cuDNN" in text and "tensorflow[and-cuda]" in text  # the reason for the base


def test_dockerfile_runs_as_a_non_root_user_before_the_entrypoint() -> None:
    keywords = [kw for kw, _ in dockerfile()]
    users = [(i, rest) for i, (kw, rest) in enumerate(dockerfile()) if kw == "USER"]
    assert users, "no USER line"
    entrypoint = keywords.index("ENTRYPOINT")
    last_user = [rest for i, rest in users if i < entrypoint][-1]
    assert last_user.split(":")[0] not in ("root", "0"), last_user
    assert all(rest.split(":")[0] not in ("root", "0") for i, rest in users if i > entrypoint)


def test_dockerfile_entrypoint_workdir_and_spool() -> None:
    assert image_entrypoint() == ["sweep"]
    assert image_cmd() == ["--help"]
    assert dockerfile_args("WORKDIR")[-1] == "/work"
    assert "SWEEP_SPOOL_DIR=/work/sweep-spool" in dockerfile_args("ENV")


def test_dockerfile_installs_dependencies_before_copying_the_package() -> None:
    steps = list(dockerfile())
    copies = [(i, rest) for i, (kw, rest) in enumerate(steps) if kw == "COPY"]
    pyproject = next(i for i, rest in copies if "pyproject.toml" in rest.split())
    package = next(i for i, rest in copies if rest.split()[0].rstrip("/") == "sweep")
    assert pyproject < package
    installs = [i for i, (kw, rest) in enumerate(steps)
                if kw == "RUN" and "pip install --no-cache-dir" in rest]
    assert any(pyproject < i < package for i in installs), "dependencies layer"
    # The image runs GPU workers: MLflow's GPU system metrics need the `gpu` extra.
    assert any("'.[gpu]'" in steps[i][1] for i in installs if pyproject < i < package)
    assert any(i > package for i in installs), "package layer"


def test_dockerfile_fetches_nothing_remote_and_holds_no_secret() -> None:
    for keyword, rest in dockerfile():
        if keyword == "ADD":
            assert not re.search(r"https?://|git@", rest), rest
        if keyword in ("ENV", "ARG"):
            assert not re.search(r"(?i)passw|secret|token|api_?key", rest), rest


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    for required in (".venv", "**/*.db", "mlruns", "mlartifacts", "sweep-spool", ".git",
                     "tests", "bench/results"):
        assert required in patterns, required
    # ... but not what the image is built from.
    for path in ("pyproject.toml", "README.md", "sweep", "sweep/cli/group.py"):
        assert not any(fnmatch(path, p.removeprefix("**/")) for p in patterns), path
    assert (DOCKER / ".dockerignore").is_file()
    assert "cp docker/Dockerfile.dockerignore .dockerignore" in DOCKERFILE.read_text()


# ------------------------------------------------------------------ compose
def depends(service: str) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in services()[service]["depends_on"].items()}


def test_compose_has_the_services() -> None:
    assert {"postgres", "mlflow", "create", "worker", "worker-cpu"} <= set(services())


def test_compose_postgres_is_private_and_healthchecked() -> None:
    postgres = services()["postgres"]
    assert postgres["image"] == "postgres:16"
    assert "ports" not in postgres
    assert "pg_isready" in " ".join(as_argv(postgres["healthcheck"]["test"]))
    assert postgres["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    volumes = postgres["volumes"]
    data = [v for v in volumes if v.endswith(":/var/lib/postgresql/data")]
    assert data and data[0].split(":")[0] in compose()["volumes"], "named data volume"
    init = [v for v in volumes if ":/docker-entrypoint-initdb.d" in v]
    assert init and (DOCKER / init[0].split(":")[0]).resolve() == INIT_SQL.parent
    assert re.search(r"(?i)CREATE DATABASE mlflow\s*;", INIT_SQL.read_text())


def test_compose_only_mlflow_publishes_a_port_and_only_on_loopback() -> None:
    assert [name for name, s in services().items() if "ports" in s] == ["mlflow"]
    for port in services()["mlflow"]["ports"]:
        text = substitute(str(port), sample_values())
        assert text.startswith("127.0.0.1:") and text.endswith(":5000"), port
    assert "${MLFLOW_PORT" in services()["mlflow"]["ports"][0]


def test_compose_mlflow_server() -> None:
    mlflow = services()["mlflow"]
    argv = [substitute(a, sample_values()) for a in compose_argv(mlflow)]
    assert argv[:2] == ["mlflow", "server"]
    options = dict(zip(argv[2::2], argv[3::2], strict=False))
    assert options["--host"] == "0.0.0.0" and options["--port"] == "5000"
    # The store and its password are environment, not command line (`ps` shows that).
    assert "--backend-store-uri" not in options
    environment = {k: substitute(v, sample_values()) for k, v in mlflow["environment"].items()}
    assert environment["MLFLOW_BACKEND_STORE_URI"] == \
        f"postgresql+psycopg://{env_example()['POSTGRES_USER']}@postgres:5432/mlflow"
    assert environment["PGPASSWORD"] == SAMPLE_PASSWORD
    assert options["--artifacts-destination"] == "/mlartifacts"
    assert "mlflow:*" in options["--allowed-hosts"].split(",")  # the workers' Host header
    volumes = [v.split(":") for v in mlflow["volumes"]]
    assert any(target == "/mlartifacts" and source in compose()["volumes"]
               for source, target, *_ in volumes)
    assert "/health" in " ".join(as_argv(mlflow["healthcheck"]["test"]))
    assert depends("mlflow") == {"postgres": "service_healthy"}


def test_compose_create_is_a_one_shot_with_the_studies_read_only() -> None:
    create = services()["create"]
    assert create["restart"] == "no"
    assert depends("create") == {"postgres": "service_healthy", "mlflow": "service_healthy"}
    source, target, mode = create["volumes"][0].split(":")
    assert (DOCKER / source).resolve() == ROOT / "studies" and target == "/studies"
    assert mode == "ro"
    study_file = sample_values()["STUDY_FILE"]
    assert (ROOT / "studies" / study_file).is_file()
    assert study_name_of(study_file) == sample_values()["STUDY_NAME"]


@pytest.mark.parametrize("name", ["worker", "worker-cpu"])
def test_compose_workers_scale_restart_and_wait(name: str) -> None:
    worker = services()[name]
    assert "container_name" not in worker, "--scale needs compose's own names"
    assert worker["restart"] == "on-failure"
    assert depends(name) == {"postgres": "service_healthy", "mlflow": "service_healthy",
                             "create": "service_completed_successfully"}
    environment = {k: substitute(v, sample_values()) for k, v in worker["environment"].items()}
    assert environment["SWEEP_STORAGE"] == (
        f"postgresql://{env_example()['POSTGRES_USER']}@postgres:5432/"
        f"{env_example()['POSTGRES_DB']}")
    assert environment["PGPASSWORD"] == SAMPLE_PASSWORD  # libpq's: in no URL, no argv
    assert environment["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_compose_gpu_worker_reserves_one_nvidia_gpu() -> None:
    worker = services()["worker"]
    assert worker["profiles"] == ["gpu"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


def test_compose_cpu_worker_has_no_gpu_and_its_own_profile() -> None:
    worker = services()["worker-cpu"]
    assert worker["profiles"] == ["cpu"]
    assert "devices" not in worker.get("deploy", {}).get("resources", {}).get("reservations", {})
    assert "gpus" not in worker and "runtime" not in worker
    # Everything the CPU profile needs is always on (no profile).
    for name in ("postgres", "mlflow", "create"):
        assert "profiles" not in services()[name], name


def test_every_compose_variable_is_in_env_example() -> None:
    used = set(variables_in(compose()))
    assert {"POSTGRES_PASSWORD", "STUDY_FILE", "STUDY_NAME", "MLFLOW_PORT"} <= used
    missing = used - set(env_example())
    assert not missing, f"add to docker/.env.example: {sorted(missing)}"


def test_env_example_password_is_a_placeholder() -> None:
    assert env_example()["POSTGRES_PASSWORD"] in ("change-me", "CHANGE-ME")
    ignored = [line.strip() for line in (DOCKER / ".gitignore").read_text().splitlines()]
    assert ".env" in ignored, "docker/.env holds the real password: keep it out of git"


# ------------------------------------------------------------------ no literal password
_PASSWORD_ASSIGNMENT = re.compile(
    r"(?i)(?<![\w.{$-])[\w.-]*passw(?:or)?d[\w.-]*\s*[:=]\s*[\"']?(?P<value>[^\s\"'#]+)")
_URL_PASSWORD = re.compile(r"[a-zA-Z][\w+.-]*://[^:/@\s]*:(?P<password>[^@\s/]*)@")


def test_compose_password_comes_from_env_only() -> None:
    text = COMPOSE.read_text()
    values = [m["value"] for m in _PASSWORD_ASSIGNMENT.finditer(text)]
    assert values, "POSTGRES_PASSWORD is set somewhere"
    assert all(v.startswith("${POSTGRES_PASSWORD") for v in values), values
    # No URL carries a password, even once interpolated: it travels as PGPASSWORD.
    assert not list(_URL_PASSWORD.finditer(substitute(text, sample_values())))
    assert re.findall(r"\$\{POSTGRES_PASSWORD[^}]*\}", text) == re.findall(
        r"\$\{POSTGRES_PASSWORD:\?[^}]+\}", text), "use ${POSTGRES_PASSWORD:?message}"


@pytest.mark.parametrize("filename", K8S_FILES)
def test_k8s_manifests_hold_no_literal_password(filename: str) -> None:
    text = (K8S / filename).read_text()
    assert not _PASSWORD_ASSIGNMENT.search(text)
    for match in _URL_PASSWORD.finditer(text):
        assert match["password"] == K8S_PLACEHOLDER, match.group(0)
        assert filename == "secret.yaml", f"URL with credentials outside the Secret: {match[0]}"


def test_slurm_script_and_dockerfile_hold_no_literal_password() -> None:
    for path in (SBATCH, DOCKERFILE):
        text = path.read_text()
        assert not _PASSWORD_ASSIGNMENT.search(text), path
        for match in _URL_PASSWORD.finditer(text):
            assert re.fullmatch(r"[A-Z][A-Z-]*", match["password"]), match.group(0)


# ------------------------------------------------------------------ Kubernetes
def test_k8s_kinds() -> None:
    kinds = Counter(doc["kind"] for _, doc in k8s_docs())
    assert kinds["Secret"] == 1 and kinds["Job"] == 2
    assert kinds["Deployment"] == 2 and kinds["Service"] == 2  # mlflow, and the gRPC proxy
    # The proxy has no authentication: only the workers may reach it.
    policy = k8s_doc("NetworkPolicy", "regsweep-proxy")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "proxy"
    (rule,) = policy["spec"]["ingress"]
    assert [peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
            for peer in rule["from"]] == ["worker"]
    assert all(doc["metadata"]["name"].startswith("regsweep") for _, doc in k8s_docs())


def test_k8s_secret_holds_placeholders() -> None:
    secret = k8s_doc("Secret", SECRET_NAME)
    data = secret["stringData"]
    assert {"storage-url", "tracking-uri"} <= set(data)
    assert K8S_PLACEHOLDER in data["storage-url"]
    assert "data" not in secret, "plain stringData, so the placeholders are visible"
    assert "replace" in (K8S / "secret.yaml").read_text().lower()


def test_k8s_workers_are_an_indexed_job_with_one_gpu_each() -> None:
    job = k8s_doc("Job", "regsweep-workers")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == 4 and spec["parallelism"] == 4
    assert isinstance(spec["backoffLimit"], int)
    (worker,) = containers(job)
    assert str(worker["resources"]["limits"]["nvidia.com/gpu"]) == "1"
    assert container_argv(worker)[:2] == ["sweep", "worker"]


def test_k8s_create_job_reads_the_study_from_the_configmap() -> None:
    job = k8s_doc("Job", "regsweep-create")
    (container,) = containers(job)
    volumes = {v["name"]: v for v in pod_spec(job)["volumes"]}
    mounts = [m for m in container["volumeMounts"] if m["mountPath"] == "/studies"]
    assert len(mounts) == 1
    assert volumes[mounts[0]["name"]]["configMap"]["name"] == "regsweep-study"
    argv = container_argv(container)
    assert argv[:2] == ["sweep", "create"]
    study_file = argv[2].removeprefix("/studies/")
    worker = containers(k8s_doc("Job", "regsweep-workers"))[0]
    assert container_argv(worker)[2] == study_name_of(study_file)


def test_k8s_every_container_has_requests_and_limits() -> None:
    for filename, doc in workloads():
        for container in containers(doc):
            resources = container.get("resources", {})
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(section, {})), (
                    f"{filename}: {container['name']} lacks resources.{section}")


def test_k8s_connection_urls_come_from_the_secret() -> None:
    keys = set(k8s_doc("Secret", SECRET_NAME)["stringData"])
    for filename, doc in workloads():
        for container in containers(doc):
            env = {e["name"]: e for e in container.get("env", [])}
            argv = container_argv(container)
            if argv[:1] == ["sweep"]:
                # The proxy serves the database only; everything else also tracks runs.
                needed = {"SWEEP_STORAGE"} if argv[1:2] == ["proxy"] else {
                    "SWEEP_STORAGE", "MLFLOW_TRACKING_URI"}
                assert needed <= set(env), filename
            for name, entry in env.items():
                if "value" in entry:
                    assert "://" not in str(entry["value"]), f"{filename}: {name}"
                    assert name not in URL_VARIABLES, f"{filename}: {name}"
                if name in URL_VARIABLES:
                    ref = entry["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == SECRET_NAME and ref["key"] in keys, (filename, name)
            assert "envFrom" not in container
            assert not any("://" in arg and "@" in arg for arg in container_argv(container))


def test_k8s_images_are_pinned_and_pods_run_as_non_root() -> None:
    for filename, doc in workloads():
        assert pod_spec(doc)["securityContext"]["runAsNonRoot"] is True, filename
        for container in containers(doc):
            tag = container["image"].rpartition("/")[2].partition(":")[2]
            assert tag and tag != "latest", f"{filename}: {container['image']}"


def test_k8s_mlflow_server() -> None:
    deployment = k8s_doc("Deployment", "regsweep-mlflow")
    (container,) = containers(deployment)
    argv = container_argv(container)
    assert argv[:2] == ["mlflow", "server"]
    assert "--backend-store-uri" not in argv, "read from MLFLOW_BACKEND_STORE_URI"
    assert argv[argv.index("--artifacts-destination") + 1] == "/mlartifacts"
    service = k8s_doc("Service", "regsweep-mlflow")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    tracking = k8s_doc("Secret", SECRET_NAME)["stringData"]["tracking-uri"]
    assert tracking == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    hosts = argv[argv.index("--allowed-hosts") + 1].split(",")
    assert f"{service['metadata']['name']}:*" in hosts


# ------------------------------------------------------------------ Slurm
def sbatch_directives() -> dict[str, str]:
    directives = {}
    for line in SBATCH.read_text().splitlines():
        if line.startswith("#SBATCH "):
            key, _, value = line.removeprefix("#SBATCH ").strip().partition("=")
            directives[key] = value
    return directives


def test_sbatch_directives() -> None:
    directives = sbatch_directives()
    assert directives["--gres"] == "gpu:1"
    # The signal goes to the worker's job step, before the limit; pre-empted tasks requeue.
    assert directives["--signal"] == "TERM@120" and "--requeue" in directives
    assert re.fullmatch(r"\d+-\d+(%\d+)?", directives["--array"])
    for key in ("--cpus-per-task", "--mem", "--time"):
        assert directives.get(key), key
    assert "%a" in directives["--output"], "one output file per array task"


def test_sbatch_checks_its_environment_then_execs_the_worker() -> None:
    text = SBATCH.read_text()
    exec_at = text.index("exec srun")
    for name in ("SWEEP_STORAGE", "MLFLOW_TRACKING_URI", "STUDY_NAME"):
        check = text.find(f': "${{{name}:?')
        assert 0 <= check < exec_at, f"no `: \"${{{name}:?...}}\"` before the worker starts"
    # Under Slurm as a job step, by hand directly: the same worker command either way.
    step, direct = sbatch_sweep_lines()
    assert step[1] == direct[1] and step[1][:2] == ["worker", "$STUDY_NAME"]


@pytest.fixture
def fake_sweep(tmp_path: Path) -> dict[str, str]:
    """An environment whose `sweep` records its arguments instead of training."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "sweep"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$FAKE_SWEEP_ARGV"\n')
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(tmp_path), "FAKE_SWEEP_ARGV": str(tmp_path / "argv"),
            "SLURM_ARRAY_TASK_ID": "3", **SBATCH_SAMPLES}


def test_sbatch_script_runs_the_worker_with_parseable_arguments(
        fake_sweep: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(SBATCH), "--max-trials", "5"], env=fake_sweep,
                          cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    argv = Path(fake_sweep["FAKE_SWEEP_ARGV"]).read_text().splitlines()
    assert argv == ["worker", "digits", "--no-progress", "--wait", "600", "--max-trials", "5"]
    ctx = parse_sweep(argv)
    assert ctx.params["max_trials"] == 5 and ctx.params["no_progress"] is True


@pytest.mark.parametrize("missing", ["SWEEP_STORAGE", "MLFLOW_TRACKING_URI", "STUDY_NAME"])
def test_sbatch_script_refuses_to_start_without_its_environment(
        fake_sweep: dict[str, str], tmp_path: Path, missing: str) -> None:
    env = {k: v for k, v in fake_sweep.items() if k != missing}
    done = subprocess.run(["bash", str(SBATCH)], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode != 0
    assert f"set {missing}" in done.stderr
    assert not Path(fake_sweep["FAKE_SWEEP_ARGV"]).exists(), "the worker must not start"


def test_minimum_constraints_are_pyprojects_floors() -> None:
    """`make test-min` installs constraints/minimum.txt: it must be pyproject's floors."""
    done = subprocess.run([sys.executable, str(ROOT / "constraints" / "floors.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    pins = dict(line.split("==") for line in (ROOT / "constraints" / "minimum.txt")
                .read_text().splitlines() if line and not line.startswith("#"))
    assert pins["keras"] == "3.14" and pins["optuna"] == "4.9"
    assert pins["psycopg-binary"] == pins["psycopg"] == "3.1.8"
