#include "agent/table_checksums.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/md5.h"
#include "agent/pg_connection.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace pghaul::agent {
namespace {

using Values = std::map<std::string, std::string>;

// Rows per FETCH: 10000 digests are about 330 kB of result.
constexpr char kFetchSql[] = "FETCH 10000 FROM pghaul_rows";
constexpr char kCloseSql[] = "CLOSE pghaul_rows";

constexpr char kDatabasesSql[] =
    "SELECT datname FROM pg_database"
    " WHERE datallowconn AND datname NOT IN ('template0', 'template1') ORDER BY datname";
constexpr char kBeginSql[] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
constexpr char kCommitSql[] = "COMMIT";
// Transaction-local. Every setting that changes how a row prints as text is fixed, so two servers
// (whose postgresql.conf may differ) print equal rows equally. work_mem lets the sort of a table's
// digests stay in memory longer.
constexpr char kSettingsSql[] =
    "SELECT set_config('IntervalStyle', 'postgres', true), "
    "set_config('extra_float_digits', '1', true), set_config('bytea_output', 'hex', true), "
    "set_config('lc_monetary', 'C', true), set_config('DateStyle', 'ISO', true), "
    "set_config('TimeZone', 'UTC', true), set_config('work_mem', '64MB', true)";
constexpr char kInRecoverySql[] = "SELECT pg_is_in_recovery()::text AS in_recovery";
// format('%I.%I') quotes the names the server's way: the only way a name reaches SQL text.
constexpr char kRelationsSql[] = R"sql(
SELECT n.nspname, c.relname, c.relkind::text, c.relpersistence::text, c.relispopulated::text,
       format('%I.%I', n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'm') AND c.relpersistence IN ('p', 'u')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
   AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'
 ORDER BY n.nspname, c.relname
)sql";
// ROW(r.*) and not r: a column named like the alias would win over the whole-row reference.
// ROW(r.*)::text prints exactly as the whole row does ("(1,abc)").
constexpr char kDeclareRowsPrefix[] =
    "DECLARE pghaul_rows NO SCROLL CURSOR FOR SELECT md5(ROW(r.*)::text) COLLATE \"C\" FROM ";
constexpr char kDeclareRowsSuffix[] = " AS r ORDER BY 1";
constexpr char kDeclareLargeObjectsSql[] =
    "DECLARE pghaul_rows NO SCROLL CURSOR FOR"
    " SELECT oid::text || ':' || md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid";
// An unlogged sequence cannot be read in recovery either; CASE keeps it from being read.
constexpr char kSequencesSql[] = R"sql(
SELECT n.nspname, c.relname,
       CASE WHEN c.relpersistence = 'u' AND pg_is_in_recovery() THEN NULL
            ELSE pg_sequence_last_value(c.oid)::text END
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'S' AND c.relpersistence IN ('p', 'u')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
   AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'
 ORDER BY n.nspname, c.relname
)sql";

struct Digest {
  uint64_t rows = 0;
  std::string md5;
};

class DatabaseReader {
 public:
  DatabaseReader(PgConnection conn, std::string database, const TableChecksumOptions& options)
      : conn_(std::move(conn)), database_(std::move(database)), options_(options) {}

  absl::Status Read(Values& values) {
    ScopedCancelAttachment attached(options_.canceller, conn_.raw());
    PGH_RETURN_IF_ERROR(Run(kBeginSql, "BEGIN"));
    PGH_RETURN_IF_ERROR(Run(kSettingsSql, "session settings"));
    absl::StatusOr<std::map<std::string, std::string>> recovery =
        conn_.ExecuteOneRow(kInRecoverySql);
    if (!recovery.ok()) return Context(recovery.status(), "pg_is_in_recovery()");
    const bool in_recovery = (*recovery)["in_recovery"] == "true";

    absl::StatusOr<PgResult> relations = conn_.Execute(kRelationsSql);
    if (!relations.ok()) return Context(relations.status(), "listing tables");
    uint64_t tables = 0;
    uint64_t rows = 0;
    for (int row = 0; row < relations->rows(); ++row) {
      if (options_.canceller != nullptr && options_.canceller->cancelled()) return Cancelled();
      const std::string schema = relations->Value(row, 0);
      const std::string name = relations->Value(row, 1);
      const std::string kind = relations->Value(row, 2);
      const std::string persistence = relations->Value(row, 3);
      const bool populated = relations->Value(row, 4) == "true";
      const std::string qualified = relations->Value(row, 5);
      const std::string key = absl::StrCat(database_, "/", schema, ".", name);
      const std::string tail = absl::StrCat(" persistence=", persistence, " kind=", kind);
      if ((in_recovery && persistence == "u") || !populated) {
        values[key] = absl::StrCat("rows=0 md5=", tail);
        continue;
      }
      const std::string declare = absl::StrCat(kDeclareRowsPrefix, qualified, kDeclareRowsSuffix);
      PGH_ASSIGN_OR_RETURN(Digest digest, Stream(declare, /*separator=*/"", qualified));
      values[key] = absl::StrCat("rows=", digest.rows, " md5=", digest.md5, tail);
      ++tables;
      rows += digest.rows;
    }

    PGH_ASSIGN_OR_RETURN(Digest large_objects,
                         Stream(kDeclareLargeObjectsSql, /*separator=*/"\n", "large objects"));
    values[absl::StrCat(database_, "/large_objects")] =
        absl::StrCat("rows=", large_objects.rows, " md5=", large_objects.md5);

    absl::StatusOr<PgResult> sequences = conn_.Execute(kSequencesSql);
    if (!sequences.ok()) return Context(sequences.status(), "reading sequences");
    for (int row = 0; row < sequences->rows(); ++row) {
      values[absl::StrCat(database_, "/sequence:", sequences->Value(row, 0), ".",
                          sequences->Value(row, 1))] = sequences->Value(row, 2);
    }
    PGH_RETURN_IF_ERROR(Run(kCommitSql, "COMMIT"));
    if (options_.log) {
      options_.log(absl::StrCat("database ", database_, ": ", tables, " tables read (", rows,
                                " rows), ", large_objects.rows, " large objects, ",
                                sequences->rows(), " sequences",
                                in_recovery ? "; in recovery, unlogged tables not read" : ""));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Cancelled() const {
    return absl::CancelledError(
        absl::StrCat("table checksums cancelled while reading database ", database_));
  }

  // Names the database and object in an error, and tells a cancel from a statement timeout
  // (both are SQLSTATE 57014).
  absl::Status Context(const absl::Status& status, absl::string_view what) const {
    if (options_.canceller != nullptr && options_.canceller->cancelled()) return Cancelled();
    return absl::Status(status.code(), absl::StrCat("database \"", absl::CHexEscape(database_),
                                                    "\", ", what, ": ", status.message()));
  }

  absl::Status Run(const char* sql, absl::string_view what) {
    absl::Status status = conn_.Execute(sql).status();
    return status.ok() ? status : Context(status, what);
  }

  // Opens the cursor `declare` (of one text column), hashes every row's text followed by
  // `separator`, and closes it.
  absl::StatusOr<Digest> Stream(const std::string& declare, absl::string_view separator,
                                absl::string_view what) {
    PGH_RETURN_IF_ERROR(Run(declare.c_str(), what));
    Md5 md5;
    Digest digest;
    while (true) {
      absl::StatusOr<PgResult> batch = conn_.Execute(kFetchSql);
      if (!batch.ok()) return Context(batch.status(), what);
      if (batch->rows() == 0) break;
      for (int row = 0; row < batch->rows(); ++row) {
        md5.Update(batch->Value(row, 0));
        md5.Update(separator);
      }
      digest.rows += static_cast<uint64_t>(batch->rows());
    }
    PGH_RETURN_IF_ERROR(Run(kCloseSql, what));
    digest.md5 = md5.HexDigest();
    return digest;
  }

  PgConnection conn_;
  const std::string database_;
  const TableChecksumOptions& options_;
};

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> ComputeTableChecksums(
    const PostgresConnection& conn, const TableChecksumOptions& options) {
  PgSessionOptions session;
  session.statement_timeout = options.statement_timeout;
  std::vector<std::string> databases;
  {
    PGH_ASSIGN_OR_RETURN(PgConnection listing, PgConnection::Open(conn, session));
    PGH_ASSIGN_OR_RETURN(PgResult result, listing.Execute(kDatabasesSql));
    for (int row = 0; row < result.rows(); ++row) databases.push_back(result.Value(row, 0));
  }
  Values values;
  const absl::Time started = absl::Now();
  for (const std::string& database : databases) {
    if (options.canceller != nullptr && options.canceller->cancelled()) {
      return absl::CancelledError("table checksums cancelled");
    }
    PostgresConnection target = conn;
    target.database = database;
    absl::StatusOr<PgConnection> opened = PgConnection::Open(target, session);
    if (!opened.ok()) {
      return absl::Status(opened.status().code(),
                          absl::StrCat("cannot connect to database \"", absl::CHexEscape(database),
                                       "\": ", opened.status().message()));
    }
    DatabaseReader reader(*std::move(opened), database, options);
    PGH_RETURN_IF_ERROR(reader.Read(values));
  }
  PGH_LOG_INFO("table checksums of {} databases ({} values) in {}", databases.size(), values.size(),
               absl::FormatDuration(absl::Now() - started));
  return values;
}

}  // namespace pghaul::agent
