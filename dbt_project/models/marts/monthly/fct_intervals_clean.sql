{{ config(
    pre_hook="{{ delete_month_window('interval_start') }}",
    post_hook="create index if not exists fct_intervals_clean_missing on {{ this }} (meter_id, interval_start) where quality in ('gap', 'estimated')",
    indexes=[
        {'columns': ['interval_start']},
        {'columns': ['meter_id', 'interval_start'], 'unique': True},
    ],
) }}

-- sqlfluff:indentation:template_blocks_indent:False
-- (the estimates' CTEs and their alternative sit at the top level, not inside the if)

-- A complete interval grid per meter, from its first to its last reading, clipped to the month.
with spans as (
    select meter_id, first_interval, last_interval, interval_seconds
    from {{ ref('int_meter_spans_summarized') }}
    where first_interval < {{ month_end() }}
        and last_interval >= {{ month_start() }}
),

grid as (
    select
        spans.meter_id,
        spans.interval_seconds,
        grid_point.interval_start
    from spans
    cross join lateral generate_series(
        -- first grid point at or after the month start, on the meter's own grid
        spans.first_interval + ceil(
            greatest(extract(epoch from {{ month_start() }} - spans.first_interval), 0)
            / spans.interval_seconds
        ) * spans.interval_seconds * interval '1 second',
        least(spans.last_interval, {{ month_end() }} - interval '1 microsecond'),
        spans.interval_seconds * interval '1 second'
    ) as grid_point (interval_start)
),

readings as (
    select * from {{ ref('int_readings_pivoted') }}
),

meters as (
    select meter_id, feeder, multiplier from {{ ref('stg_meters') }}
),

measured as (
    select
        grid.meter_id,
        grid.interval_start,
        grid.interval_start + grid.interval_seconds * interval '1 second' as interval_end,
        grid.interval_seconds,
        meters.feeder,
        meters.multiplier,
        meters.meter_id is not null as has_metadata,
        readings.kw_del * coalesce(meters.multiplier, 1) as kw_del,
        readings.kw_rec * coalesce(meters.multiplier, 1) as kw_rec,
        readings.kva_del * coalesce(meters.multiplier, 1) as kva_del,
        readings.kva_rec * coalesce(meters.multiplier, 1) as kva_rec,
        -- Imported demand whatever the source logs: average kW delivered or imported, or the
        -- interval's energy spread over its length.
        coalesce(
            readings.kw_del,
            readings.kw_import,
            readings.kwh_import * 3600.0 / grid.interval_seconds,
            readings.electricity_kwh * 3600.0 / grid.interval_seconds
        ) * coalesce(meters.multiplier, 1) as demand_kw,
        -- Bi-directional meters keep both directions; net is derived, never stored instead.
        (readings.kw_del - coalesce(readings.kw_rec, 0)) * coalesce(meters.multiplier, 1) as kw_net,
        readings.power_factor,
        -- 'suspect': a delivered or imported value below zero (a reversed CT, a sign convention),
        -- kept as measured; see dbt_project/README.md for how each mart counts it.
        case
            when readings.meter_id is null then 'gap'
            when
                least(
                    readings.kw_del,
                    readings.kva_del,
                    readings.kw_import,
                    readings.kwh_import,
                    readings.electricity_kwh
                ) < 0
                then 'suspect'
            else 'ok'
        end as quality
    from grid
    left join readings
        on readings.meter_id = grid.meter_id
        and readings.interval_start = grid.interval_start
    left join meters
        on meters.meter_id = grid.meter_id
)
{%- if run_var('estimate_max_intervals') | int > 0 %}
,

-- Gaps and islands: a gap row belongs to the run after the last reading before it
-- (`run_before`) and before the first reading after it (`run_after`).
runs as (
    select
        *,
        count(*) filter (where quality <> 'gap') over (
            partition by meter_id order by interval_start
        ) as run_before,
        count(*) filter (where quality <> 'gap') over (
            partition by meter_id order by interval_start desc
        ) as run_after
    from measured
),

-- Per gap row: the run's length, its place in the run, the readings either side and the
-- meter's same-slot (UTC time of day) mean over the window's readings.
neighbours as (
    select
        *,
        count(*) filter (where quality = 'gap') over (partition by meter_id, run_before)
            as gap_intervals,
        count(*) filter (where quality = 'gap') over (
            partition by meter_id, run_before order by interval_start
        ) as gap_position,
        {%- for column in estimated_columns() %}
        first_value({{ column }}) over (
            partition by meter_id, run_before order by interval_start
        ) as before_{{ column }},
        first_value({{ column }}) over (
            partition by meter_id, run_after order by interval_start desc
        ) as after_{{ column }},
        avg({{ column }}) filter (where quality <> 'gap') over (
            partition by meter_id, interval_start::time
        ) as profile_{{ column }},
        {%- endfor %}
        count(*) filter (where quality <> 'gap') over (
            partition by meter_id, interval_start::time
        ) as profile_days
    from runs
),

estimated as (
    select
        *,
        case
            when quality <> 'gap' or gap_intervals > {{ run_var('estimate_max_intervals') }}
                then null
            when gap_intervals <= {{ run_var('estimate_linear_intervals') }}
                and before_demand_kw is not null and after_demand_kw is not null
                then 'linear'
            when profile_days > 0 then 'profile'
        end as estimation_method
    from neighbours
),

filled as (
    select
        meter_id,
        interval_start,
        interval_end,
        interval_seconds,
        feeder,
        multiplier,
        has_metadata,
        {%- for column in estimated_columns() %}
        case estimation_method
            when 'linear'
                then before_{{ column }} + (after_{{ column }} - before_{{ column }})
                    * gap_position / (gap_intervals + 1)
            when 'profile' then profile_{{ column }}
            else {{ column }}
        end as {{ column }},
        {%- endfor %}
        kw_net,
        power_factor,
        quality,
        estimation_method
    from estimated
)

select
    meter_id,
    interval_start,
    interval_end,
    interval_seconds,
    feeder,
    multiplier,
    has_metadata,
    {%- for column in estimated_columns() %}
    {{ column }},
    {%- endfor %}
    -- A measured row keeps its kw_net as computed from the readings.
    case
        when estimation_method is null then kw_net
        else kw_del - coalesce(kw_rec, 0)
    end as kw_net,
    power_factor,
    case when estimation_method is null then quality else 'estimated' end as quality,
    -- How an 'estimated' row (it had no reading) got its values: 'linear' between the readings
    -- either side of a short gap, 'profile' from the meter's same-slot (UTC time of day) mean
    -- over the window's readings, and null for every measured row, whose values are untouched.
    estimation_method
from filled
{%- else %}

-- Estimates off (the default): every row as measured.
select
    *,
    null::text as estimation_method
from measured
{%- endif %}
