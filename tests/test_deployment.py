"""The Docker deployment, checked without a Docker engine: compose file against the compose
specification's JSON schema, secrets, published ports, the image, Dagster's instance config.

tests/data/compose-spec.json is the compose-spec JSON schema (`compose/config/compose_spec.json`)
as shipped in the docker-compose 1.29.2 wheel on PyPI; vendored so the test needs no network.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from energy_assets.partitions import MONTH_RUN_TAG
from energy_assets.settings import REPO_ROOT
from energy_assets.warehouse.postgres import SERVER_OPTIONS

DOCKER = REPO_ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}; not the escaped $${VAR}.
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
SECRET = re.compile(r"PASSWORD|SECRET|TOKEN", re.IGNORECASE)


def with_defaults(text: str) -> str:
    """Compose's interpolation with an empty environment: defaults apply, the rest is 'unset'."""
    return INTERPOLATION.sub(
        lambda m: m.group(3) if m.group(2) in (":-", "-") else "unset", str(text)
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_follows_the_compose_specification(compose):
    schema = json.loads(SCHEMA.read_text())
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(compose)
    ]
    assert errors == []
    assert set(compose["services"]) >= {"postgres", "code", "webserver", "daemon"}
    postgres = compose["services"]["postgres"]["image"]
    assert re.fullmatch(r"postgres:\d+\.\d+(-\w+)?", postgres), "pin the official image's version"


def test_deployed_postgres_is_tuned_like_the_embedded_one(compose):
    command = compose["services"]["postgres"]["command"]
    assert command[0] == "postgres" and " ".join(command[1:]) == SERVER_OPTIONS


def test_no_secret_has_a_default_or_a_literal_value(compose):
    text = COMPOSE.read_text()
    secrets = [m for m in INTERPOLATION.finditer(text) if SECRET.search(m.group(1))]
    assert secrets, "the database password comes from the environment"
    for match in secrets:
        assert match.group(2) in (":?", "?"), f"{match.group(0)}: a secret must be required"
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        for key, value in environment.items():
            if SECRET.search(key):
                assert INTERPOLATION.fullmatch(str(value)), f"{name}.{key} is not from the env"
            for url in re.findall(r"postgres(?:ql)?://[^\s]+", str(value)):
                credentials = url.split("://", 1)[1].rpartition("@")[0]
                password = credentials.partition(":")[2]
                assert not password or INTERPOLATION.fullmatch(password), f"{name}.{key}"
    example = (DOCKER / ".env.example").read_text().splitlines()
    for line in example:
        key, _, value = line.partition("=")
        if SECRET.search(key) and not line.startswith("#"):
            assert value == "", f".env.example must not carry a value for {key}"
    assert "docker/.env" in (REPO_ROOT / ".gitignore").read_text().splitlines()


def test_published_ports_bind_to_loopback_by_default(compose):
    published = [
        (name, port)
        for name, service in compose["services"].items()
        for port in service.get("ports", [])
    ]
    assert ("webserver", "${DAGSTER_BIND:-127.0.0.1}:${DAGSTER_PORT:-3000}:3000") in published
    for name, port in published:
        assert isinstance(port, str), f"{name}: use HOST:PUBLISHED:TARGET strings"
        host, _, _ = with_defaults(port).rpartition(":")[0].rpartition(":")
        assert host == "127.0.0.1", f"{name} publishes {port} beyond this machine by default"


def test_services_share_one_code_location_over_grpc(compose):
    workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text())
    (location,) = workspace["load_from"]
    grpc = location["grpc_server"]
    code = compose["services"]["code"]["command"]
    assert grpc["host"] == "code" and code[code.index("-p") + 1] == str(grpc["port"])
    assert code[-1] == "energy_assets.definitions"
    for name in ("webserver", "daemon"):
        command = compose["services"][name]["command"]
        assert command[command.index("-w") + 1] == "/app/docker/workspace.yaml"


def test_dockerfile_pins_its_base_runs_unprivileged_and_parses_dbt():
    lines = [
        line.strip()
        for line in (DOCKER / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    bases = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    assert bases and all(
        re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", b) for b in bases
    ), bases
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0", "0:0")
    assert any("ensure_manifest" in line for line in lines), "parse dbt at build time"


def test_dagster_instance_config_is_valid_and_limits_month_runs(tmp_path, monkeypatch):
    """Checked with Dagster's own config schemas, the environment resolved as the services do."""
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster._core.storage.config import pg_config

    for key in ("USER", "PASSWORD", "HOST", "DB"):
        monkeypatch.setenv(f"DAGSTER_POSTGRES_{key}", f"from-env-{key.lower()}")
    monkeypatch.setenv("DAGSTER_POSTGRES_PORT", "5433")
    (tmp_path / "dagster.yaml").write_text((DOCKER / "dagster.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))

    storage = process_config(pg_config(), config["storage"]["postgres"])
    assert storage.success, storage.errors
    database = storage.value["postgres_db"]
    assert database["password"] == "from-env-password" and database["port"] == 5433
    assert database["scheme"] == "postgresql+psycopg2"  # not psycopg 3, which is not installed

    coordinator = config["run_coordinator"]
    assert coordinator["class"] == "QueuedRunCoordinator"
    queue = process_config(QueuedRunCoordinator.config_type(), coordinator["config"])
    assert queue.success, queue.errors
    limits = queue.value["tag_concurrency_limits"]
    assert [limit["key"] for limit in limits] == [MONTH_RUN_TAG]


def test_readme_documents_every_variable_the_deployment_reads():
    names = set()
    for path in DOCKER.iterdir():
        if path.is_file():
            names |= set(
                re.findall(r"\b(?:ENERGY|DAGSTER|POSTGRES)_[A-Z0-9_]+\b", path.read_text())
            )
    readme = (REPO_ROOT / "README.md").read_text()
    deployment = readme.split("## Deployment", 1)[1].split("\n## ", 1)[0]
    missing = sorted(n for n in names if f"`{n}`" not in deployment)
    assert missing == []
