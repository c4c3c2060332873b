-- Raw layer, owned by the Python ingest. Applied at the first start after a file here changed
-- (the raw schema's comment records which files were applied); every statement is idempotent.
create schema if not exists raw;

-- One row per file ever seen in the dropbox.
create table if not exists raw.files (
    file_id        bigserial primary key,
    sha256         text not null,
    name           text not null,
    format         text,
    status         text not null check (status in ('loaded', 'quarantined', 'duplicate')),
    rule           text,
    reason         text,
    duplicate_of   bigint references raw.files (file_id),
    rows           bigint not null default 0,
    months         date[] not null default '{}',
    first_interval timestamptz,
    last_interval  timestamptz,
    stored_as      text,
    received_at    timestamptz not null,
    processed_at   timestamptz not null default now()
);
-- name_meter: the meter the file name gives a file without a meter column (`M1_2024-01.csv`
--   is M1): the same bytes under another meter's name are that meter's readings.
-- archive_id, member: a file unpacked from a dropped archive (its own row) and its name there;
--   `name` is then `<archive>/<member>`.
-- lines, sample: where a quarantined file breaks its rule (also in its .reason.json).
-- pending_move: committed, but not yet moved to `stored_as` (with its reason file); a kill
--   leaves it so, and the next ingest of the same bytes under the same name completes the move.
alter table raw.files add column if not exists name_meter text;
alter table raw.files add column if not exists archive_id bigint references raw.files (file_id);
alter table raw.files add column if not exists member text;
alter table raw.files add column if not exists lines integer[] not null default '{}';
alter table raw.files add column if not exists sample text;
alter table raw.files add column if not exists pending_move boolean not null default false;
-- Content is loaded once (per meter named by the file name); a later copy is recorded as a
-- duplicate. Quarantined content does not count: dropped again, it is tried again.
drop index if exists raw.files_sha256_once;
create unique index if not exists files_loaded_once
    on raw.files (sha256, coalesce(name_meter, '')) where status = 'loaded';
create index if not exists files_sha256 on raw.files (sha256);
create index if not exists files_pending on raw.files (file_id) where pending_move;
create index if not exists files_stored_as on raw.files (stored_as);

-- Meter metadata; a meter may have readings before it has a row here.
create table if not exists raw.meters (
    meter_id    text primary key,
    name        text,
    feeder      text,
    customer_id text,
    multiplier  double precision not null default 1,
    site_id     text,
    timezone    text,
    tariff      text,
    attributes  jsonb not null default '{}',
    file_id     bigint references raw.files (file_id),
    updated_at  timestamptz not null default now()
);

-- Interval readings in long form, one partition per month of interval start.
create table if not exists raw.readings (
    meter_id         text not null,
    interval_start   timestamptz not null,
    interval_seconds integer not null check (interval_seconds > 0),
    channel          text not null,
    value            double precision,
    file_id          bigint not null
) partition by range (interval_start);
create index if not exists readings_meter_time on raw.readings (meter_id, interval_start);

-- Per file and meter: the span and interval length it brought. Small, so meter spans and the
-- months a meter touches are cheap to find without scanning readings.
create table if not exists raw.file_meters (
    file_id          bigint not null references raw.files (file_id),
    meter_id         text not null,
    interval_seconds integer not null,
    first_interval   timestamptz not null,
    last_interval    timestamptz not null,
    rows             bigint not null,
    primary key (file_id, meter_id)
);
create index if not exists file_meters_meter on raw.file_meters (meter_id);
-- The timezone the file's local (offset-free) times of the meter were read in; null when its
-- times carried offsets. When metadata later gives the meter another zone, they are read again.
alter table raw.file_meters add column if not exists local_timezone text;

-- Weather per site, long form: observations, and forecasts with the time they were issued.
-- A later value for the same site, variable, hour, kind and issue time wins.
create table if not exists raw.weather (
    site_id     text not null,
    observed_at timestamptz not null,
    variable    text not null,
    value       double precision not null,
    file_id     bigint not null references raw.files (file_id),
    primary key (site_id, variable, observed_at)
);
-- observed_at: the hour the value is for. kind: observed (a measurement or reanalysis) or
--   forecast, then issued_at is when it was available (null for observations).
-- file_id: the dropped file it came from; null for weather fetched from an API (see source).
alter table raw.weather add column if not exists kind text not null default 'observed';
alter table raw.weather add column if not exists issued_at timestamptz;
alter table raw.weather add column if not exists source text;
alter table raw.weather alter column file_id drop not null;
alter table raw.weather drop constraint if exists weather_pkey;
alter table raw.weather drop constraint if exists weather_kind;
alter table raw.weather add constraint weather_kind check (
    (kind = 'observed' and issued_at is null) or (kind = 'forecast' and issued_at is not null)
);
create unique index if not exists weather_once on raw.weather
    (site_id, variable, observed_at, kind, coalesce(issued_at, '-infinity'::timestamptz));
