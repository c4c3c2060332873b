{# The [month_start, month_end) window of this run as SQL timestamptz literals. #}
{% macro month_start() -%}
    '{{ run_var("month_start") }}'::timestamptz
{%- endmacro %}

{% macro month_end() -%}
    '{{ run_var("month_end") }}'::timestamptz
{%- endmacro %}

{# The one predicate "`column` falls in the run's month window", for model filters, the
   month pre-hook and (through get_where_subquery below) the `where` of data tests. #}
{% macro in_month_window(column) -%}
    {{ column }} >= {{ month_start() }} and {{ column }} < {{ month_end() }}
{%- endmacro %}

{# Data tests' `where` configs are rendered without macros, so they name the window as the
   text `in_month_window(<column>)`, expanded here with the macro above. #}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- set call = 'in_month_window\\((\\w+)\\)' -%}
        {%- set where = modules.re.sub(call, in_month_window('\\1'), where) -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}

{# Pre-hook of a month-partitioned model: drop the window's rows, inside the same transaction
   as the insert that rebuilds them, so a rebuild is idempotent and removes vanished rows. #}
{% macro delete_month_window(time_column) -%}
    {% if is_incremental() %}
    delete from {{ this }}
    where {{ in_month_window(time_column) }}
    {% endif %}
{%- endmacro %}

{# Serialise concurrent builds of one relation: a transaction-scoped advisory lock on its name. #}
{% macro lock_relation() -%}
    select pg_advisory_xact_lock(hashtext('{{ this }}'))
{%- endmacro %}
