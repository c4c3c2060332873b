{{ config(
    pre_hook="{{ delete_month_window('window_start') }}",
    indexes=[{'columns': ['customer_id', 'window_length', 'window_start'], 'unique': True}],
) }}

-- Behaviour per customer over 1-day, 1-week and 1-month windows (local calendar of the meter).
-- Weeks start on Monday. Windows are clipped to the run's UTC month so that each month
-- rebuilds on its own: for meters on UTC they are exact; for a local timezone the window that
-- straddles a UTC month boundary appears as two parts (window_start says where each begins).
with intervals as (
    select * from {{ ref('customer_intervals') }}
    where quality = 'ok' and demand_kw is not null
),

windowed as (
    select
        intervals.*,
        w.window_length,
        w.window_start_local,
        greatest(w.window_start_local at time zone intervals.tz, {{ month_start() }})
            as window_start
    from intervals
    cross join lateral (
        values
        ('day', date_trunc('day', intervals.local_start)),
        (
            'week',
            greatest(
                date_trunc('week', intervals.local_start),
                date_trunc('month', intervals.local_start)
            )
        ),
        ('month', date_trunc('month', intervals.local_start))
    ) as w (window_length, window_start_local)
)

-- Peak hour from the group's own sort (the earliest interval of the highest demand), so the
-- windows are sorted once rather than sorted for the peaks and joined back.
select
    customer_id,
    window_length,
    window_start,
    min(window_start_local) as window_start_local,
    min(tariff) as tariff,
    max(demand_kw) as max_kw,
    avg(demand_kw) as mean_kw,
    sum(energy_kwh) as total_kwh,
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
from windowed
group by customer_id, window_length, window_start
