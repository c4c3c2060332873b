"""The Docker deployment, checked without a Docker engine: compose file against the compose
specification's JSON schema, secrets, published ports, the image, Dagster's instance config.

tests/data/compose-spec.json is the compose-spec JSON schema (`compose/config/compose_spec.json`)
as shipped in the docker-compose 1.29.2 wheel on PyPI; vendored so the test needs no network.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from energy_assets.commands.session import dagster_config
from energy_assets.partitions import MONTH_RUN_TAG, PARTITION_TAG
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
    assert set(compose["services"]) >= {"postgres", "code", "webserver", "daemon", "dashboard"}
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
    assert ("dashboard", "${DASHBOARD_BIND:-127.0.0.1}:${DASHBOARD_PORT:-8501}:8501") in published
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
    assert [limit["key"] for limit in limits] == [MONTH_RUN_TAG, PARTITION_TAG]
    # The same queue as `energy up` writes, at its default limit.
    generated = dagster_config("postgresql://someone@db.example/dagster", 1)["run_coordinator"]
    assert (
        coordinator["config"]["tag_concurrency_limits"]
        == (generated["config"]["tag_concurrency_limits"])
    )


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


ROLE_PASSWORDS = {  # each service's role and the variable its password comes from
    "energy_platform": "ENERGY_PLATFORM_PASSWORD",
    "energy_dagster": "DAGSTER_POSTGRES_PASSWORD",
    "energy_analyst": "ENERGY_ANALYST_PASSWORD",
}


def secrets_in(environment: dict) -> set[str]:
    """The secret variables a service's environment is given."""
    return {
        match.group(1)
        for value in environment.values()
        for match in INTERPOLATION.finditer(str(value))
        if SECRET.search(match.group(1))
    }


def test_each_service_sees_only_the_credentials_of_its_role(compose):
    services = compose["services"]
    environments = {name: service.get("environment") or {} for name, service in services.items()}
    assert secrets_in(environments["postgres"]) == {"POSTGRES_PASSWORD"}
    assert secrets_in(environments["setup"]) == {"POSTGRES_PASSWORD", *ROLE_PASSWORDS.values()}
    for name in ("code", "worker"):
        assert secrets_in(environments[name]) == {
            "ENERGY_PLATFORM_PASSWORD",
            "DAGSTER_POSTGRES_PASSWORD",
            "RABBITMQ_PASSWORD",
        }, name
    assert secrets_in(environments["rabbitmq"]) == {"RABBITMQ_PASSWORD"}
    assert environments["redis"] == {} and "ports" not in services["redis"]
    assert "ports" not in services["rabbitmq"]  # reached by the services only
    assert services["worker"]["command"] == ["energy", "worker"]
    for name in ("webserver", "daemon"):
        assert secrets_in(environments[name]) == {"DAGSTER_POSTGRES_PASSWORD"}, name
        assert not any(key.startswith("ENERGY_") for key in environments[name]), name
    dashboard = environments["dashboard"]
    assert secrets_in(dashboard) == {"ENERGY_ANALYST_PASSWORD"}
    assert urlsplit(with_defaults(dashboard["ENERGY_ANALYST_URL"])).username == "energy_analyst"
    assert services["dashboard"]["volumes"] == []  # no home, no Dagster storage
    assert services["dashboard"]["command"][:2] == ["energy", "dashboard"]
    code = environments["code"]
    assert urlsplit(with_defaults(code["ENERGY_WAREHOUSE_URL"])).username == "energy_platform"
    assert code["ENERGY_PGUSER"] == "energy_platform"
    assert code["DAGSTER_POSTGRES_USER"] == "energy_dagster"
    setup = environments["setup"]
    assert urlsplit(with_defaults(setup["ENERGY_DATABASE_URL"])).username == "energy_platform"
    assert urlsplit(with_defaults(setup["ENERGY_DAGSTER_DATABASE_URL"])).username == (
        "energy_dagster"
    )
    assert services["setup"]["command"][-1] == "python /app/docker/roles.py && exec energy setup"
    example = dict(
        line.split("=", 1)
        for line in (DOCKER / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert {"POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", *ROLE_PASSWORDS.values()} <= set(example)


def test_the_instance_configs_retry_runs_whose_process_died(tmp_path, monkeypatch):
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.storage.config import pg_config

    url = "postgresql://someone:s3cret-pw@db.example:5433/dagster?sslmode=require"
    generated = yaml.safe_dump(dagster_config(url, 1))
    assert "s3cret-pw" not in generated
    monkeypatch.setenv("ENERGY_DAGSTER_PGPASSWORD", "s3cret-pw")
    for key in ("USER", "PASSWORD", "HOST", "DB", "PORT"):
        monkeypatch.setenv(f"DAGSTER_POSTGRES_{key}", "5432" if key == "PORT" else "x")
    for name, text in (("generated", generated), ("docker", (DOCKER / "dagster.yaml").read_text())):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "dagster.yaml").write_text(text)
        config, _ = dagster_instance_config(str(folder))
        assert config["run_monitoring"]["enabled"] is True, name
        assert config["run_monitoring"]["max_resume_run_attempts"] == 0, name
        retries = config["run_retries"]
        assert retries["enabled"] and retries["max_retries"] >= 1, name
        assert retries["retry_on_asset_or_op_failure"] is False, name
        storage = process_config(pg_config(), config["storage"]["postgres"])
        assert storage.success, storage.errors
    database = storage_of(generated)
    assert database["password"] == "s3cret-pw" and database["params"] == {"sslmode": "require"}
    assert (database["username"], database["hostname"], database["port"]) == (
        "someone",
        "db.example",
        5433,
    )


def storage_of(text: str) -> dict:
    from dagster._config import process_config
    from dagster._core.storage.config import pg_config

    return process_config(pg_config(), yaml.safe_load(text)["storage"]["postgres"]).value[
        "postgres_db"
    ]


def test_the_roles_script_gives_each_service_role_only_what_it_needs(pg_server, tmp_path):
    """docker/roles.py and `energy setup` as the compose file runs them, on a real server."""
    import subprocess
    import sys
    import uuid

    import psycopg2
    from conftest import admin, with_database
    from psycopg2 import sql
    from up_process import energy, platform_environ

    server = urlsplit(pg_server)
    warehouse, dagster = f"dep_{uuid.uuid4().hex[:10]}", f"dep_{uuid.uuid4().hex[:10]}_dagster"
    admin(pg_server, sql.SQL("create database {}").format(sql.Identifier(warehouse)))
    passwords = {role: f"pw-{role}-{uuid.uuid4().hex[:6]}" for role in ROLE_PASSWORDS}

    def url(role: str, database: str) -> str:
        return f"postgresql://{role}:{passwords[role]}@127.0.0.1:{server.port}/{database}"

    try:
        env = {
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_PORT": str(server.port),
            "POSTGRES_USER": server.username,
            "POSTGRES_PASSWORD": server.password,
            "POSTGRES_DB": warehouse,
            "DAGSTER_POSTGRES_DB": dagster,
            **{variable: passwords[role] for role, variable in ROLE_PASSWORDS.items()},
        }
        made = subprocess.run(
            [sys.executable, str(DOCKER / "roles.py")], env=env, capture_output=True, text=True
        )
        assert made.returncode == 0, made.stderr
        setup = energy(
            "setup",
            env=platform_environ(
                tmp_path / "home",
                ENERGY_DATABASE_URL=url("energy_platform", warehouse),
                ENERGY_DAGSTER_DATABASE_URL=url("energy_dagster", dagster),
            ),
        )
        assert setup.returncode == 0, setup.stderr

        def query(role: str, database: str, statement: str):
            conn = psycopg2.connect(url(role, database))
            try:
                with conn.cursor() as cur:
                    cur.execute(statement)
                    return cur.fetchall()
            finally:
                conn.close()

        assert query(
            "energy_platform",
            warehouse,
            "select rolsuper, rolcreaterole, rolcreatedb from pg_roles"
            " where rolname = current_user",
        ) == [(False, False, False)]
        assert query(
            "energy_platform",
            warehouse,
            "select has_table_privilege('raw.readings', 'insert'),"
            " pg_get_userbyid(relowner) from pg_class where oid = 'raw.readings'::regclass",
        ) == [(True, "energy_loader")]
        owners = query(
            "energy_platform",
            warehouse,
            "select distinct pg_get_userbyid(relowner) from pg_class"
            " where relnamespace in ('marts'::regnamespace, 'ml'::regnamespace)",
        )
        assert owners == [("energy_platform",)]
        owner = "select pg_get_userbyid(datdba) from pg_database where datname = current_database()"
        assert query("energy_dagster", dagster, owner) == [("energy_dagster",)]
        assert query("energy_analyst", warehouse, "select count(*) from marts.dim_meter") == [(0,)]
        for role, database in (
            ("energy_platform", dagster),
            ("energy_analyst", dagster),
            ("energy_dagster", warehouse),
        ):
            with pytest.raises(psycopg2.OperationalError, match="permission denied"):
                psycopg2.connect(url(role, database)).close()
    finally:
        for database in (warehouse, dagster):
            admin(
                with_database(pg_server, "postgres"),
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)),
            )
