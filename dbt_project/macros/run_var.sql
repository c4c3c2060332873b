{# A var of the run. The platform passes a month build's vars as environment variables
   (ENERGY_DBT_<NAME>, energy_assets/marts/dbt_project.py) rather than --vars, whose every new
   value makes dbt parse the whole project again; --vars and dbt_project.yml's defaults still
   apply to a `dbt build` by hand. Read only when executing: a file that reads a variable while
   it is parsed is parsed again whenever the value changes, and these values only change SQL,
   never refs or configs. #}
{% macro run_var(name) -%}
    {%- set value = var(name) -%}
    {%- if execute -%}
        {%- set value = env_var('ENERGY_DBT_' ~ name | upper, value | string) -%}
    {%- endif -%}
    {{- return(value) -}}
{%- endmacro %}
