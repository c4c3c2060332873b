"""Run-time configuration handed to assets and sensors, read from the environment."""

from pathlib import Path

from dagster import ConfigurableResource

from energy_assets.settings import Settings


class Platform(ConfigurableResource):
    """Where the platform's home is and how to reach its warehouse.

    `energy up` / `energy run` set both variables for every process they start.
    """

    home: str
    warehouse_url: str

    def settings(self) -> Settings:
        return Settings.from_env().with_home(Path(self.home))
