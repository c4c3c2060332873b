{# The measured columns of marts.fct_intervals_clean that a gap's estimate fills (kw_net is
   derived from the estimated kw_del and kw_rec). #}
{% macro estimated_columns() %}
    {{ return(['kw_del', 'kw_rec', 'kva_del', 'kva_rec', 'demand_kw']) }}
{% endmacro %}
