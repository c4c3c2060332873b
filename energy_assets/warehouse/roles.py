"""Who may reach what: the analyst's connection string and a closed Dagster storage database.

The roles themselves and their grants live in `sql/009_roles.sql`, applied with the schema.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from psycopg2 import errors, sql

from energy_assets.warehouse.database import DAGSTER_ACL_LOCK

ANALYST_ROLE = "energy_analyst"
LOADER_ROLE = "energy_loader"
PASSWORD_LOCK = 7_310_004
"""Advisory lock key (beside those of `warehouse.database`): setting a role's password."""

log = logging.getLogger(__name__)


def analyst_url(url: str, role: str = ANALYST_ROLE) -> str:
    """`url` with the analyst's role as user and no password: a password, where the server wants
    one, belongs in PGPASSWORD or ~/.pgpass, not in a string that gets printed and shared."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


def ensure_password(url: str, role: str, password: str) -> None:
    """Give `role` this password unless it has one: the embedded server's generated secret,
    also for a home made when that server trusted every local connection. Concurrent starts
    take turns on a lock (two ALTER ROLEs at once would collide on the catalog row)."""
    conn = psycopg2.connect(url, application_name="energy_assets")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(%s)", (PASSWORD_LOCK,))
            cur.execute("select rolpassword is null from pg_authid where rolname = %s", (role,))
            row = cur.fetchone()
            if row is not None and row[0]:
                statement = sql.SQL("alter role {} password %s").format(sql.Identifier(role))
                cur.execute(statement, (password,))
    finally:
        conn.close()


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def restrict_dagster_database(dagster_url: str, warehouse_url: str) -> None:
    """Let only the platform's own user connect to Dagster's storage database.

    PostgreSQL lets every role (PUBLIC) connect to every database by default, so an analyst
    could otherwise read the run history. Skipped when Dagster keeps its tables in the warehouse
    database (whose tables analysts cannot read without a grant anyway). Changing a database's
    privileges rewrites its catalog row, so concurrent starts take turns on a lock and skip
    the change once it is made.
    """
    database = database_name(dagster_url)
    if database == database_name(warehouse_url) and _same_server(dagster_url, warehouse_url):
        return
    conn = psycopg2.connect(dagster_url, application_name="energy_assets")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(%s)", (DAGSTER_ACL_LOCK,))
            cur.execute(
                "select exists (select from pg_database d,"
                " aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a"
                " where d.datname = current_database() and a.grantee = 0"
                " and a.privilege_type = 'CONNECT')"
            )
            if not cur.fetchone()[0]:
                return
            name = sql.Identifier(database)
            cur.execute(
                sql.SQL("grant connect, temporary on database {} to current_user").format(name)
            )
            cur.execute(
                sql.SQL("revoke connect, temporary on database {} from public").format(name)
            )
    except errors.InsufficientPrivilege as exc:
        log.warning("Dagster's database stays open to every role: %s", exc)
    finally:
        conn.close()


def _same_server(a: str, b: str) -> bool:
    return urlsplit(a).netloc.rpartition("@")[2] == urlsplit(b).netloc.rpartition("@")[2]
