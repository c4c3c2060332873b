-- One row per meter: the span its clean grid covers and its interval length (from its latest file).
select
    meter_id,
    min(first_interval) as first_interval,
    max(last_interval) as last_interval,
    (array_agg(interval_seconds order by file_id desc))[1] as interval_seconds
from {{ ref('stg_file_meters') }}
group by meter_id
