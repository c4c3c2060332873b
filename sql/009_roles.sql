-- Roles for the people and tools around the platform. Applied, like every file here, at the
-- first start after one of them changed: each statement is idempotent. Roles belong to the
-- whole server, so several warehouses on one server may run this at the same moment; creating
-- a role tolerates losing that race.
--
--   energy_analyst  LOGIN, read-only: marts and ml (tables and views created later included),
--                   plus raw.files. No password is set here: the embedded server trusts
--                   127.0.0.1; on your own server set one (README, "Roles").
--   energy_loader   NOLOGIN group that owns the raw schema and its tables; grant it to the
--                   login that loads files when that is not the platform's own user.
--
-- A platform user without CREATEROLE gets a notice instead of roles, and the platform runs on.

do $$
begin
    if not exists (select from pg_roles where rolname = 'energy_analyst') then
        begin
            create role energy_analyst login;
        exception when duplicate_object or unique_violation then
            null;  -- created by another warehouse on this server meanwhile
        end;
    end if;
    if not exists (select from pg_roles where rolname = 'energy_loader') then
        begin
            create role energy_loader nologin;
        exception when duplicate_object or unique_violation then
            null;
        end;
    end if;
exception when insufficient_privilege then
    raise notice 'energy roles not created (%): ask an administrator to create them', sqlerrm;
end
$$;

-- dbt creates this schema on its first run; it exists earlier here so that the default
-- privileges below cover the first tables and views dbt creates in it.
create schema if not exists marts;

do $$
begin
    if not exists (select from pg_roles where rolname = 'energy_analyst') then
        return;
    end if;
    execute format('grant connect on database %I to energy_analyst', current_database());
    grant usage on schema marts, ml to energy_analyst;
    grant select on all tables in schema marts, ml to energy_analyst;
    -- dbt drops and recreates its views on every run, and new months bring new tables: the
    -- platform's user (who runs dbt and the Python assets) grants SELECT on whatever it creates.
    alter default privileges in schema marts, ml grant select on tables to energy_analyst;
    -- The file register is for analysts too (README); nothing else in raw is.
    grant usage on schema raw to energy_analyst;
    grant select on raw.files to energy_analyst;
exception when insufficient_privilege then
    raise notice 'energy_analyst not granted read access (%)', sqlerrm;
end
$$;

do $$
declare
    t record;
begin
    if not exists (select from pg_roles where rolname = 'energy_loader') then
        return;
    end if;
    alter schema raw owner to energy_loader;
    -- Top-level tables only: month partitions are created later by whoever loads, and writes go
    -- through the partitioned parent, whose privileges are the ones checked.
    for t in
        select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'raw' and c.relkind in ('r', 'p') and not c.relispartition
          and pg_get_userbyid(c.relowner) <> 'energy_loader'
    loop
        execute format('alter table raw.%I owner to energy_loader', t.relname);
    end loop;
    -- The platform's own user keeps loading and creating partitions, whatever owns the schema.
    execute format('grant usage, create on schema raw to %I', current_user);
    alter default privileges in schema raw
        grant select, insert, update, delete, truncate on tables to energy_loader;
exception when insufficient_privilege then
    raise notice 'raw schema not handed to energy_loader (%)', sqlerrm;
end
$$;
