select
    meter_id,
    name,
    feeder,
    customer_id,
    multiplier,
    site_id,
    timezone,
    tariff,
    attributes
from {{ source('raw', 'meters') }}
