{# Energy and demand per meter and UTC `grain` ('hour' or 'day', `seconds` long) from the clean
   intervals of the run's window. #}
{% macro meter_rollup(grain, seconds) -%}
with clean as (
    select
        *,
        -- The UTC hour or day as a fixed-length bin from a UTC midnight: the same as
        -- date_trunc(grain, interval_start, 'UTC'), without converting each row's time zone.
        date_bin('1 {{ grain }}', interval_start, '2000-01-01 00:00:00+00'::timestamptz)
            as period_start
    from {{ ref('fct_intervals_clean') }}
    where {{ in_month_window('interval_start') }}
),

periods as (
    select
        meter_id,
        period_start,
        sum(demand_kw * interval_seconds / 3600.0) as energy_kwh,
        avg(demand_kw) as mean_kw,
        max(demand_kw) as peak_kw,
        sum(kw_del * interval_seconds / 3600.0) as delivered_kwh,
        sum(kw_rec * interval_seconds / 3600.0) as received_kwh,
        sum(kw_net * interval_seconds / 3600.0) as net_kwh,
        count(*) filter (where quality <> 'gap') as intervals_read,
        min(interval_seconds) as interval_seconds,
        extract(epoch from min(interval_start) - period_start) as first_offset_s
    from clean
    group by meter_id, period_start
)

select
    meter_id,
    period_start as {{ grain }}_start,
    energy_kwh,
    mean_kw,
    peak_kw,
    delivered_kwh,
    received_kwh,
    net_kwh,
    -- Completeness: the share of the period's instants on the meter's grid that have a
    -- reading. The grid points before the period's first row and from it to the period's end
    -- are counted exactly, so a complete period is exactly 1 whatever the interval length
    -- (a 2-hour meter's hour holds one interval, not half of one).
    intervals_read::float / (
        floor(first_offset_s / interval_seconds)
        + ceil(({{ seconds }} - first_offset_s) / interval_seconds)
    ) as completeness
from periods
{%- endmacro %}
