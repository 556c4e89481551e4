// ROW_RANGES and ROW_DIGESTS (tasks.proto): how verify narrows a table whose checksum differs
// down to the rows that differ, by primary-key ranges (the controller's side is LocateRows in
// controller/verify_phase.h).
//
// The database, schema and table of a RowRange are looked up in the server's catalogue (refused
// when absent); the SQL is built only from what the catalogue returns (names quoted by the server
// with format('%I'), types from format_type) and parameter numbers; every key value travels as a
// $n parameter cast to its key column's type. Each request runs in one REPEATABLE READ READ ONLY
// transaction with the session settings TABLE_CHECKSUMS uses, so it works on a standby in
// recovery (but not on an unlogged table there, which cannot be read: FailedPrecondition).
//
// A row's digest is md5(ROW(r.*)::text); a bucket's is md5 of its rows' digests concatenated in
// key order. Key values are returned as text, one per key column, each C-escaped and joined by
// tabs (so a value never holds a tab).
//
// ROW_RANGES values:
//   key_columns   the key column names (escaped, tab-joined); "" and no_primary_key "true" when
//                 the table has no primary key (nothing else is returned then)
//   buckets       how many buckets follow (non-empty ones when the agent split; every boundary
//                 bucket otherwise, empty ones included)
//   bucket:<NNNN> "rows=<n> md5=<hex>" (0-based index, 4 digits)
//   bucket:<NNNN>:last  the bucket's last key (only when the agent chose the boundaries)
// ROW_DIGESTS values: key_columns, rows (how many follow), truncated ("true" when the range held
// more than kMaxRowDigests rows: only the first ones are returned), row:<NNNNNN> = "<md5>\t<key>".
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "agent/agent_config.h"
#include "agent/query_canceller.h"
#include "pghaul/v1/tasks.pb.h"

namespace pghaul::agent {

inline constexpr int kMaxRowDigests = 10000;
inline constexpr int kDefaultRowBuckets = 16;
inline constexpr int kMaxRowBuckets = 64;

// Checks a RowRange's shape before anything runs: names present and without NUL bytes, buckets
// 0 or 2..64, at most 63 boundaries, every key with the same number of columns.
// Errors: InvalidArgument.
absl::Status ValidateRowRange(const v1::RowRange& range);

// Errors: InvalidArgument (ValidateRowRange; a key whose column count is not the primary key's),
// NotFound (no such database, or table in it), FailedPrecondition (the server refused a
// statement; an unlogged table in recovery), Unavailable, DeadlineExceeded, Cancelled.
absl::StatusOr<std::map<std::string, std::string>> ComputeRowRanges(
    const PostgresConnection& conn, const v1::RowRange& range, QueryCanceller* canceller = nullptr);
absl::StatusOr<std::map<std::string, std::string>> ComputeRowDigests(
    const PostgresConnection& conn, const v1::RowRange& range, QueryCanceller* canceller = nullptr);

}  // namespace pghaul::agent
