#include "agent/table_checksums.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/md5.h"
#include "agent/pg_connection.h"
#include "agent/snapshot_sql.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace pghaul::agent {
namespace {

using Values = std::map<std::string, std::string>;

// Rows per FETCH: 10000 digests are about 330 kB of result.
constexpr char kFetchSql[] = "FETCH 10000 FROM pghaul_rows";
constexpr char kCloseSql[] = "CLOSE pghaul_rows";

constexpr char kInRecoverySql[] = "SELECT pg_is_in_recovery()::text AS in_recovery";
// format('%I.%I') quotes the names the server's way: the only way a name reaches SQL text.
// column_hash: when every column is of a type listed there (a deterministic collation for
// strings), the per-row hash expression of kColumnSumPrefix; format(NULL, ...) is NULL, so one
// column of another type makes it NULL (""), never a hash that leaves a column out.
// typed_hash: every column is of a type whose own hash tells apart any two values that print
// differently (bool, bytea, "char", name, int8, int2, int4, text, oid, bpchar, varchar, date,
// time, timestamp, timestamptz, uuid), collatable ones with a deterministic collation. Not
// numeric (1.0 and 1.00 hash alike), float (-0 and 0), interval ('1 day' and '24 hours'), jsonb
// (its numbers, likewise), nor anything else: those tables hash their rows' text.
constexpr char kRelationsSql[] = R"sql(
SELECT n.nspname, c.relname, c.relkind::text, c.relpersistence::text, c.relispopulated::text,
       format('%I.%I', n.nspname, c.relname), c.relpages::text,
       (NOT EXISTS (
          SELECT 1 FROM pg_attribute a LEFT JOIN pg_collation co ON co.oid = a.attcollation
           WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             AND (a.atttypid NOT IN (16, 17, 18, 19, 20, 21, 23, 25, 26, 1042, 1043, 1082, 1083,
                                     1114, 1184, 2950)
                  OR NOT coalesce(co.collisdeterministic, true))))::text,
       (SELECT CASE WHEN bool_and(h.term IS NOT NULL)
                    THEN string_agg(h.term, ' # ' ORDER BY h.attnum) END
          FROM (SELECT v.attnum,
                       CASE WHEN v.deterministic AND v.hash IS NOT NULL THEN
                         format('coalesce(%s, hashint4extended(%s, 0))', v.hash, v.attnum)
                       END AS term
                  FROM (SELECT a.attnum, coalesce(co.collisdeterministic, true) AS deterministic,
                               format(CASE a.atttypid
                                 WHEN 16 THEN 'hashint4extended(r.%I::int4, %s)'
                                 WHEN 19 THEN 'hashnameextended(r.%I, %s)'
                                 WHEN 20 THEN 'hashint8extended(r.%I, %s)'
                                 WHEN 21 THEN 'hashint2extended(r.%I, %s)'
                                 WHEN 23 THEN 'hashint4extended(r.%I, %s)'
                                 WHEN 25 THEN 'hashtextextended(r.%I, %s)'
                                 WHEN 26 THEN 'hashoidextended(r.%I, %s)'
                                 WHEN 1042 THEN 'hashbpcharextended(r.%I, %s)'
                                 WHEN 1043 THEN 'hashtextextended(r.%I::text, %s)'
                                 WHEN 1083 THEN 'time_hash_extended(r.%I, %s)'
                                 WHEN 1114 THEN 'timestamp_hash_extended(r.%I, %s)'
                                 WHEN 1184 THEN 'timestamp_hash_extended(r.%I::timestamp, %s)'
                                 WHEN 2950 THEN 'uuid_hash_extended(r.%I, %s)'
                                 END, a.attname, a.attnum) AS hash
                          FROM pg_attribute a
                          LEFT JOIN pg_collation co ON co.oid = a.attcollation
                         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS v)
               AS h)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'm') AND c.relpersistence IN ('p', 'u')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
   AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'
 ORDER BY n.nspname, c.relname
)sql";
constexpr char kExportSnapshotSql[] = "SELECT pg_export_snapshot() AS snapshot";
// ROW(r.*) and not r: a column named like the alias would win over the whole-row reference.
// ROW(r.*)::text prints exactly as the whole row does ("(1,abc)"). One pass, no sort, nothing
// sent but two numbers, and the server may use parallel workers for it: the sum of a 64-bit hash
// of each row's text (hashtextextended, the 64-bit sibling of the hashtext pgcopydb sums) is the
// same whatever the order the rows are read in. sum(bigint) is numeric: it cannot overflow.
constexpr char kTableSumPrefix[] =
    "SELECT count(*)::text, coalesce(sum(hashtextextended(ROW(r.*)::text, 0)), 0)::text FROM ";
// The same sum of a 64-bit hash per row, each column hashed by its own type (no text is made):
// about twice as fast on tables of integers and strings. Only for typed_hash tables.
constexpr char kTableTypedSumPrefix[] =
    "SELECT count(*)::text, coalesce(sum(hash_record_extended(ROW(r.*), 0)), 0)::text FROM ";
// Faster still (no row value is built): the row's hash is the XOR of each column's own extended
// hash seeded with its column number n (NULL: hashint4extended(n, 0), a constant of its own per
// column, so that a column added with only NULLs changes every row's hash), for tables whose
// every column is of a type with an SQL-callable hash (kRelationsSql's column_hash, built by the
// server with format('%I')).
constexpr char kColumnSumPrefix[] = "SELECT count(*)::text, coalesce(sum(";
constexpr char kColumnSumMiddle[] = "), 0)::text FROM ";
constexpr char kTableSumSuffix[] = " AS r";
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

// Names the database and object in an error, and tells a cancel from a statement timeout
// (both are SQLSTATE 57014).
absl::Status Context(const absl::Status& status, const std::string& database,
                     absl::string_view what, const QueryCanceller* canceller) {
  if (canceller != nullptr && canceller->cancelled()) {
    return absl::CancelledError(
        absl::StrCat("table checksums cancelled while reading database ", database));
  }
  return absl::Status(status.code(), absl::StrCat("database \"", absl::CHexEscape(database), "\", ",
                                                  what, ": ", status.message()));
}

absl::Status Run(PgConnection& conn, const char* sql, const std::string& database,
                 absl::string_view what, const QueryCanceller* canceller) {
  absl::Status status = conn.Execute(sql).status();
  return status.ok() ? status : Context(status, database, what, canceller);
}

// Opens the cursor `declare` (of one text column), hashes every row's text followed by
// `separator`, and closes it.
absl::StatusOr<Digest> Stream(PgConnection& conn, const std::string& declare,
                              absl::string_view separator, const std::string& database,
                              absl::string_view what, const QueryCanceller* canceller) {
  PGH_RETURN_IF_ERROR(Run(conn, declare.c_str(), database, what, canceller));
  Md5 md5;
  Digest digest;
  while (true) {
    absl::StatusOr<PgResult> batch = conn.Execute(kFetchSql);
    if (!batch.ok()) return Context(batch.status(), database, what, canceller);
    if (batch->rows() == 0) break;
    for (int row = 0; row < batch->rows(); ++row) {
      md5.Update(batch->Value(row, 0));
      md5.Update(separator);
    }
    digest.rows += static_cast<uint64_t>(batch->rows());
  }
  PGH_RETURN_IF_ERROR(Run(conn, kCloseSql, database, what, canceller));
  digest.md5 = md5.HexDigest();
  return digest;
}

// A table to read, and what reading it gave.
struct TableJob {
  std::string key;        // "<db>/<schema>.<name>"
  std::string qualified;  // quoted by the server
  std::string tail;       // " persistence=<p> kind=<k>"
  int64_t pages = 0;      // pg_class.relpages: the server's estimate of its size
  bool typed_hash = false;  // every column's type hashes exactly (kRelationsSql)
  std::string column_hash = "";  // the per-column hash expression, or "" (kRelationsSql)
  absl::StatusOr<Digest> digest = absl::UnknownError("not read");
};

// The tables of one database, shared by its workers: each takes the next job until none is left
// or one has failed.
class JobQueue {
 public:
  explicit JobQueue(std::vector<TableJob>& jobs) : jobs_(jobs) {}

  // The next job, or null when there is none left (or a job failed).
  TableJob* Next() {
    absl::MutexLock lock(&mu_);
    if (failed_ || next_ >= jobs_.size()) return nullptr;
    return &jobs_[next_++];
  }
  void Fail(absl::Status status) {
    absl::MutexLock lock(&mu_);
    if (!failed_) first_error_ = std::move(status);
    failed_ = true;
  }
  void WorkerDone() {
    absl::MutexLock lock(&mu_);
    ++done_;
  }
  // Waits until `workers` have finished, cancelling them all when `canceller` is cancelled
  // (checked every 100 ms: QueryCanceller reaches only one connection).
  void Wait(int workers, const QueryCanceller* canceller,
            const std::vector<std::unique_ptr<QueryCanceller>>& worker_cancellers) {
    absl::MutexLock lock(&mu_);
    bool cancelled = false;
    auto all_done = [this, workers]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return done_ >= workers; };
    while (!mu_.AwaitWithTimeout(absl::Condition(&all_done), absl::Milliseconds(100))) {
      if (!cancelled && canceller != nullptr && canceller->cancelled()) {
        cancelled = true;
        failed_ = true;
        for (const auto& c : worker_cancellers) c->Cancel();
      }
    }
  }
  absl::Status first_error() {
    absl::MutexLock lock(&mu_);
    return first_error_;
  }

 private:
  std::vector<TableJob>& jobs_;
  absl::Mutex mu_;
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  int done_ ABSL_GUARDED_BY(mu_) = 0;
  bool failed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status first_error_ ABSL_GUARDED_BY(mu_);
};

// One worker: its own connection, in the leader's snapshot, reading jobs until none is left.
void ReadTables(const PostgresConnection& target, const PgSessionOptions& session,
                const std::string& database, const std::string& snapshot, JobQueue& queue,
                QueryCanceller* canceller) {
  absl::Status status = [&]() -> absl::Status {
    absl::StatusOr<PgConnection> opened = PgConnection::Open(target, session);
    if (!opened.ok()) {
      return absl::Status(opened.status().code(),
                          absl::StrCat("cannot connect to database \"", absl::CHexEscape(database),
                                       "\": ", opened.status().message()));
    }
    PgConnection& conn = *opened;
    ScopedCancelAttachment attached(canceller, conn.raw());
    PGH_RETURN_IF_ERROR(Run(conn, kBeginSnapshotSql, database, "BEGIN", canceller));
    // The snapshot id comes from the server's pg_export_snapshot() (hex digits and dashes):
    // SET TRANSACTION SNAPSHOT takes no parameter.
    const std::string set_snapshot = absl::StrCat("SET TRANSACTION SNAPSHOT '", snapshot, "'");
    PGH_RETURN_IF_ERROR(
        Run(conn, set_snapshot.c_str(), database, "importing the snapshot", canceller));
    PGH_RETURN_IF_ERROR(Run(conn, kRowTextSettingsSql, database, "session settings", canceller));
    while (TableJob* job = queue.Next()) {
      const std::string sum =
          !job->column_hash.empty()
              ? absl::StrCat(kColumnSumPrefix, job->column_hash, kColumnSumMiddle, job->qualified,
                             kTableSumSuffix)
              : absl::StrCat(job->typed_hash ? kTableTypedSumPrefix : kTableSumPrefix,
                             job->qualified, kTableSumSuffix);
      absl::StatusOr<PgResult> result = conn.Execute(sum.c_str());
      if (!result.ok()) return Context(result.status(), database, job->qualified, canceller);
      if (result->rows() != 1 || result->columns() != 2) {
        return absl::InternalError(absl::StrCat("database \"", absl::CHexEscape(database), "\", ",
                                                job->qualified, ": unexpected result shape"));
      }
      Digest digest;
      if (!absl::SimpleAtoi(result->Value(0, 0), &digest.rows)) {
        return absl::InternalError(absl::StrCat("unexpected row count ", result->Value(0, 0)));
      }
      // md5 of "<rows>:<sum>": the value keeps the 32 hex digits the comparison expects.
      digest.md5 = Md5::Hex(absl::StrCat(result->Value(0, 0), ":", result->Value(0, 1)));
      job->digest = std::move(digest);
    }
    return Run(conn, kCommitSql, database, "COMMIT", canceller);
  }();
  if (!status.ok()) queue.Fail(status);
  queue.WorkerDone();
}

bool ValidSnapshotId(absl::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return true;
}

class DatabaseReader {
 public:
  DatabaseReader(PgConnection conn, PostgresConnection target, PgSessionOptions session,
                 std::string database, const TableChecksumOptions& options)
      : conn_(std::move(conn)),
        target_(std::move(target)),
        session_(session),
        database_(std::move(database)),
        options_(options) {}

  absl::Status Read(Values& values) {
    ScopedCancelAttachment attached(options_.canceller, conn_.raw());
    PGH_RETURN_IF_ERROR(Exec(kBeginSnapshotSql, "BEGIN"));
    PGH_RETURN_IF_ERROR(Exec(kRowTextSettingsSql, "session settings"));
    absl::StatusOr<std::map<std::string, std::string>> recovery =
        conn_.ExecuteOneRow(kInRecoverySql);
    if (!recovery.ok()) return Ctx(recovery.status(), "pg_is_in_recovery()");
    const bool in_recovery = (*recovery)["in_recovery"] == "true";

    absl::StatusOr<PgResult> relations = conn_.Execute(kRelationsSql);
    if (!relations.ok()) return Ctx(relations.status(), "listing tables");
    std::vector<TableJob> jobs;
    for (int row = 0; row < relations->rows(); ++row) {
      const std::string schema = relations->Value(row, 0);
      const std::string name = relations->Value(row, 1);
      const std::string kind = relations->Value(row, 2);
      const std::string persistence = relations->Value(row, 3);
      const bool populated = relations->Value(row, 4) == "true";
      const std::string key = absl::StrCat(database_, "/", schema, ".", name);
      const std::string tail = absl::StrCat(" persistence=", persistence, " kind=", kind);
      if ((in_recovery && persistence == "u") || !populated) {
        values[key] = absl::StrCat("rows=0 md5=", tail);
        continue;
      }
      TableJob job{key, relations->Value(row, 5), tail};
      // relpages only orders the work: a value that does not parse sorts as an empty table.
      if (!absl::SimpleAtoi(relations->Value(row, 6), &job.pages)) job.pages = 0;
      job.typed_hash = relations->Value(row, 7) == "true";
      job.column_hash = relations->Value(row, 8);
      jobs.push_back(std::move(job));
    }
    // Largest first, so that no worker starts a big table when the others are nearly done.
    std::stable_sort(jobs.begin(), jobs.end(),
                     [](const TableJob& a, const TableJob& b) { return a.pages > b.pages; });

    // The workers read the tables in this transaction's snapshot, while this connection reads
    // the large objects and sequences.
    const int workers = std::min<int>(std::max(1, options_.workers), static_cast<int>(jobs.size()));
    std::vector<std::unique_ptr<QueryCanceller>> cancellers;
    std::vector<std::thread> threads;
    JobQueue queue(jobs);
    if (workers > 0) {
      absl::StatusOr<std::map<std::string, std::string>> exported =
          conn_.ExecuteOneRow(kExportSnapshotSql);
      if (!exported.ok()) return Ctx(exported.status(), "pg_export_snapshot()");
      const std::string snapshot = (*exported)["snapshot"];
      if (!ValidSnapshotId(snapshot)) {
        return absl::InternalError(
            absl::StrCat("unexpected snapshot id from the server: ", absl::CHexEscape(snapshot)));
      }
      for (int i = 0; i < workers; ++i) {
        cancellers.push_back(std::make_unique<QueryCanceller>());
        if (options_.canceller != nullptr && options_.canceller->cancelled()) {
          cancellers.back()->Cancel();
        }
      }
      for (int i = 0; i < workers; ++i) {
        threads.emplace_back(ReadTables, target_, session_, database_, snapshot, std::ref(queue),
                             cancellers[i].get());
      }
    }
    absl::StatusOr<Digest> large_objects =
        Stream(conn_, kDeclareLargeObjectsSql, /*separator=*/"\n", database_, "large objects",
               options_.canceller);
    absl::StatusOr<PgResult> sequences = large_objects.ok()
                                             ? conn_.Execute(kSequencesSql)
                                             : absl::StatusOr<PgResult>(large_objects.status());
    if (!large_objects.ok()) {
      for (const auto& c : cancellers) c->Cancel();
    }
    queue.Wait(workers, options_.canceller, cancellers);
    for (std::thread& t : threads) t.join();
    if (options_.canceller != nullptr && options_.canceller->cancelled()) {
      return absl::CancelledError(
          absl::StrCat("table checksums cancelled while reading database ", database_));
    }
    PGH_RETURN_IF_ERROR(large_objects.status());
    if (!sequences.ok()) return Ctx(sequences.status(), "reading sequences");
    PGH_RETURN_IF_ERROR(queue.first_error());

    uint64_t rows = 0;
    for (const TableJob& job : jobs) {
      values[job.key] = absl::StrCat("rows=", job.digest->rows, " md5=", job.digest->md5, job.tail);
      rows += job.digest->rows;
    }
    values[absl::StrCat(database_, "/large_objects")] =
        absl::StrCat("rows=", large_objects->rows, " md5=", large_objects->md5);
    for (int row = 0; row < sequences->rows(); ++row) {
      values[absl::StrCat(database_, "/sequence:", sequences->Value(row, 0), ".",
                          sequences->Value(row, 1))] = sequences->Value(row, 2);
    }
    PGH_RETURN_IF_ERROR(Exec(kCommitSql, "COMMIT"));
    if (options_.log) {
      options_.log(absl::StrCat("database ", database_, ": ", jobs.size(), " tables read (", rows,
                                " rows) by ", workers, workers == 1 ? " worker, " : " workers, ",
                                large_objects->rows, " large objects, ", sequences->rows(),
                                " sequences",
                                in_recovery ? "; in recovery, unlogged tables not read" : ""));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Ctx(const absl::Status& status, absl::string_view what) const {
    return Context(status, database_, what, options_.canceller);
  }
  absl::Status Exec(const char* sql, absl::string_view what) {
    return Run(conn_, sql, database_, what, options_.canceller);
  }

  PgConnection conn_;
  const PostgresConnection target_;
  const PgSessionOptions session_;
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
    PGH_ASSIGN_OR_RETURN(PgResult result, listing.Execute(kConnectableDatabasesSql));
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
    DatabaseReader reader(*std::move(opened), target, session, database, options);
    PGH_RETURN_IF_ERROR(reader.Read(values));
  }
  PGH_LOG_INFO("table checksums of {} databases ({} values) in {}", databases.size(), values.size(),
               absl::FormatDuration(absl::Now() - started));
  return values;
}

}  // namespace pghaul::agent
