select
    file_id,
    meter_id,
    interval_seconds,
    first_interval,
    last_interval,
    rows
from {{ source('raw', 'file_meters') }}
