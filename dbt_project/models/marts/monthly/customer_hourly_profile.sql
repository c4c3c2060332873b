{{ config(
    pre_hook="{{ delete_month_window('month_start') }}",
    indexes=[{'columns': ['customer_id', 'month_start', 'day_type', 'hour'], 'unique': True}],
) }}

-- Mean demand per customer by local hour of day and day type, per (UTC) month.
select
    customer_id collate "default" as customer_id,
    date_trunc('month', interval_start, 'UTC') as month_start,
    day_type,
    local_hour as hour,
    avg(demand_kw) as mean_kw,
    count(*) as intervals
from {{ ref('customer_intervals') }}
where quality = 'ok' and demand_kw is not null
group by customer_id, date_trunc('month', interval_start, 'UTC'), day_type, local_hour
