#include "cli/demo_data.h"

namespace pghaul::cli {
namespace {

// Deterministic (no random()), so two demo runs load the same data.
constexpr char kSampleSql[] = R"SQL(-- Sample data of `pghaul demo`, next to pgbench's tables.
CREATE SCHEMA shop;

-- numeric (fixed and arbitrary precision), arrays, jsonb, bytea; an identity sequence.
CREATE TABLE shop.products (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  price numeric(12,2) NOT NULL,
  weight_kg numeric,
  tags text[] NOT NULL DEFAULT '{}',
  attributes jsonb NOT NULL DEFAULT '{}',
  thumbnail bytea
);
INSERT INTO shop.products (name, price, weight_kg, tags, attributes, thumbnail)
SELECT format('product %s', i),
       ((i * 37) % 100000) / 100.0,
       i / 7.0,
       ARRAY['tag' || (i % 5), 'tag' || (i % 7)],
       jsonb_build_object('color', (ARRAY['red', 'green', 'blue'])[i % 3 + 1],
                          'sizes', jsonb_build_array(i % 4, i % 9),
                          'rating', (i % 50) / 10.0,
                          'discontinued', i % 11 = 0),
       decode(md5(i::text) || md5((i * 31)::text), 'hex')
FROM generate_series(1, 5000) AS i;

-- numeric's special values and extremes.
CREATE TABLE shop.measurements (id int PRIMARY KEY, value numeric, readings double precision[]);
INSERT INTO shop.measurements VALUES
  (1, 'NaN', '{1.5,2.25}'),
  (2, 'Infinity', '{}'),
  (3, '-Infinity', NULL),
  (4, 0.000000000000000000000000000001, '{-0.5}'),
  (5, 123456789012345678901234567890.123456789, '{1e300,-1e-300}');

-- A table partitioned by range, with a default partition; an explicit sequence.
CREATE SEQUENCE shop.order_number START 1000 INCREMENT 10;
CREATE TABLE shop.orders (
  id bigint NOT NULL,
  order_number bigint NOT NULL DEFAULT nextval('shop.order_number'),
  product_id bigint NOT NULL REFERENCES shop.products,
  quantity int NOT NULL,
  ordered_at timestamptz NOT NULL,
  PRIMARY KEY (id, ordered_at)
) PARTITION BY RANGE (ordered_at);
CREATE TABLE shop.orders_2024 PARTITION OF shop.orders
  FOR VALUES FROM ('2024-01-01 00:00+00') TO ('2025-01-01 00:00+00');
CREATE TABLE shop.orders_2025 PARTITION OF shop.orders
  FOR VALUES FROM ('2025-01-01 00:00+00') TO ('2026-01-01 00:00+00');
CREATE TABLE shop.orders_later PARTITION OF shop.orders DEFAULT;
INSERT INTO shop.orders (id, product_id, quantity, ordered_at)
SELECT i, i % 5000 + 1, i % 9 + 1, timestamptz '2024-01-01 00:00+00' + i * interval '40 minutes'
FROM generate_series(1, 50000) AS i;

CREATE MATERIALIZED VIEW shop.sales_per_product AS
  SELECT product_id, sum(quantity) AS units, count(*) AS orders
  FROM shop.orders GROUP BY product_id;

-- A large object, referenced from a table.
CREATE TABLE shop.documents (id int PRIMARY KEY, title text NOT NULL, content oid NOT NULL);
INSERT INTO shop.documents
VALUES (1, 'price list', lo_from_bytea(0, convert_to(repeat('pghaul demo large object. ', 4000), 'UTF8')));

-- Unlogged: not in the WAL, so a physical restore brings it back empty. Verify says so.
CREATE UNLOGGED TABLE shop.sessions (id int PRIMARY KEY, token text NOT NULL);
INSERT INTO shop.sessions SELECT i, md5(i::text) FROM generate_series(1, 1000) AS i;

ANALYZE;

-- A second database.
CREATE DATABASE inventory;
\connect inventory
CREATE TABLE warehouses (id int PRIMARY KEY, city text NOT NULL, opened date NOT NULL);
INSERT INTO warehouses VALUES (1, 'Lyon', '2003-04-01'), (2, 'Porto', '2011-09-15'),
  (3, 'Tallinn', '2019-02-28');
CREATE TABLE stock (
  warehouse_id int NOT NULL REFERENCES warehouses,
  sku text NOT NULL,
  quantity int NOT NULL,
  PRIMARY KEY (warehouse_id, sku)
);
INSERT INTO stock SELECT w, format('SKU-%s', s), (w * s) % 97
FROM generate_series(1, 3) AS w, generate_series(1, 2000) AS s;
ANALYZE;
)SQL";

constexpr char kFingerprintQuery[] =
    "SELECT count(*) || '|' || coalesce(sum(abalance), 0) FROM pgbench_accounts";

}  // namespace

absl::string_view DemoSampleSql() { return kSampleSql; }

absl::string_view DemoFingerprintQuery() { return kFingerprintQuery; }

}  // namespace pghaul::cli
