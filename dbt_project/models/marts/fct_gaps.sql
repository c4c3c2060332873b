-- Runs of consecutive missing intervals per meter, whole (a gap may cross a month boundary),
-- estimated ones included (their readings are missing all the same). A view over the missing
-- rows of the clean grid, read through its partial index.
with gap_rows as (
    select
        meter_id,
        interval_start,
        interval_end,
        interval_start - (
            row_number() over (partition by meter_id order by interval_start)
            * interval_seconds * interval '1 second'
        ) as run_anchor
    from {{ ref('fct_intervals_clean') }}
    where quality in ('gap', 'estimated')
)

select
    meter_id,
    min(interval_start) as gap_start,
    max(interval_end) as gap_end,
    count(*) as missing_intervals
from gap_rows
group by meter_id, run_anchor
