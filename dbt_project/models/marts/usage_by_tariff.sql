-- Usage by tariff group (LCL Std / ToU) per month, from the monthly customer behaviour.
select
    coalesce(tariff, 'unknown') as tariff,
    window_start_local as month_start_local,
    count(distinct customer_id) as customers,
    sum(total_kwh) as total_kwh,
    avg(total_kwh) as mean_kwh_per_customer,
    avg(mean_kw) as mean_kw,
    avg(max_kw) as mean_peak_kw,
    avg(night_share) as mean_night_share
from {{ ref('customer_behavior') }}
where window_length = 'month'
group by coalesce(tariff, 'unknown'), window_start_local
