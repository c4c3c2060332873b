-- Outputs of the Python models (segmentation now; forecasts and anomalies later).
create schema if not exists ml;

-- Customers per month and the load-shape segment they fall in.
create table if not exists ml.customer_segments (
    month_start date not null,
    customer_id text not null,
    segment     integer not null,
    k           integer not null,
    silhouette  double precision not null,
    primary key (month_start, customer_id)
);

-- Each segment's centroid: share of daily energy per hour of day.
create table if not exists ml.segment_centroids (
    month_start date not null,
    segment     integer not null,
    hour        integer not null,
    share       double precision not null,
    customers   integer not null,
    primary key (month_start, segment, hour)
);
