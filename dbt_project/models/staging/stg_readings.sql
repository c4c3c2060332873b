select
    meter_id,
    interval_start,
    interval_seconds,
    channel,
    value,
    file_id
from {{ source('raw', 'readings') }}
