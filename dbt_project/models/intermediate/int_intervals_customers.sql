-- The run's month of clean intervals for customer meters (meters not on a feeder), with the
-- customer they belong to (the meter itself when no customer is known) and local calendar fields.
with clean as (
    select *
    from {{ ref('fct_intervals_clean') }}
    where interval_start >= {{ month_start() }}
      and interval_start < {{ month_end() }}
      and feeder is null
),

meters as (
    select meter_id, customer_id, tariff, timezone from {{ ref('stg_meters') }}
)

select
    clean.meter_id,
    coalesce(meters.customer_id, clean.meter_id) as customer_id,
    meters.tariff,
    clean.interval_start,
    clean.interval_seconds,
    clean.demand_kw,
    clean.demand_kw * clean.interval_seconds / 3600.0 as energy_kwh,
    clean.quality,
    local.tz,
    local.local_start,
    extract(hour from local.local_start)::int as local_hour,
    case when extract(isodow from local.local_start) >= 6 then 'weekend' else 'weekday' end
        as day_type
from clean
left join meters on meters.meter_id = clean.meter_id
cross join lateral (
    select
        coalesce(meters.timezone, '{{ var("timezone") }}') as tz,
        clean.interval_start at time zone coalesce(meters.timezone, '{{ var("timezone") }}')
            as local_start
) as local
