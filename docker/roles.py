"""The deployment's database roles, made by the `setup` service as the database's owner.

Each service logs in with the least it needs, with its own password from `docker/.env`:

  energy_platform  the code server: loads files into raw (as a member of energy_loader, which
                   owns raw), builds marts and ml (which it owns); no other database
  energy_dagster   Dagster's run, event and schedule storage: owns the `dagster` database only
  energy_analyst   read-only (grants in sql/009_roles.sql)
  energy_loader    NOLOGIN owner of raw

Run at every start: roles are created once, and their passwords set from the environment each
time, so a password changed in `docker/.env` takes effect at the next `docker compose up`.
Statements take names as identifiers and passwords as parameters, never by formatting.
"""

from __future__ import annotations

import os

import psycopg2
from psycopg2 import sql

LOGINS = {
    "energy_platform": "ENERGY_PLATFORM_PASSWORD",
    "energy_dagster": "DAGSTER_POSTGRES_PASSWORD",
    "energy_analyst": "ENERGY_ANALYST_PASSWORD",
}


def connect(database: str):
    conn = psycopg2.connect(
        host=os.environ.get("POSTGRES_HOST", "postgres"),
        port=int(os.environ.get("POSTGRES_PORT", "5432")),
        user=os.environ["POSTGRES_USER"],
        password=os.environ["POSTGRES_PASSWORD"],
        dbname=database,
    )
    conn.autocommit = True
    return conn


def ensure_role(cur, role: str, password: str | None) -> None:
    name = sql.Identifier(role)
    cur.execute("select 1 from pg_roles where rolname = %s", (role,))
    if cur.fetchone() is None:
        login = sql.SQL("login" if password else "nologin")
        cur.execute(sql.SQL("create role {} {}").format(name, login))
    if password:
        cur.execute(sql.SQL("alter role {} login password %s").format(name), (password,))


def main() -> None:
    warehouse = os.environ["POSTGRES_DB"]
    dagster = os.environ.get("DAGSTER_POSTGRES_DB", "dagster")
    conn = connect(warehouse)
    with conn.cursor() as cur:
        for role, variable in LOGINS.items():
            ensure_role(cur, role, os.environ[variable])
        ensure_role(cur, "energy_loader", None)
        cur.execute("grant energy_loader to energy_platform")
        cur.execute("select 1 from pg_database where datname = %s", (dagster,))
        if cur.fetchone() is None:
            cur.execute(sql.SQL("create database {}").format(sql.Identifier(dagster)))
        for database, users in (
            (warehouse, ["energy_platform", "energy_analyst"]),
            (dagster, ["energy_dagster"]),
        ):
            name = sql.Identifier(database)
            cur.execute(sql.SQL("revoke all on database {} from public").format(name))
            for user in users:
                cur.execute(
                    sql.SQL("grant connect on database {} to {}").format(name, sql.Identifier(user))
                )
        warehouse_name = sql.Identifier(warehouse)
        grant = sql.SQL("grant create on database {} to energy_platform")
        cur.execute(grant.format(warehouse_name))
        cur.execute(
            sql.SQL("alter database {} owner to energy_dagster").format(sql.Identifier(dagster))
        )
    conn.close()


if __name__ == "__main__":
    main()
