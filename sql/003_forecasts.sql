-- Day-ahead forecasts, their scores and the models that made them.

-- Every trained booster, so any forecast can be traced to the model and data behind it.
create table if not exists ml.models (
    model_version  text primary key,           -- content hash of the booster
    name           text not null,              -- e.g. day_ahead/feeder/PT15M
    target_kind    text not null,
    resolution     interval not null,
    trained_at     timestamptz not null,
    train_start    timestamptz not null,       -- first and last interval the model learned from
    train_end      timestamptz not null,
    features       text[] not null,
    params         jsonb not null,
    metrics        jsonb not null,             -- calibration-week scores and band widening
    booster        bytea not null              -- XGBoost UBJSON, zlib-compressed
);

-- One row per target interval and forecast: the backtest's (kind 'backtest', with the actual)
-- and the live next-day forecast (kind 'live', actual unknown when issued).
create table if not exists ml.forecasts (
    run_kind       text not null check (run_kind in ('backtest', 'live')),
    month_start    date not null,              -- month of the forecast day
    target_kind    text not null,              -- meter, feeder, system, meters_total
    target_id      text not null,
    issued_at      timestamptz not null,
    interval_start timestamptz not null,
    horizon        interval not null,          -- interval_start - issued_at
    p10            double precision,
    p50            double precision,
    p90            double precision,
    actual         double precision,
    baseline       double precision,           -- seasonal naive: same local time a week earlier
    model_version  text not null references ml.models (model_version),
    primary key (run_kind, target_kind, target_id, interval_start, issued_at)
);
create index if not exists forecasts_month on ml.forecasts (run_kind, month_start);

-- Backtest scores per target and month; the baseline's beside the model's.
create table if not exists ml.backtest_metrics (
    month_start      date not null,
    target_kind      text not null,
    target_id        text not null,
    intervals        integer not null,
    mae              double precision,
    rmse             double precision,
    wape             double precision,
    mase             double precision,
    pinball          double precision,
    coverage_p10_p90 double precision,
    baseline_mae     double precision,
    baseline_wape    double precision,
    primary key (month_start, target_kind, target_id)
);
