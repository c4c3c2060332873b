-- Anomalies found per month: rule checks, the IsolationForest over daily shapes, day-ahead
-- forecast residuals and the gaps of marts.fct_gaps. List-partitioned by month; the anomalies
-- asset creates a month's partition before it first writes the month.
create table if not exists ml.anomalies (
    month_start    date not null,
    target_kind    text not null,              -- meter, feeder, system, meters_total
    target_id      text not null,
    interval_start timestamptz,                -- flagged span (null for a single flagged day)
    interval_end   timestamptz,
    day            date,                       -- flagged day, the first of consecutive days
                                               -- (whose span is then in interval_start/end)
    kind           text not null,              -- spike, flatline, drop_to_zero, gap, ...
    score          double precision not null,  -- how far past its threshold (>= 1)
    detector       text not null,              -- rules, isolation_forest, forecast_residual, fct_gaps
    reason         text not null,
    check (interval_start is not null or day is not null)
) partition by list (month_start);
-- What an analyst does with a finding: how urgent it is, what to check, and the detector's
-- numbers (ratio, shift, expected and observed energy, ...) as structured data.
alter table ml.anomalies
    add column if not exists severity text check (severity in ('low', 'medium', 'high')),
    add column if not exists action text,
    add column if not exists details jsonb;
create index if not exists anomalies_target on ml.anomalies (target_kind, target_id);

-- One row per month run: how many intervals were examined and how many findings came out, so
-- the anomaly-rate check compares a month with the months before it without rescanning them.
create table if not exists ml.anomaly_months (
    month_start date primary key,
    intervals   bigint not null,
    findings    integer not null,
    rate        double precision,                -- findings per 1000 intervals
    computed_at timestamptz not null default now()
);
