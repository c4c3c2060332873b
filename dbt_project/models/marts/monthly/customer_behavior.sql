{{ config(
    pre_hook="{{ delete_month_window('window_start') }}",
    indexes=[{'columns': ['customer_id', 'window_length', 'window_start'], 'unique': True}],
) }}

-- Behaviour per customer over 1-day, 1-week and 1-month windows (local calendar of the meter).
-- Weeks start on Monday. Windows are clipped to the run's UTC month so that each month
-- rebuilds on its own: for meters on UTC they are exact; for a local timezone the window that
-- straddles a UTC month boundary appears as two parts (window_start says where each begins).

-- sqlfluff:indentation:template_blocks_indent:False
-- (one top-level select per window length, unioned)

with intervals as (
    select customer_id, tz, tariff, demand_kw, energy_kwh, local_start, local_hour, day_type
    from {{ ref('customer_intervals') }}
    where quality = 'ok' and demand_kw is not null
)
{% set windows = {
    'day': "date_trunc('day', local_start)",
    'week': "greatest(date_trunc('week', local_start), date_trunc('month', local_start))",
    'month': "date_trunc('month', local_start)",
} %}

-- One aggregate per window length over the same intervals (the CTE is computed once): three
-- sorts of the month's narrow intervals rather than one sort of three times as many wide rows
-- (one per interval and window). Within a window the rows are aggregated in the order of the peak
-- hour's sort (the earliest interval of the highest demand), as one sort serves both.
{%- for window_length, local_window_start in windows.items() %}
{%- if not loop.first %}

union all
{% endif %}
select
    customer_id collate "default" as customer_id,
    '{{ window_length }}' as window_length,
    window_start,
    min(window_start_local) as window_start_local,
    min(tariff) as tariff,
    max(demand_kw) as max_kw,
    avg(demand_kw) as mean_kw,
    sum(energy_kwh) as total_kwh,
    -- The earliest interval of the highest demand, from the group's own sort.
    (array_agg(local_hour order by demand_kw desc, local_start))[1] as peak_hour,
    -- Mean / max: exactly 1 for a flat window (the float mean of equal values can exceed
    -- them: 48 x 1.1 kW averages 1.1000000000000008), never above 1, none at zero demand.
    case
        when max(demand_kw) = 0 then null
        when min(demand_kw) = max(demand_kw) then 1.0
        else least(avg(demand_kw) / max(demand_kw), 1.0)
    end as load_factor,
    percentile_cont(0.05) within group (order by demand_kw) as base_load_kw,
    avg(demand_kw) filter (where day_type = 'weekday') as weekday_mean_kw,
    avg(demand_kw) filter (where day_type = 'weekend') as weekend_mean_kw,
    -- A part of a sum of non-negative terms over the whole sum: within [0, 1] as computed.
    sum(energy_kwh) filter (where local_hour < 6) / nullif(sum(energy_kwh), 0) as night_share
from (
    select
        *,
        {{ local_window_start }} as window_start_local,
        greatest(({{ local_window_start }}) at time zone tz, {{ month_start() }}) as window_start
    from intervals
) as windowed
group by customer_id, window_start
{%- endfor %}
