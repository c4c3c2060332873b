select
    feeder,
    count(*) as meters,
    array_agg(meter_id order by meter_id) as meter_ids
from {{ ref('stg_meters') }}
where feeder is not null
group by feeder
