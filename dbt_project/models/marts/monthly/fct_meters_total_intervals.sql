{{ config(
    pre_hook="{{ delete_month_window('interval_start') }}",
    indexes=[{'columns': ['interval_start'], 'unique': True}],
) }}

-- The meters on no feeder (households) added up per interval, in kW: the forecasts' and the
-- dashboard's "meters total", read from here instead of a sum over every interval they cover.
with clean as (
    select
        interval_start,
        quality,
        -- net where the meter logs kW, else imported kW
        coalesce(kw_net, demand_kw) as kw
    from {{ ref('fct_intervals_clean') }}
    where {{ in_month_window('interval_start') }}
        and feeder is null
)

select
    interval_start,
    sum(kw) as kw_total,
    count(kw) as meters_reporting,
    count(*) as meters_expected,
    count(*) filter (where quality = 'estimated') as meters_estimated
from clean
group by interval_start
