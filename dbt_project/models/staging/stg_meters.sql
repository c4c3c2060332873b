select
    meter_id,
    name,
    feeder,
    customer_id,
    multiplier,
    site_id,
    timezone
from {{ source('raw', 'meters') }}
