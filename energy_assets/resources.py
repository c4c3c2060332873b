"""The `Platform` resource: the platform's settings and connections to its warehouse, for every
asset, sensor and check."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from dagster import ConfigurableResource
from psycopg2.extensions import connection

from energy_assets.settings import Settings
from energy_assets.warehouse.database import connect


class Platform(ConfigurableResource):
    """Where the platform's home is and how to reach its warehouse.

    `energy up` / `energy run` set both variables for every process they start; the other
    settings come from the same environment (`Settings`).
    """

    home: str
    warehouse_url: str

    def settings(self) -> Settings:
        return Settings.from_env().with_home(Path(self.home))

    @contextlib.contextmanager
    def connection(self) -> Iterator[connection]:
        """A warehouse connection for the block, closed after it."""
        conn = connect(self.warehouse_url)
        try:
            yield conn
        finally:
            conn.close()
