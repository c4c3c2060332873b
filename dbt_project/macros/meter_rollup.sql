{# Energy and demand per meter and UTC `grain` ('hour' or 'day') from the clean intervals of the
   run's window. Completeness is the share of the period's expected intervals with a reading. #}
{% macro meter_rollup(grain, seconds) -%}
with clean as (
    select *
    from {{ ref('fct_intervals_clean') }}
    where {{ in_month_window('interval_start') }}
)

select
    meter_id,
    date_trunc('{{ grain }}', interval_start, 'UTC') as {{ grain }}_start,
    sum(demand_kw * interval_seconds / 3600.0) as energy_kwh,
    avg(demand_kw) as mean_kw,
    max(demand_kw) as peak_kw,
    sum(kw_del * interval_seconds / 3600.0) as delivered_kwh,
    sum(kw_rec * interval_seconds / 3600.0) as received_kwh,
    sum(kw_net * interval_seconds / 3600.0) as net_kwh,
    count(*) filter (where quality = 'ok')::float / ({{ seconds }} / min(interval_seconds))
        as completeness
from clean
group by meter_id, date_trunc('{{ grain }}', interval_start, 'UTC')
{%- endmacro %}
