// A small RAII wrapper over libpq for the agent's own fixed SQL: one connection over the local
// socket, statements run through PQexecParams only (one statement per call, values as
// parameters, never spliced into the text), errors as absl::Status carrying the SQLSTATE.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/agent_config.h"
#include "libpq-fe.h"

namespace pghaul::agent {

// The payload key under which a query error's SQLSTATE (e.g. "25006") is attached to its status.
inline constexpr char kSqlStatePayloadKey[] = "type.pghaul.dev/pghaul.SqlState";

// The SQLSTATE attached to `status` by PgConnection::Execute, if any.
std::optional<std::string> SqlStateOf(const absl::Status& status);

// The rows of one statement's result, in libpq's text format.
class PgResult {
 public:
  explicit PgResult(PGresult* result) : result_(result) {}

  // 0 rows and 0 columns for a null result.
  int rows() const { return PQntuples(result_.get()); }
  int columns() const { return PQnfields(result_.get()); }
  std::string ColumnName(int column) const { return PQfname(result_.get(), column); }
  bool IsNull(int row, int column) const { return PQgetisnull(result_.get(), row, column) != 0; }
  // The value's text; "" for NULL (use IsNull to tell them apart).
  std::string Value(int row, int column) const;
  // The first row as {column name: text}, NULL as "". Empty if there is no row.
  std::map<std::string, std::string> FirstRowByName() const;

  // May be null (libpq could not even build a result).
  const PGresult* get() const { return result_.get(); }

 private:
  struct Clearer {
    void operator()(PGresult* result) const { PQclear(result); }
  };
  std::unique_ptr<PGresult, Clearer> result_;
};

struct PgSessionOptions {
  // libpq rounds values under 2 s up to 2 s.
  absl::Duration connect_timeout = absl::Seconds(5);
  // The server cancels any statement running longer (SQLSTATE 57014 -> DeadlineExceeded).
  absl::Duration statement_timeout = absl::Seconds(60);
};

// One libpq connection, closed on destruction. Move-only. Not thread-safe: one user at a time.
//
// The session is opened with application_name=pghaul-agent, TimeZone=UTC and DateStyle=ISO (so
// timestamps read back the same whatever the server's defaults), and the given statement_timeout.
class PgConnection {
 public:
  // Connects to `target` (PostgresConnection::ConnInfo(), with this session's settings on top).
  // Errors: Unavailable with libpq's message on one line (server down, socket missing,
  // authentication refused).
  static absl::StatusOr<PgConnection> Open(const PostgresConnection& target,
                                           const PgSessionOptions& options = {});

  PgConnection(PgConnection&& other) noexcept;
  PgConnection& operator=(PgConnection&& other) noexcept;
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;
  ~PgConnection();

  // Runs exactly one statement. `sql` must be a fixed text written in the source: every value
  // that varies is a parameter ($1, $2, ... in text form; nullopt is NULL).
  // Errors: the SQLSTATE is in the message ("ERROR 25006: ...") and as a payload (SqlStateOf):
  //   DeadlineExceeded for 57014 (statement_timeout), Unavailable for class 08 and 57P01-57P03
  //   or a lost connection, Internal for class XX, FailedPrecondition for every other error.
  absl::StatusOr<PgResult> Execute(const char* sql,
                                   const std::vector<std::optional<std::string>>& params = {});

  // The same, for a statement expected to return exactly one row. Errors: those of Execute, and
  // Internal when the row count is not one.
  absl::StatusOr<std::map<std::string, std::string>> ExecuteOneRow(
      const char* sql, const std::vector<std::optional<std::string>>& params = {});

  // For the rare caller that needs libpq directly (e.g. PQbackendPID in tests).
  PGconn* raw() const { return conn_; }

 private:
  explicit PgConnection(PGconn* conn) : conn_(conn) {}

  PGconn* conn_ = nullptr;
};

}  // namespace pghaul::agent
