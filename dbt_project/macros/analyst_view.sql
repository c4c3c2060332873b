{#- A view that analysts keep reading while the platform rebuilds: replaced only when its
    definition changed, and then without queueing behind their open transactions.

    dbt's `view` swaps every view on every run (rename the old one away, rename the new one in),
    and a rename waits for an AccessExclusiveLock: one analyst's open `begin; select * from
    marts.fct_gaps;` made the views run wait forever, and every query on the view queue behind
    it. Here the new definition is created beside the view and compared with it
    (pg_get_viewdef of both); an unchanged view is left alone, without a lock. A changed one is
    swapped with a short lock_timeout, retried a few times with pauses that let the readers
    through, and else the model fails naming the sessions that hold the view. Grants come from
    the schema's default privileges (sql/009_roles.sql). -#}
{% materialization analyst_view, adapter='postgres' %}
    {%- set target = this.incorporate(type='view') -%}
    {%- set existing = load_cached_relation(this) -%}
    {%- set candidate = make_intermediate_relation(target) -%}
    {%- set backup = make_backup_relation(target, 'view' if existing is none else existing.type) -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ drop_relation_if_exists(load_cached_relation(candidate)) }}
    {{ drop_relation_if_exists(load_cached_relation(backup)) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {% call statement('main') -%}
        {{ get_create_view_as_sql(candidate, sql) }}
    {%- endcall %}

    {% if existing is none %}
        {{ adapter.rename_relation(candidate, target) }}
    {% elif existing.is_view and view_unchanged(existing, candidate) %}
        {{ log(target ~ ": definition unchanged, left as it is") }}
        {{ drop_relation_if_exists(candidate) }}
    {% else %}
        {% call statement('swap') -%}
            {{ rename_without_queueing(existing, backup) }}
        {%- endcall %}
        {% do adapter.cache_renamed(existing, backup) %}
        {{ adapter.rename_relation(candidate, target) }}
    {% endif %}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ drop_relation_if_exists(backup) }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target]}) }}
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
{% macro rename_without_queueing(
    relation, to_relation, lock_timeout='2s', attempts=4, pause_s=3
) -%}
    {%- set name = relation.include(database=False) -%}
do $rename$
declare
    attempt int := 1;
    holders text;
begin
    loop
        begin
            perform set_config('lock_timeout', '{{ lock_timeout }}', true);
            alter table {{ name }} rename to {{ adapter.quote(to_relation.identifier) }};
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
    raise exception using
        errcode = 'lock_not_available',
        message = '{{ name }} was not replaced: its definition changed, and open transactions'
            || ' read it: ' || coalesce(holders, 'none found') || '. It stays as it was; end'
            || ' those transactions (or pg_terminate_backend(pid)) and rebuild the views again.';
end
$rename$
{%- endmacro %}
