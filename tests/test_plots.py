"""Every plot kind rendered from real data, attached to its materialization in Dagster."""

from __future__ import annotations

import gzip
import shutil

import pandas as pd
import pytest
from conftest import SHARED_DATA
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance
from matplotlib.image import imread

from energy_assets import cli
from energy_assets.commands.run import run_once
from energy_assets.commands.session import platform_session
from energy_assets.plots.charts import largest_customers

LCL = SHARED_DATA / "lcl_london_2013_60hh" / "halfhourly_kwh.csv.gz"
OPENSTEF = SHARED_DATA / "openstef_example_nl_2020"
FEEDERS = {"287": "North", "307": "North", "435": "South"}


def write_openstef_as_feeder_exports(dropbox) -> None:
    """Real grid-connection loads (MW, negative = reverse flow) from the OpenSTEF examples,
    December 2020, written as seed-style feeder exports: import as kW del, export as kW rec."""
    for pid in FEEDERS:
        frame = pd.read_csv(
            OPENSTEF / f"get_model_input_pid_{pid}.csv.gz",
            usecols=["index", "load"],
            parse_dates=["index"],
        )
        frame = frame[(frame["index"] >= "2020-12-01") & (frame["index"] < "2021-01-01")]
        frame = frame.dropna(subset=["load"])
        kw = frame["load"] * 1000
        pd.DataFrame(
            {
                "Start Time": frame["index"].dt.strftime("%Y-%m-%d %H:%M:%S+00:00"),
                "kW del": kw.clip(lower=0).round(3),
                "kW rec": (-kw).clip(lower=0).round(3),
                "kVA del": (kw.clip(lower=0) / 0.95).round(3),
                "kVA rec": ((-kw).clip(lower=0) / 0.95).round(3),
            }
        ).to_csv(dropbox / f"P{pid}_2020-12.csv", index=False)
    pd.DataFrame(
        [(f"P{pid}", feeder, 1) for pid, feeder in FEEDERS.items()],
        columns=["ID", "Name", "Multiplier"],
    ).to_csv(dropbox / "meter-data.csv", index=False)


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


@pytest.mark.skipif(not LCL.exists(), reason="needs ../shared/data (real LCL and OpenSTEF data)")
def test_each_plot_kind_is_rendered_and_attached(platform, monkeypatch, capsys, tmp_path):
    lcl = tmp_path / "lcl_jan.csv"
    write_lcl_january(lcl)
    shutil.copy(lcl, platform.settings.dropbox)
    write_openstef_as_feeder_exports(platform.settings.dropbox)
    monkeypatch.setenv("ENERGY_CUSTOMER_PLOTS", "5")
    assert run_once(platform.settings).ok

    plots = platform.settings.home / "plots"
    for name in ("North.png", "South.png", "all.png", "heatmap.png"):
        assert_png(plots / "load" / "2020-12" / name)
    assert sorted(p.name for p in (plots / "load" / "2020-12").iterdir()) == [
        "North.png",
        "South.png",
        "all.png",
        "heatmap.png",
    ]  # no meter on no feeder that month
    for name in ("meters-total.png", "meters-total-heatmap.png"):
        assert_png(plots / "load" / "2013-01" / name)
    folder = plots / "customers" / "2013-01"
    assert_png(folder / "overview.png")
    largest = largest_households(lcl, 5)
    assert sorted(p.name for p in folder.glob("MAC*.png")) == sorted(f"{h}.png" for h in largest)
    for name in largest:
        assert_png(folder / f"{name}.png")
    assert_png(plots / "segments" / "2013-01.png")

    with platform_session(platform.settings):
        instance = DagsterInstance.get()

        def metadata(key: list[str], month: str) -> dict:
            records = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=AssetKey(key), asset_partitions=[month]), limit=1
            ).records
            return records[0].asset_materialization.metadata

        load = metadata(["plots", "load_profiles"], "2020-12")
        assert str(plots / "load" / "2020-12" / "all.png") in load["2020-12"].value
        assert load["system_heatmap"].value.startswith("![system heat map](data:image/png;base64,")
        patterns = metadata(["plots", "customer_patterns"], "2013-01")
        assert patterns["2013-01"].value["customers"] == 12
        assert patterns["2013-01"].value["drawn"] == 5
        assert patterns["overview"].value.startswith("![customers' hourly patterns](data:")
        segments = metadata(["ml", "customer_segments"], "2013-01")
        assert segments["plot_path"].value == str(plots / "segments" / "2013-01.png")
        # Households without feeders get the meter total's profile and heat map instead.
        households = metadata(["plots", "load_profiles"], "2013-01")
        assert households["2013-01"].value == [
            str(plots / "load" / "2013-01" / name)
            for name in ("meters-total.png", "meters-total-heatmap.png")
        ]
        assert households["meters_total_heatmap"].value.startswith("![meters on no feeder")
        assert "system_heatmap" not in households

    # Any other customer is drawn on demand, beside the asset's pictures.
    others = sorted(set(pd.read_csv(lcl)["LCLid"]) - set(largest))
    assert cli.main(["plot", others[0], "--month", "2013-01"]) == 0
    assert capsys.readouterr().out.strip() == str(folder / f"{others[0]}.png")
    assert_png(folder / f"{others[0]}.png")
    assert cli.main(["plot", "NO-SUCH-CUSTOMER", "--month", "2013-01"]) == 2
    assert "no profile for customer 'NO-SUCH-CUSTOMER' in 2013-01" in capsys.readouterr().err


def largest_households(lcl, count: int) -> list[str]:
    """The households with the highest mean over their (weekday/weekend, hour) mean demand,
    from the LCL file itself (January: London time is UTC)."""
    frame = pd.read_csv(lcl, parse_dates=["tstp"])
    frame["kw"] = pd.to_numeric(frame["energy(kWh/hh)"], errors="coerce") * 2
    frame["weekend"] = frame["tstp"].dt.dayofweek >= 5
    cells = frame.groupby(["LCLid", "weekend", frame["tstp"].dt.hour])["kw"].mean()
    level = cells.groupby("LCLid").mean().sort_values(ascending=False)
    return list(level.index[:count])


def test_largest_customers_ranks_by_mean_demand_then_name():
    profiles = pd.DataFrame(
        {
            "customer_id": ["b", "b", "a", "a", "c", "c", "d", "d"],
            "mean_kw": [1.0, 3.0, 2.0, 2.0, 5.0, None, 0.5, 0.5],
        }
    )
    assert largest_customers(profiles, 3) == ["c", "a", "b"]
    assert largest_customers(profiles, 0) == []
    assert largest_customers(profiles, 10) == ["c", "a", "b", "d"]
