-- The one definition of a customer: every meter on no feeder (known from metadata or from its
-- readings) belongs to its metadata's customer, or is its own customer when it has none.
-- Feeder meters are never customers. dim_customer, the customer marts and the exports use it.
with meters as (
    select meter_id, feeder, customer_id, tariff, timezone, attributes
    from {{ ref('stg_meters') }}
),

known_meters as (
    select meter_id from meters
    union
    select meter_id from {{ ref('int_meter_spans_summarized') }}
)

select
    known_meters.meter_id,
    coalesce(meters.customer_id, known_meters.meter_id) as customer_id,
    meters.tariff,
    meters.timezone,
    coalesce(meters.attributes, '{}') as attributes
from known_meters
left join meters on meters.meter_id = known_meters.meter_id
where meters.feeder is null
