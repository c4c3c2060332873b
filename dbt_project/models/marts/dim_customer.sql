-- Customers with their meters, tariff group and attributes (e.g. the ACORN class of LCL homes).
select
    customer_id,
    count(*) as meters,
    array_agg(meter_id order by meter_id) as meter_ids,
    min(tariff) as tariff,
    jsonb_object_agg(meter_id, attributes) as attributes_by_meter
from {{ ref('int_meters_customers') }}
group by customer_id
