{{ config(materialized='ephemeral') }}

-- The run's month of demand per customer and interval (see int_meters_customers): a
-- customer's meters are added up. An interval is 'ok' only when every meter of the customer
-- has an 'ok' reading; the customer marts describe consumption and leave 'gap' and 'suspect'
-- ones out. An ephemeral helper of customer_behavior and customer_hourly_profile, compiled
-- into them: it reads a mart (fct_intervals_clean), so it sits beside them, not below.
with clean as (
    select meter_id, interval_start, interval_seconds, demand_kw, quality
    from {{ ref('fct_intervals_clean') }}
    where {{ in_month_window('interval_start') }}
),

meters as (
    select
        meter_id,
        customer_id,
        tariff,
        timezone,
        count(*) over (partition by customer_id) = 1 as sole_meter
    from {{ ref('int_meters_customers') }}
),

-- Customer ids sort and group in "C" order (byte order, the same groups as any deterministic
-- collation, and cheaper to compare); the marts give them back in the default collation.
meter_intervals as not materialized (
    select
        meters.customer_id collate "C" as customer_id,  -- noqa: RF02
        meters.sole_meter,
        clean.interval_start,
        meters.tariff,
        coalesce(meters.timezone, '{{ run_var("timezone") }}') as tz,
        clean.demand_kw,
        clean.demand_kw * clean.interval_seconds / 3600.0 as energy_kwh,
        clean.quality
    from clean
    inner join meters on meters.meter_id = clean.meter_id
),

-- A customer with one meter (every household of a smart-meter trial) is that meter's rows as
-- they are: the sums below would return the same values, at the cost of sorting the month.
customer_intervals as (
    select customer_id, interval_start, tariff, tz, demand_kw, energy_kwh, quality
    from meter_intervals
    where sole_meter
    union all
    select
        customer_id,
        interval_start,
        min(tariff) as tariff,
        min(tz) as tz,
        sum(demand_kw) as demand_kw,
        sum(energy_kwh) as energy_kwh,
        case
            when bool_and(quality = 'ok') then 'ok'
            when bool_or(quality = 'gap') then 'gap'
            when bool_or(quality = 'suspect') then 'suspect'
            else 'estimated'
        end as quality
    from meter_intervals
    where not sole_meter
    group by customer_id, interval_start
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
