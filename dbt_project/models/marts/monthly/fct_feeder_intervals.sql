{{ config(
    pre_hook="{{ delete_month_window('interval_start') }}",
    indexes=[{'columns': ['feeder', 'interval_start'], 'unique': True}],
) }}

-- Feeder load per interval in MW / MVA; meters without metadata have no feeder and stay out.
-- Suspect intervals count as measured: a reversed CT's negative kW is in the sums. Estimated
-- intervals are in the sums and count as reporting; meters_estimated says how many there are.
with clean as (
    select *
    from {{ ref('fct_intervals_clean') }}
    where {{ in_month_window('interval_start') }}
        and feeder is not null
),

summed as (
    select
        feeder,
        interval_start,
        sum(kw_del) / 1000 as mw_del,
        sum(kw_rec) / 1000 as mw_rec,
        sum(kva_del) / 1000 as mva_del,
        sum(kva_rec) / 1000 as mva_rec,
        count(*) filter (where quality <> 'gap') as meters_reporting,
        count(*) filter (where quality = 'estimated') as meters_estimated,
        count(*) as meters_expected
    from clean
    group by feeder, interval_start
),

netted as (
    select
        *,
        mw_del - coalesce(mw_rec, 0) as mw_net,
        mva_del - coalesce(mva_rec, 0) as mva_net
    from summed
)

select
    feeder,
    interval_start,
    mw_del,
    mw_rec,
    mva_del,
    mva_rec,
    mw_net,
    mva_net,
    mw_net / nullif(mva_net, 0) as pf_net,
    meters_reporting,
    meters_expected,
    meters_estimated
from netted
