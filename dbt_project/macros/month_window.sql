{# The [month_start, month_end) window of this run as SQL timestamptz literals. #}
{% macro month_start() -%}
    '{{ var("month_start") }}'::timestamptz
{%- endmacro %}

{% macro month_end() -%}
    '{{ var("month_end") }}'::timestamptz
{%- endmacro %}

{# Pre-hook of a month-partitioned model: drop the window's rows, inside the same transaction
   as the insert that rebuilds them, so a rebuild is idempotent and removes vanished rows. #}
{% macro delete_month_window(time_column) -%}
    {% if is_incremental() %}
    delete from {{ this }}
    where {{ time_column }} >= {{ month_start() }} and {{ time_column }} < {{ month_end() }}
    {% endif %}
{%- endmacro %}

{# Serialise concurrent builds of one relation: a transaction-scoped advisory lock on its name. #}
{% macro lock_relation() -%}
    select pg_advisory_xact_lock(hashtext('{{ this }}'))
{%- endmacro %}
