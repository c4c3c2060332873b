{{ config(
    pre_hook="{{ delete_month_window('day_start') }}",
    indexes=[{'columns': ['meter_id', 'day_start'], 'unique': True}],
) }}

-- Energy and demand per meter and UTC day.
{{ meter_rollup('day', 86400) }}
