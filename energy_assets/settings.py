"""Where the platform keeps things, read from the environment with sensible defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = REPO_ROOT / "sql"
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
DEFAULT_PG_PORT = 55432


@dataclass(frozen=True)
class Settings:
    """Paths and connection settings for one platform home (`$ENERGY_HOME`)."""

    home: Path
    database_url: str | None
    """An existing PostgreSQL to use instead of the embedded one (`ENERGY_DATABASE_URL`)."""
    pg_port: int
    default_timezone: str
    """Timezone for timestamps without an offset, unless the meter's metadata names one."""
    file_stable_seconds: float
    """A dropbox file must be unchanged this long before it is loaded."""
    forecasts: bool = True
    """Run the forecast backtest and the live forecast after the marts (`ENERGY_FORECASTS`)."""
    customer_plots: int = 25
    """Customers drawn per month by plots/customer_patterns, largest first; others on demand
    with `energy plot` (`ENERGY_CUSTOMER_PLOTS`)."""

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("ENERGY_HOME", ".energy")).expanduser().resolve()
        return cls(
            home=home,
            database_url=os.environ.get("ENERGY_DATABASE_URL") or None,
            pg_port=int(os.environ.get("ENERGY_PG_PORT", DEFAULT_PG_PORT)),
            default_timezone=os.environ.get("ENERGY_TIMEZONE", "UTC"),
            file_stable_seconds=float(os.environ.get("ENERGY_FILE_STABLE_SECONDS", "2")),
            forecasts=os.environ.get("ENERGY_FORECASTS", "on").lower() not in ("off", "0", "false"),
            customer_plots=int(os.environ.get("ENERGY_CUSTOMER_PLOTS", "25")),
        )

    def with_home(self, home: Path) -> Settings:
        return replace(self, home=home.resolve())

    @property
    def dropbox(self) -> Path:
        return self.home / "dropbox"

    @property
    def archive(self) -> Path:
        return self.home / "archive"

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    def ensure_dirs(self) -> None:
        for path in (self.dropbox, self.archive, self.quarantine, self.dagster_home):
            path.mkdir(parents=True, exist_ok=True)
