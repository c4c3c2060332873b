{#- A view that analysts keep reading while the platform rebuilds: replaced only when its
    definition changed, and then without queueing behind their open transactions.

    dbt's `view` swaps every view on every run (rename the old one away, rename the new one in),
    and a rename waits for an AccessExclusiveLock: one analyst's open `begin; select * from
    marts.fct_gaps;` made the views run wait forever, and every query on the view queue behind
    it. Here the new definition is created beside the view and compared with it
    (pg_get_viewdef of both); an unchanged view is left alone, without a lock. A changed one is
    swapped with a short lock_timeout, retried a few times with pauses that let the readers
    through, and else the model fails with the sessions that hold the view. -#}
{% materialization analyst_view, adapter='postgres' %}
    {%- set target_relation = this.incorporate(type='view') -%}
    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set intermediate_relation = make_intermediate_relation(target_relation) -%}
    {%- set backup_type = 'view' if existing_relation is none else existing_relation.type -%}
    {%- set backup_relation = make_backup_relation(target_relation, backup_type) -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ drop_relation_if_exists(load_cached_relation(intermediate_relation)) }}
    {{ drop_relation_if_exists(load_cached_relation(backup_relation)) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {% call statement('main') -%}
        {{ get_create_view_as_sql(intermediate_relation, sql) }}
    {%- endcall %}

    {% if existing_relation is none %}
        {{ adapter.rename_relation(intermediate_relation, target_relation) }}
    {% elif existing_relation.is_view and view_unchanged(existing_relation, intermediate_relation) %}
        {{ log(target_relation ~ ": definition unchanged, left as it is") }}
        {{ drop_relation_if_exists(intermediate_relation) }}
    {% else %}
        {% call statement('swap') -%}
            {{ rename_without_queueing(existing_relation, backup_relation) }}
        {%- endcall %}
        {% do adapter.cache_renamed(existing_relation, backup_relation) %}
        {{ adapter.rename_relation(intermediate_relation, target_relation) }}
    {% endif %}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ drop_relation_if_exists(backup_relation) }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}


{# Whether two views have the same definition, as PostgreSQL itself prints them. #}
{% macro view_unchanged(view, candidate) -%}
    {%- set result = run_query(
        "select pg_get_viewdef('" ~ view.include(database=False) ~ "'::regclass)"
        ~ " = pg_get_viewdef('" ~ candidate.include(database=False) ~ "'::regclass)"
    ) -%}
    {{- return(result.columns[0].values()[0]) -}}
{%- endmacro %}


{# Rename `relation` to `to_relation`, waiting at most `lock_timeout` for its lock per attempt,
   `attempts` times with `pause_s` between; then fail naming the sessions that hold it. #}
{% macro rename_without_queueing(relation, to_relation, lock_timeout='2s', attempts=4, pause_s=3) -%}
    {%- set name = relation.include(database=False) -%}
do $rename$
declare
    attempt int := 1;
    holders text;
begin
    loop
        begin
            perform set_config('lock_timeout', '{{ lock_timeout }}', true);
            alter table {{ name }} rename to {{ to_relation.include(database=False, schema=False) }};
            perform set_config('lock_timeout', '0', true);
            return;
        exception when lock_not_available then
            exit when attempt >= {{ attempts }};
            attempt := attempt + 1;
            perform pg_sleep({{ pause_s }});
        end;
    end loop;
    select string_agg(
        format('pid %s (%s, in a transaction since %s: %s)',
               activity.pid, activity.usename, activity.xact_start, left(activity.query, 60)),
        '; '
    )
    into holders
    from pg_locks as locks
    inner join pg_stat_activity as activity on activity.pid = locks.pid
    where locks.relation = '{{ name }}'::regclass
      and locks.granted
      and locks.pid <> pg_backend_pid();
    raise exception '{{ name | replace("'", "''") }} was not replaced: its definition changed, and open transactions read it: %. It stays as it was; end those transactions (or pg_terminate_backend(pid)) and rebuild the views again.', coalesce(holders, 'none found')
        using errcode = 'lock_not_available';
end
$rename$
{%- endmacro %}
