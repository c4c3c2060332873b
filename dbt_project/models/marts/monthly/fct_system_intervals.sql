{{ config(
    pre_hook="{{ delete_month_window('interval_start') }}",
    indexes=[{'columns': ['interval_start'], 'unique': True}],
) }}

-- The whole system per interval: the feeders' net load added up.
with feeders as (
    select *
    from {{ ref('fct_feeder_intervals') }}
    where {{ in_month_window('interval_start') }}
),

summed as (
    select
        interval_start,
        sum(mw_net) as mw_total,
        sum(mva_net) as mva_total,
        count(mw_net) as feeders_reporting,
        sum(meters_estimated) as meters_estimated
    from feeders
    group by interval_start
)

select
    interval_start,
    mw_total,
    mva_total,
    mw_total / nullif(mva_total, 0) as pf_total,
    feeders_reporting,
    meters_estimated
from summed
