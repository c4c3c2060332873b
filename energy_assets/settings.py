"""Every setting of the platform, read from the `ENERGY_*` environment here and nowhere else.

`Settings.from_env()` reads each variable once into a frozen object; every field names its
variable, its default and what it means, and `VARIABLES` lists them all for the README, the
tests and the benchmarks. The platform's own processes get their connection details through
`export`, so a child process (dbt, the Dagster webserver and daemon) reads the same values.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = REPO_ROOT / "sql"
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
# Below Linux's ephemeral range (32768-60999), from which the kernel hands out client ports: a
# default inside it can be taken by any outgoing connection at the moment the server starts.
DEFAULT_PG_PORT = 25432
SOURCE_CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file()
"""The package runs from a clone (an editable install), not from site-packages."""
DEFAULT_HOME = REPO_ROOT / ".energy" if SOURCE_CHECKOUT else Path.home() / ".energy"
"""The checkout's `.energy` when running from a clone, else `~/.energy`: never the current
directory, so a command run from another folder finds the same home."""
ANOMALY_PREFIX = "ENERGY_ANOMALY_"
EXECUTORS = ("in-process", "celery")
"""Where a run's steps execute: in the run's own process(es), or on Celery workers."""


def _flag(text: str) -> bool:
    return text.strip().lower() not in ("off", "0", "false", "no")


def _positive(text: str) -> int:
    """A count that means nothing at 0: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise ValueError("expected a whole number of at least 1")
    return value


def _count_or_all(text: str) -> int | None:
    """`all` means no limit."""
    return None if text.strip().lower() == "all" else _positive(text)


def _hours(text: str) -> tuple[int, int]:
    start, end = (int(part) for part in text.split(","))
    return start, end


def _floats(text: str) -> tuple[float, ...]:
    """`10,2,1.732` -> (10.0, 2.0, 1.732)."""
    return tuple(float(part) for part in text.split(","))


def _sites(text: str) -> tuple[tuple[str, float, float], ...]:
    """`london=51.5,-0.12;utrecht=52.0,5.0` -> ((site, latitude, longitude), ...)."""
    sites = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, place = part.partition("=")
        latitude, longitude = (float(v) for v in place.split(","))
        sites.append((name.strip(), latitude, longitude))
    return tuple(sites)


def _executor(text: str) -> str:
    name = text.strip().lower().replace("_", "-")
    if name not in EXECUTORS:
        raise PlatformError(f"ENERGY_EXECUTOR={text!r}: expected one of {', '.join(EXECUTORS)}")
    return name


def _month(text: str) -> date:
    """`2000-01` (or a full date) -> the first day of that month."""
    return date.fromisoformat(text.strip()[:7] + "-01")


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda text: parse(text) if text.strip() else None


class PlatformError(Exception):
    """A problem the user can act on: `energy` prints it as one line naming the home, exit 1."""


class NoHomeError(PlatformError):
    """The command needs a platform home that has been set up, and there is none."""


def _var(env: str, default: Any, parse: Callable[[str], Any], doc: str) -> Any:
    """A settings field read from `env` (when set) with `parse`."""
    return field(default=default, metadata={"env": env, "parse": parse, "doc": doc})


def _read(cls: type, environ: Mapping[str, str], **given: Any) -> Any:
    values = dict(given)
    for f in fields(cls):
        env = f.metadata.get("env")
        if env and f.name not in values and environ.get(env, "") != "":
            try:
                values[f.name] = f.metadata["parse"](environ[env])
            except ValueError as error:  # int("x"), a range check: name the variable
                raise PlatformError(f"{env}={environ[env]!r}: {error}") from None
    return cls(**values)


def _anomaly(name: str, default: Any, doc: str, parse: Callable[[str], Any] = float) -> Any:
    return _var(ANOMALY_PREFIX + name.upper(), default, parse, doc)


@dataclass(frozen=True)
class AnomalyThresholds:
    """Every knob of the anomaly detectors, each settable as `ENERGY_ANOMALY_<NAME>`.

    The defaults were set on principles, then checked on real household (LCL) and grid
    (OpenSTEF) data with injected faults (`benchmarks/anomalies.py`).
    """

    history_days: int = _anomaly(
        "history_days", 7, "history needed before the baselines use history alone", int
    )
    idle_share: float = _anomaly(
        "idle_share", 0.5, "at exactly zero at least this often: the meter is normally idle"
    )
    rare_zero_share: float = _anomaly(
        "rare_zero_share", 0.01, "at zero less often than this: short zero runs are dropouts"
    )
    flatline_intervals: int = _anomaly(
        "flatline_intervals",
        16,
        "identical non-zero values in a row that make a flatline"
        " (quantised meters repeat a value up to ~8 times)",
        int,
    )
    dropout_intervals: int = _anomaly(
        "dropout_intervals",
        2,
        "zeros in a row on a meter (almost) never at zero;"
        " a meter sometimes at zero needs flatline_intervals of them",
        int,
    )
    spike_k: float = _anomaly(
        "spike_k", 10.0, "spike ceiling: median + k x MAD of the baseline ..."
    )
    spike_quantile: float = _anomaly(
        "spike_quantile", 0.995, "... or spike_margin x this quantile of the baseline, the higher"
    )
    spike_margin: float = _anomaly(
        "spike_margin", 3.0, "ordinary household peaks reach ~1.5 x the 99.5th percentile"
    )
    physical_ceiling_kw: float | None = _anomaly(
        "physical_ceiling_kw",
        None,
        "a hard ceiling in kW (or per row, a `ceiling_kw` column)",
        _optional(float),
    )
    export_share: float = _anomaly(
        "export_share", 0.01, "negative in more of the baseline than this: the meter exports"
    )
    reverse_flow_share: float = _anomaly(
        "reverse_flow_share",
        0.05,
        "negative beyond this share of the typical |level| counts as reverse flow",
    )
    night_hours: tuple[int, int] = _anomaly(
        "night_hours", (0, 5), "local [start, end) hours of the off-peak window, e.g. `0,5`", _hours
    )
    offpeak_k: float = _anomaly(
        "offpeak_k", 10.0, "off-peak ceiling: night median + k x night MAD ..."
    )
    offpeak_quantile: float = _anomaly(
        "offpeak_quantile", 0.99, "... or offpeak_margin x this night quantile, the higher"
    )
    offpeak_margin: float = _anomaly(
        "offpeak_margin",
        3.0,
        "margin over the night quantile and over the habit (at 2, the LCL households' own"
        " night loads gave about one finding per household-year)",
    )
    offpeak_habit_quantile: float = _anomaly(
        "offpeak_habit_quantile",
        0.9,
        "reached at this time of night one night in ten: a habit, not a spike",
    )
    level_days: int = _anomaly(
        "level_days", 28, "trailing days that make a day's expected level", int
    )
    level_min_days: int = _anomaly(
        "level_min_days", 7, "trailing days needed before a day's level is judged", int
    )
    level_k: float = _anomaly(
        "level_k", 3.0, "robust z of a day's mean against the trailing daily means ..."
    )
    level_ratio: float = _anomaly(
        "level_ratio",
        5.0,
        "... and the day x or / this (households vary 2-3x day to day; a change by a CT"
        " ratio is a multiplier_error)",
    )
    flip_correlation: float = _anomaly(
        "flip_correlation",
        -0.3,
        "a sign-flipped day's profile correlates below this with the usual one",
    )
    day_coverage: float = _anomaly(
        "day_coverage", 0.8, "share of a day's intervals with readings needed to judge the day"
    )
    flatline_min_intervals: int = _anomaly(
        "flatline_min_intervals",
        10,
        "a meter that rarely repeats a value is stuck after this many identical values",
        int,
    )
    flatline_chance: float = _anomaly(
        "flatline_chance",
        1e-8,
        "a run of identical values is a flatline once a run that long would happen by chance"
        " less often than this (from the meter's own rate of repeating a value), between"
        " flatline_min_intervals and flatline_intervals",
    )
    multiplier_ratios: tuple[float, ...] = _anomaly(
        "multiplier_ratios",
        (10.0, 2.0, 3**0.5),
        "CT / multiplier ratios (and their inverses) a wrong multiplier scales a meter by",
        _floats,
    )
    multiplier_quantiles: tuple[float, ...] = _anomaly(
        "multiplier_quantiles",
        (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9),
        "quantiles of a day's readings (from its minimum to its high load) that a wrong"
        " multiplier all moves by the same ratio",
        _floats,
    )
    multiplier_tolerance: float = _anomaly(
        "multiplier_tolerance",
        0.1,
        "largest |log| distance of the median of a day's quantile ratios from a multiplier ratio",
    )
    multiplier_spread: float = _anomaly(
        "multiplier_spread",
        0.35,
        "largest |log| distance of any one of a day's quantile ratios from that multiplier ratio"
        " (a day that only gains or loses an appliance moves its quantiles unevenly)",
    )
    multiplier_spread_share: float = _anomaly(
        "multiplier_spread_share",
        0.3,
        "... or this share of the ratio's |log|, whichever is larger: under a x10 or x0.1"
        " a quantile off by x1.7 is still the ratio (no appliance moves the base load x10)",
    )
    multiplier_k: float = _anomaly(
        "multiplier_k",
        4.0,
        "robust z of the median of a day's quantile ratios against its day-to-day spread over"
        " the trailing days that a multiplier error needs",
    )
    multiplier_return_k: float = _anomaly(
        "multiplier_return_k",
        3.5,
        "... or this robust z (in the same spread) against both the trailing and the following"
        " days, by the same ratio: a wrong multiplier put right, the load back where it was",
    )
    multiplier_return_tolerance: float = _anomaly(
        "multiplier_return_tolerance",
        1.5,
        "... the median quantile ratio against either within this many of those robust SDs of"
        " the multiplier ratio (a household's day wanders as much around the scaled level)",
    )
    multiplier_return_outliers: int = _anomaly(
        "multiplier_return_outliers",
        1,
        "... and at most this many quantiles further than multiplier_spread from it",
        int,
    )
    clock_regularity: float = _anomaly(
        "clock_regularity",
        0.7,
        "a meter's days correlate this well with its usual day (median) before its clock is"
        " judged: a household whose days vary a lot cannot show a shifted one",
    )
    clock_correlation: float = _anomaly(
        "clock_correlation",
        0.8,
        "a shifted day's hourly profile correlates at least this with the usual one at its lag",
    )
    clock_gain: float = _anomaly(
        "clock_gain",
        0.8,
        "... and at least this much better than without the lag (the readings a shifted clock"
        " stamps twice find most shifts; the profile alone is noisy for households)",
    )
    clock_max_hours: int = _anomaly(
        "clock_max_hours", 12, "largest clock shift looked for, in hours either way", int
    )
    stale_hours: float = _anomaly(
        "stale_hours",
        6.0,
        "a run this long identical to the same intervals a day or a week before is a stale copy",
    )
    stale_distinct: int = _anomaly(
        "stale_distinct",
        4,
        "distinct values a stale run needs (a flat or idle meter repeats itself honestly)",
        int,
    )
    silent_intervals: int = _anomaly(
        "silent_intervals",
        4,
        "intervals in a row a meter has no reading while most meters of its feeder report",
        int,
    )
    silent_feeder_share: float = _anomaly(
        "silent_feeder_share",
        0.5,
        "share of a feeder's meters reporting that makes the feeder 'reporting'",
    )
    residual_z: float = _anomaly(
        "residual_z",
        4.0,
        "robust z of a forecast residual against the target's residuals at that time of day",
    )
    residual_hours: float = _anomaly(
        "residual_hours",
        12.0,
        "hours in a row past residual_z (one sign) that make a persistent residual (a shorter"
        " error that matters shows in its day's energy error)",
    )
    residual_days_per_year: float = _anomaly(
        "residual_days_per_year",
        0.25,
        "days per target-year a day's forecast energy error passes its threshold by chance:"
        " sets the threshold from an exponential tail fitted to the target's own daily errors"
        " (real errors have heavier tails: on the LCL households 1 gave ~5 findings a year,"
        " half of them on no fault; 0.25 gives ~2)",
    )
    forest_score: float = _anomaly(
        "forest_score", 0.7, "isolation score of an unusual day (0.5 ordinary, 1 isolated at once)"
    )
    forest_trees: int = _anomaly("forest_trees", 200, "trees of the IsolationForest", int)
    forest_seed: int = _anomaly("forest_seed", 0, "seed of the IsolationForest", int)
    forest_min_days: int = _anomaly(
        "forest_min_days", 21, "days a meter needs before its days are compared", int
    )
    shard_meters: int = _anomaly(
        "shard_meters",
        500,
        "meters judged together: more are split into shards of about this many (a feeder's"
        " meters kept together), judged apart, in parallel (ENERGY_ANOMALY_PROCESSES); the"
        " IsolationForest is fitted per shard",
        _positive,
    )
    episode_gap_hours: float = _anomaly(
        "episode_gap_hours",
        24.0,
        "same-kind findings of a target closer than this are one episode"
        " (a meter dropping out every night is one fault)",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AnomalyThresholds:
        return _read(cls, os.environ if environ is None else environ)


@dataclass(frozen=True)
class Settings:
    """One platform home (`$ENERGY_HOME`) and how the platform runs in it."""

    home: Path = _var(
        "ENERGY_HOME",
        DEFAULT_HOME,
        Path,
        "dropbox, archive, quarantine, embedded PostgreSQL data, Dagster home (default: the"
        " checkout's `.energy` when run from a clone, else `~/.energy`)",
    )
    database_url: str | None = _var(
        "ENERGY_DATABASE_URL",
        None,
        str,
        "an existing PostgreSQL for everything (unset: the embedded server)",
    )
    dagster_database_url: str | None = _var(
        "ENERGY_DAGSTER_DATABASE_URL",
        None,
        str,
        "Dagster's storage, when it should differ from ENERGY_DATABASE_URL",
    )
    pg_port: int = _var(
        "ENERGY_PG_PORT", DEFAULT_PG_PORT, int, "port of the embedded PostgreSQL on 127.0.0.1"
    )
    first_month: date = _var(
        "ENERGY_FIRST_MONTH",
        date(2000, 1, 1),
        _month,
        "the earliest month a reading may fall in (YYYY-MM): month partitions start here and"
        " ingest refuses older timestamps",
    )
    default_timezone: str = _var(
        "ENERGY_TIMEZONE",
        "UTC",
        str,
        "timezone of timestamps without an offset, unless the meter's metadata names one",
    )
    estimate_linear_intervals: int = _var(
        "ENERGY_ESTIMATE_LINEAR_INTERVALS",
        4,
        int,
        "missing intervals in a row that marts.fct_intervals_clean estimates linearly between"
        " the readings either side",
    )
    estimate_max_intervals: int = _var(
        "ENERGY_ESTIMATE_MAX_INTERVALS",
        0,
        int,
        "longest gap (intervals) estimated at all, from the meter's same-slot profile; longer"
        " gaps stay gaps. 0 (the default) estimates nothing: estimates change every aggregate,"
        " so a utility turns them on knowingly (e.g. 48)",
    )
    file_stable_seconds: float = _var(
        "ENERGY_FILE_STABLE_SECONDS",
        2.0,
        float,
        "a dropped file must be unchanged this long before it loads",
    )
    max_unpacked_bytes: int = _var(
        "ENERGY_MAX_UNPACKED_BYTES",
        4 * 1024**3,
        int,
        "a dropped .gz or .zip may unpack to at most this many bytes (all members together)",
    )
    max_unpack_ratio: float = _var(
        "ENERGY_MAX_UNPACK_RATIO",
        200.0,
        float,
        "... and to at most this multiple of its own size (of 1 MiB for smaller archives);"
        " beyond either it is quarantined as an archive bomb",
    )
    ui_host: str = _var("ENERGY_UI_HOST", "127.0.0.1", str, "where `energy up` serves the UI")
    ui_port: int = _var("ENERGY_UI_PORT", 3000, int, "port of the UI of `energy up`")
    dashboard_port: int = _var(
        "ENERGY_DASHBOARD_PORT",
        8501,
        int,
        "port of the dashboard `energy up` serves beside the UI (on ENERGY_UI_HOST)",
    )
    analyst_url: str | None = _var(
        "ENERGY_ANALYST_URL",
        None,
        str,
        "the warehouse as the read-only analyst role, the only way the dashboard reads it"
        " (unset: `energy up` derives it, with the analyst's passfile on the embedded server)",
    )
    month_run_concurrency: int = _var(
        "ENERGY_MONTH_RUN_CONCURRENCY",
        1,
        _positive,
        "month runs the run queue starts at once (`dagster.yaml`); runs of one month take turns",
    )
    backlog_range_months: int = _var(
        "ENERGY_BACKLOG_RANGE_MONTHS",
        4,
        int,
        "months of history found at once that the months sensor builds as single-run backfills"
        " over their consecutive months, the newest month and corrections in runs of their own"
        " (0: a run per month; only with ENERGY_MONTH_RUN_CONCURRENCY 1)",
    )
    max_concurrent: int | None = _var(
        "ENERGY_MAX_CONCURRENT",
        None,
        _optional(int),
        "steps of a run in processes of their own, this many at once"
        " (unset: all steps in the run's process, faster on 2 cores)",
    )
    anomaly_processes: int | None = _var(
        "ENERGY_ANOMALY_PROCESSES",
        None,
        _optional(_positive),
        "processes that judge a month's meter shards at once (ENERGY_ANOMALY_SHARD_METERS;"
        " unset: one per CPU)",
    )
    executor: str = _var(
        "ENERGY_EXECUTOR",
        "in-process",
        _executor,
        "where the steps of runs execute: `in-process` (the run's process, or ENERGY_MAX_CONCURRENT"
        " processes), or `celery` (on `energy worker` processes, through the broker)",
    )
    celery_broker: str = _var(
        "ENERGY_CELERY_BROKER",
        "amqp://guest:guest@127.0.0.1:5672//",
        str,
        "the Celery broker (RabbitMQ) of ENERGY_EXECUTOR=celery",
    )
    celery_backend: str = _var(
        "ENERGY_CELERY_BACKEND",
        "redis://127.0.0.1:6379/0",
        str,
        "the Celery result backend (Redis) of ENERGY_EXECUTOR=celery",
    )
    celery_queues: str = _var(
        "ENERGY_CELERY_QUEUES",
        "energy",
        str,
        "prefix of the Celery queues: dbt steps go to `<prefix>-dbt`, Python ML steps to"
        " `<prefix>-ml`",
    )
    warehouse_slots: int = _var(
        "ENERGY_WAREHOUSE_SLOTS",
        2,
        _positive,
        "steps of all runs together that may work the warehouse at once (the Dagster pool"
        " `warehouse`), with ENERGY_EXECUTOR=celery",
    )
    forecasts: bool = _var(
        "ENERGY_FORECASTS",
        True,
        _flag,
        "backtest each rebuilt month and refresh the live forecast (`off` leaves forecasting out)",
    )
    backtest_meters: int | None = _var(
        "ENERGY_BACKTEST_METERS",
        50,
        _count_or_all,
        "single meters in the monthly backtest, and that the live meter model trains on (a fixed"
        " sample; `all`)",
    )
    customer_plots: int = _var(
        "ENERGY_CUSTOMER_PLOTS",
        25,
        int,
        "customers drawn one by one per month, largest first; others with `energy plot`",
    )
    forecast_issue: str = _var(
        "ENERGY_FORECAST_ISSUE",
        "D-1 10:00",
        str,
        "when forecasts are issued and what they cover: `D-1 10:00` (10:00 local on the day"
        " before, for the whole day), or `every 6h` (intraday, ENERGY_FORECAST_HORIZON_HOURS"
        " ahead; `every 1h` with 1 is next-hour)",
    )
    forecast_horizon_hours: float = _var(
        "ENERGY_FORECAST_HORIZON_HOURS",
        24.0,
        float,
        "how far an intraday (`every Nh`) forecast reaches",
    )
    forecast_train_days: int | None = _var(
        "ENERGY_FORECAST_TRAIN_DAYS",
        None,
        _count_or_all,
        "days of history a model may learn from (`all`: every day, older ones sampled)",
    )
    forecast_rounds: int = _var(
        "ENERGY_FORECAST_ROUNDS",
        300,
        _positive,
        "boosting rounds of each forecast model (learning rate 0.05): fewer train faster and"
        " forecast less well",
    )
    forecast_bag: int = _var(
        "ENERGY_FORECAST_BAG",
        3,
        _positive,
        "boosters of different seeds averaged in each forecast model, stored as one: 1 takes a"
        " third of the CPU (on 2 cores two thirds of the time: the three train at once, a thread"
        " each) and forecasts less well",
    )
    forecast_min_history_days: int = _var(
        "ENERGY_FORECAST_MIN_HISTORY_DAYS",
        14,
        int,
        "days of readings a target needs before the model forecasts it (before: the 4-week"
        " same-slot mean)",
    )
    holiday_country: str | None = _var(
        "ENERGY_HOLIDAY_COUNTRY",
        None,
        str,
        "public holidays as features, e.g. `GB` (the `holidays` package)",
    )
    holiday_subdiv: str | None = _var(
        "ENERGY_HOLIDAY_SUBDIV", None, str, "the region of the holidays, e.g. `ENG`"
    )
    weather_sites: tuple[tuple[str, float, float], ...] = _var(
        "ENERGY_WEATHER_SITES",
        (),
        _sites,
        "sites whose weather the `weather_daily` schedule fetches from Open-Meteo, as"
        " `site=latitude,longitude;...` (unset: none)",
    )
    server_root: Path = _var(
        "ENERGY_SERVER_ROOT",
        Path("/var/lib/energy-assets"),
        Path,
        "as root: where the embedded server's data directory (linked from the home) and a copy"
        " of its binaries live when the `pgserver` user cannot reach them where they are",
    )
    anomaly: AnomalyThresholds = field(default_factory=AnomalyThresholds)
    """The detectors' thresholds (`ENERGY_ANOMALY_*`)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        settings = _read(cls, environ, anomaly=AnomalyThresholds.from_env(environ))
        return settings.with_home(settings.home)

    def with_home(self, home: Path) -> Settings:
        return replace(self, home=home.expanduser().resolve())

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
    def unpacking(self) -> Path:
        """Where dropped archives are unpacked while their members load."""
        return self.home / "unpacking"

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def secrets(self) -> Path:
        """Generated passwords of the embedded server, as libpq passfiles (0700 folder)."""
        return self.home / "secrets"

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def anomaly_workers(self) -> int:
        """Processes that judge a month's meter shards at once: ENERGY_ANOMALY_PROCESSES, else
        one per CPU this process may run on."""
        return self.anomaly_processes or len(os.sched_getaffinity(0))

    def ensure_dirs(self) -> None:
        for path in (self.dropbox, self.archive, self.quarantine, self.dagster_home):
            path.mkdir(parents=True, exist_ok=True)

    def has_home(self) -> bool:
        """A home that `energy up`, `run`, `setup` or `sample` made: its database for the
        embedded server (initdb ran), the folder itself with an external one."""
        if self.embedded:
            return (self.pgdata / "PG_VERSION").exists()
        return self.home.is_dir()

    def require_home(self) -> None:
        if not self.has_home():
            raise NoHomeError(
                f"no platform home at {self.home}; run `energy up` there or set ENERGY_HOME"
            )


PROCESS_VARIABLES = (
    "DAGSTER_HOME",
    "ENERGY_WAREHOUSE_URL",
    "ENERGY_PGHOST",
    "ENERGY_PGPORT",
    "ENERGY_PGUSER",
    "ENERGY_PGPASSWORD",
    "ENERGY_PGDATABASE",
    "ENERGY_DAGSTER_PGPASSWORD",
)
"""Set by the platform for its own processes (`export`): Dagster's home, the warehouse for the
code location, dbt's connection (`dbt_project/profiles.yml`), the password of Dagster's storage
(`dagster.yaml` names the variable, never the secret)."""


def variables(cls: type = Settings) -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of every field of `cls` read from the environment."""
    rows = []
    for f in fields(cls):
        if "env" in f.metadata:
            default = "unset" if f.default is None else str(f.default)
            rows.append((f.metadata["env"], default, f.metadata["doc"]))
    return rows


VARIABLES = (
    *(name for cls in (Settings, AnomalyThresholds) for name, _, _ in variables(cls)),
    *PROCESS_VARIABLES,
)
"""Every variable the platform reads or sets: tests and benchmarks clear them for a platform
of their own."""


LOCATION_VARIABLES = (
    "ENERGY_HOME",
    "ENERGY_DATABASE_URL",
    "ENERGY_DAGSTER_DATABASE_URL",
    "ENERGY_ANALYST_URL",
    "ENERGY_PG_PORT",
    "ENERGY_DASHBOARD_PORT",
    "ENERGY_SERVER_ROOT",
    *PROCESS_VARIABLES,
)
"""Where a platform lives and how its processes reach it: a benchmark clears these for a
platform of its own and keeps the caller's other settings; the dashboard gets none of them
but the analyst's URL."""


def export(values: Mapping[str, str]) -> None:
    """Put platform variables (the resolved home, the process variables) into this process's
    environment, for the Dagster
    instance and resources here and for every process started from here."""
    unknown = set(values) - set(VARIABLES)
    if unknown:
        raise ValueError(f"not platform variables: {sorted(unknown)}")
    os.environ.update(values)


@contextlib.contextmanager
def environment_restored() -> Iterator[None]:
    """This process's environment as it was before the block, whatever the block did to it."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def environment_added(values: Mapping[str, str]) -> Iterator[None]:
    """`values` in this process's environment for the block, for a library that hands a copy
    of it to the process it starts (dagster-dbt's dbt)."""
    with environment_restored():
        os.environ.update(values)
        yield


def environment_with_path(first: Path) -> dict[str, str]:
    """This process's environment with `first` at the head of PATH, for a tool that starts
    others by name (dagster-celery runs `celery`) from a virtual environment not activated."""
    return {**os.environ, "PATH": os.pathsep.join([str(first), os.environ.get("PATH", "")])}
