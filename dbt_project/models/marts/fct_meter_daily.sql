{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    tags=['monthly'],
    pre_hook="{{ delete_month_window('day_start') }}",
    indexes=[{'columns': ['meter_id', 'day_start'], 'unique': True}],
) }}

-- Energy and demand per meter and UTC day; completeness against the day's expected intervals.
with clean as (
    select *
    from {{ ref('fct_intervals_clean') }}
    where interval_start >= {{ month_start() }}
      and interval_start < {{ month_end() }}
)

select
    meter_id,
    date_trunc('day', interval_start, 'UTC') as day_start,
    sum(demand_kw * interval_seconds / 3600.0) as energy_kwh,
    avg(demand_kw) as mean_kw,
    max(demand_kw) as peak_kw,
    sum(kw_del * interval_seconds / 3600.0) as delivered_kwh,
    sum(kw_rec * interval_seconds / 3600.0) as received_kwh,
    sum(kw_net * interval_seconds / 3600.0) as net_kwh,
    count(*) filter (where quality = 'ok')::float / (86400 / min(interval_seconds))
        as completeness
from clean
group by meter_id, date_trunc('day', interval_start, 'UTC')
