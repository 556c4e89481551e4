// The statements every reader of a database's rows for verify shares (TABLE_CHECKSUMS,
// SCHEMA_CATALOG, ROW_RANGES, ROW_DIGESTS): which databases to read, one read-only snapshot per
// database, and the session settings under which a row prints the same text on both servers.
#pragma once

namespace pghaul::agent {

// Every database that accepts connections, but the templates.
inline constexpr char kConnectableDatabasesSql[] =
    "SELECT datname FROM pg_database"
    " WHERE datallowconn AND datname NOT IN ('template0', 'template1') ORDER BY datname";
inline constexpr char kBeginSnapshotSql[] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
inline constexpr char kCommitSql[] = "COMMIT";
// Transaction-local. Every setting that changes how a row prints as text is fixed, so two
// servers (whose postgresql.conf may differ) print equal rows equally; work_mem lets ROW_RANGES'
// window sorts stay in memory longer.
inline constexpr char kRowTextSettingsSql[] =
    "SELECT set_config('IntervalStyle', 'postgres', true), "
    "set_config('extra_float_digits', '1', true), set_config('bytea_output', 'hex', true), "
    "set_config('lc_monetary', 'C', true), set_config('DateStyle', 'ISO', true), "
    "set_config('TimeZone', 'UTC', true), set_config('work_mem', '64MB', true)";

}  // namespace pghaul::agent
