-- The run's month window of readings, one row per meter and interval, one column per channel.
-- When several files carry the same meter, interval and channel, the latest file wins.
with window_readings as (
    select meter_id, interval_start, channel, value, file_id
    from {{ ref('stg_readings') }}
    where {{ in_month_window('interval_start') }}
),

latest_readings as (
    select distinct on (meter_id, interval_start, channel)
        meter_id, interval_start, channel, value
    from window_readings
    order by meter_id, interval_start, channel, file_id desc
)

select
    meter_id,
    interval_start,
    max(value) filter (where channel = 'kw_del') as kw_del,
    max(value) filter (where channel = 'kw_rec') as kw_rec,
    max(value) filter (where channel = 'kva_del') as kva_del,
    max(value) filter (where channel = 'kva_rec') as kva_rec,
    max(value) filter (where channel = 'kw_import') as kw_import,
    max(value) filter (where channel = 'kwh_import') as kwh_import,
    max(value) filter (where channel = 'electricity_kwh') as electricity_kwh,
    max(value) filter (where channel = 'power_factor') as power_factor
from latest_readings
group by meter_id, interval_start
