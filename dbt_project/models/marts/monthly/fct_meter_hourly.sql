{{ config(
    pre_hook="{{ delete_month_window('hour_start') }}",
    indexes=[{'columns': ['meter_id', 'hour_start'], 'unique': True}],
) }}

-- Energy and demand per meter and UTC hour.
{{ meter_rollup('hour', 3600) }}
