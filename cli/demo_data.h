// The sample data `pghaul demo` loads into the legacy cluster besides pgbench's tables: a small
// schema with the kinds of content a physical migration must carry exactly.
#pragma once

#include "absl/strings/string_view.h"

namespace pghaul::cli {

// The second database the sample data creates (everything else is in `postgres`).
inline constexpr char kDemoSecondDatabase[] = "inventory";

// A psql script (run with -X -v ON_ERROR_STOP=1 -f, connected to `postgres`): schema `shop` with
// numeric (including NaN and infinities), jsonb, arrays, bytea, a large object, a table
// partitioned by range with a default partition, a materialized view, sequences (identity and
// explicit), an unlogged table (empty after a physical restore, by design), and a second database
// `inventory` reached with \connect.
absl::string_view DemoSampleSql();

// A query for `postgres` returning one line that fingerprints the pgbench data: the number of
// accounts and the sum of their balances, "1000000|0". The demo runs it on the legacy cluster
// before the migration and on the promoted target after it.
absl::string_view DemoFingerprintQuery();

}  // namespace pghaul::cli
