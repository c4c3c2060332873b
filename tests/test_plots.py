"""Every plot kind rendered from real data, attached to its materialization in Dagster."""

from __future__ import annotations

import gzip

import pytest
from conftest import SHARED_DATA
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance
from matplotlib.image import imread

from energy_assets.operations import run_once
from energy_assets.platform import platform_session
from energy_assets.sample import write_sample

LCL = SHARED_DATA / "lcl_london_2013_60hh" / "halfhourly_kwh.csv.gz"


def write_lcl_january(path, households: int = 12) -> None:
    """The first households of the real LCL file, January 2013 only, lines kept verbatim."""
    with gzip.open(LCL, "rt") as source, open(path, "w") as out:
        out.write(next(source))
        seen: list[str] = []
        for line in source:
            household = line.split(",", 1)[0]
            if household not in seen:
                if len(seen) == households:
                    break
                seen.append(household)
            if ",2013-01-" in line:
                out.write(line)


def assert_png(path) -> None:
    assert path.exists() and path.stat().st_size > 10_000, path
    height, width, _ = imread(path).shape
    assert height >= 400 and width >= 600


@pytest.mark.skipif(not LCL.exists(), reason="needs ../shared/data (real LCL data)")
def test_each_plot_kind_is_rendered_and_attached(platform):
    write_lcl_january(platform.settings.dropbox / "lcl_jan.csv")
    write_sample(platform.settings.dropbox, months=("2024-01",))
    assert run_once(platform.settings).ok

    plots = platform.settings.home / "plots"
    for name in ("North.png", "South.png", "all.png", "heatmap.png"):
        assert_png(plots / "load" / "2024-01" / name)
    customers = sorted((plots / "customers" / "2013-01").glob("*.png"))
    assert len(customers) == 12
    for path in customers:
        assert_png(path)
    assert_png(plots / "segments" / "2013-01.png")

    with platform_session(platform.settings):
        instance = DagsterInstance.get()

        def metadata(key: list[str], month: str) -> dict:
            records = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=AssetKey(key), asset_partitions=[month]), limit=1
            ).records
            return records[0].asset_materialization.metadata

        load = metadata(["plots", "load_profiles"], "2024-01-01")
        assert str(plots / "load" / "2024-01" / "all.png") in load["2024-01"].value
        assert load["system_heatmap"].value.startswith("![system heat map](data:image/png;base64,")
        patterns = metadata(["plots", "customer_patterns"], "2013-01-01")
        assert patterns["2013-01"].value["customers"] == 12
        segments = metadata(["ml", "customer_segments"], "2013-01-01")
        assert segments["plot_path"].value == str(plots / "segments" / "2013-01.png")
        # A month without feeder data says so instead of drawing an empty plot.
        assert (
            "no feeder data" in metadata(["plots", "load_profiles"], "2013-01-01")["2013-01"].value
        )
