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

-- same_slot: the 4-week same-slot mean (the same local time 1-4 weeks earlier), a second
--   baseline and the fallback forecast. verdict: `ok` where the model forecast, else the
--   target's data verdict (insufficient_history, completeness, flatline) and the forecast is
--   the 4-week same-slot mean (model_version same_slot_mean_4w).
alter table ml.forecasts add column if not exists same_slot double precision;
alter table ml.forecasts add column if not exists verdict text;
-- verdict: as in ml.forecasts (several, comma-separated, when it changed within the month);
-- weather_source: forecast, observed, mixed or none: whether the weather each forecast used
--   was a forecast available at its issue time or the observation standing in for one, and
--   weather_forecast_share how much of it was a forecast.
alter table ml.backtest_metrics add column if not exists same_slot_wape double precision;
alter table ml.backtest_metrics add column if not exists verdict text;
alter table ml.backtest_metrics add column if not exists weather_source text;
alter table ml.backtest_metrics add column if not exists weather_forecast_share double precision;
-- Per target (meter, customer, feeder ...), the model's scores on the target's forecasts in
-- the backtest: {"<target_id>": {"intervals", "mse", "r2", "wape"}}.
alter table ml.models add column if not exists target_metrics jsonb not null default '{}';
insert into ml.models values (
    'same_slot_mean_4w', 'fallback/same_slot_mean_4w', 'any', interval '0', 'epoch', 'epoch',
    'epoch', '{}', '{}', '{}', ''
) on conflict (model_version) do nothing;

-- Seed 000's customer_model table: the global meter model's scores on each customer's meter.
create or replace view ml.customer_model as
select
    coalesce(meter.customer_id, scores.key) as customer_ref,
    scores.key as meter_id,
    model.model_version,
    model.trained_at,
    (scores.value ->> 'intervals')::integer as intervals,
    (scores.value ->> 'mse')::double precision as mse,
    (scores.value ->> 'r2')::double precision as r2_score,
    (scores.value ->> 'wape')::double precision as wape
from ml.models as model
cross join lateral jsonb_each(model.target_metrics) as scores
left join raw.meters as meter on meter.meter_id = scores.key
where model.target_kind = 'meter';
