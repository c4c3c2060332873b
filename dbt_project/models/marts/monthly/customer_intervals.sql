{{ config(materialized='ephemeral') }}

-- The run's month of demand per customer and interval (see int_meters_customers): a
-- customer's meters are added up. An interval is 'ok' only when every meter of the customer
-- has an 'ok' reading; the customer marts describe consumption and leave 'gap' and 'suspect'
-- ones out. An ephemeral helper of customer_behavior and customer_hourly_profile, compiled
-- into them: it reads a mart (fct_intervals_clean), so it sits beside them, not below.
with clean as (
    select *
    from {{ ref('fct_intervals_clean') }}
    where {{ in_month_window('interval_start') }}
),

meters as (
    select meter_id, customer_id, tariff, timezone from {{ ref('int_meters_customers') }}
),

customer_intervals as (
    select
        meters.customer_id,
        clean.interval_start,
        min(meters.tariff) as tariff,
        min(coalesce(meters.timezone, '{{ var("timezone") }}')) as tz,
        sum(clean.demand_kw) as demand_kw,
        sum(clean.demand_kw * clean.interval_seconds / 3600.0) as energy_kwh,
        case
            when bool_and(clean.quality = 'ok') then 'ok'
            when bool_or(clean.quality = 'gap') then 'gap'
            when bool_or(clean.quality = 'suspect') then 'suspect'
            else 'estimated'
        end as quality
    from clean
    inner join meters on meters.meter_id = clean.meter_id
    group by meters.customer_id, clean.interval_start
),

localised as (
    select
        *,
        interval_start at time zone tz as local_start
    from customer_intervals
)

select
    *,
    extract(hour from local_start)::int as local_hour,
    case when extract(isodow from local_start) >= 6 then 'weekend' else 'weekday' end as day_type
from localised
