-- Every meter known from metadata or from readings, with its span and interval length.
select
    coalesce(meters.meter_id, spans.meter_id) as meter_id,
    meters.name,
    meters.feeder,
    meters.customer_id,
    meters.multiplier,
    meters.site_id,
    meters.timezone,
    meters.tariff,
    meters.attributes,
    spans.interval_seconds,
    spans.first_interval,
    spans.last_interval,
    meters.meter_id is not null as has_metadata
from {{ ref('stg_meters') }} as meters
full outer join {{ ref('int_meter_spans_summarized') }} as spans
    on spans.meter_id = meters.meter_id
