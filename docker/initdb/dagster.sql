-- Run once by the postgres image on an empty data directory: Dagster's storage lives in its own
-- database beside the warehouse ($POSTGRES_DB), so analysts can be kept out of it.
create database dagster;
