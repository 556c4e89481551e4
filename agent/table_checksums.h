// TABLE_CHECKSUMS (tasks.proto): the row count and a content checksum of every table, of every
// database that accepts connections, so verify can compare a restored copy with its source.
//
// What is read, per database (every datallowconn database but template0 and template1), in one
// snapshot: a REPEATABLE READ READ ONLY transaction exports it (pg_export_snapshot, which works
// on a hot standby too) and up to `workers` more connections import it (SET TRANSACTION
// SNAPSHOT) and share the database's tables (largest first by relpages, one table each at a
// time), while the first connection reads large objects and sequences:
//   - every table (relkind r, which includes the leaves of partitioned tables) and materialized
//     view (m), permanent or unlogged, outside pg_catalog, information_schema, pg_toast and the
//     temporary schemas; temporary tables are skipped;
//   - its large objects; its sequences.
// Values, keyed "<db>/<schema>.<name>" (names as they are, unquoted):
//   "rows=<n> md5=<32 hex> persistence=<p|u> kind=<r|m>"
//     md5 is the md5 of "<rows>:<sum>" where sum is PostgreSQL's sum (numeric, 0 when empty) of
//     a 64-bit hash per row, by the table's column types (docs/preflight.md, Data): the XOR of
//     each column's own extended hash seeded with its number when every column is of a common
//     type (bool, integers, oid, text, varchar, bpchar, name, time, timestamp[tz], uuid),
//     hash_record_extended(ROW(r.*), 0) when bytea, "char" or date are among them, else
//     hashtextextended(ROW(r.*)::text, 0). Strings need a deterministic collation for the first
//     two. One pass over the table, no sort, order-independent, and PostgreSQL may run it with
//     parallel workers. A 64-bit hash per row: an accidental change goes unnoticed with a probability of
//     about 2^-64 (pgcopydb sums the 32-bit hashtext). Locating rows (row_ranges.h) uses md5s.
//     On a server in recovery, an unlogged table cannot be read at all ("cannot access temporary
//     or unlogged relations during recovery"): it is reported "rows=0 md5= persistence=u" without
//     being read. A materialized view that was never populated (WITH NO DATA) cannot be read
//     either: "rows=0 md5= persistence=p kind=m".
//   "<db>/large_objects" = "rows=<n> md5=<32 hex>", the md5 of "<oid>:<md5 of its data>\n" for
//     every large object, in oid order (always present, so a missing database shows).
//   "<db>/sequence:<schema>.<name>" = its last_value, or "" when nextval was never called (and
//     for an unlogged sequence on a server in recovery). A copy made from WAL may be ahead of
//     its source by up to 32: PostgreSQL logs sequence values in advance.
// Row text depends on session settings, so they are fixed: TimeZone UTC, DateStyle ISO,
// IntervalStyle postgres, extra_float_digits 1, bytea_output hex, lc_monetary C.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/agent_config.h"
#include "agent/query_canceller.h"

namespace pghaul::agent {

struct TableChecksumOptions {
  // Each statement's limit; the first fetch of a large table sorts all its rows.
  absl::Duration statement_timeout = absl::Hours(6);
  // Optional: Cancel() stops the running statement and the task.
  QueryCanceller* canceller = nullptr;
  // Optional: one line per database when it is done.
  std::function<void(absl::string_view)> log;
  // Connections reading a database's tables at once (besides the one reading its large objects
  // and sequences); at most one per table.
  int workers = 4;
};

// Reads everything described above, with at most 1 + options.workers connections open at a
// time (one database at a time). The agent's
// database user needs CONNECT on every database and SELECT on every table, large object and
// sequence; a superuser is not needed. Errors:
//   Cancelled           options.canceller was cancelled.
//   FailedPrecondition  the server refused a statement, e.g. 42501 (permission denied, naming
//                       the object), 40001 (a standby cancelled it for a conflict with recovery).
//   DeadlineExceeded    a statement ran longer than options.statement_timeout.
//   Unavailable, Internal: as RunSqlQuery. Every message names the database (and table).
absl::StatusOr<std::map<std::string, std::string>> ComputeTableChecksums(
    const PostgresConnection& conn, const TableChecksumOptions& options = {});

}  // namespace pghaul::agent
