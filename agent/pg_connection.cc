#include "agent/pg_connection.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"

namespace pghaul::agent {
namespace {

// libpq's messages span lines ("...failed: No such file\n\tIs the server running..."): one line
// reads better in a task result and a log.
std::string OneLine(absl::string_view text) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(text, absl::ByAnyChar("\n\r\t"), absl::SkipWhitespace());
  for (absl::string_view& part : parts) part = absl::StripAsciiWhitespace(part);
  return absl::StrJoin(parts, " ");
}

// Without a receiver libpq prints NOTICE and WARNING messages on the agent's stderr; route them
// through the agent's log instead (e.g. pg_terminate_backend's "backend did not terminate").
void LogNotice(void* /*unused*/, const PGresult* result) {
  const char* severity = PQresultErrorField(result, PG_DIAG_SEVERITY_NONLOCALIZED);
  const char* message = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  absl::string_view severity_text = severity != nullptr ? severity : "NOTICE";
  absl::string_view message_text = message != nullptr ? message : "";
  if (severity_text == "WARNING") {
    PGH_LOG_WARN("postgres {}: {}", severity_text, message_text);
  } else {
    PGH_LOG_DEBUG("postgres {}: {}", severity_text, message_text);
  }
}

absl::StatusCode CodeForSqlState(absl::string_view sqlstate) {
  if (sqlstate == "57014") return absl::StatusCode::kDeadlineExceeded;  // query_canceled
  if (absl::StartsWith(sqlstate, "08")) return absl::StatusCode::kUnavailable;
  // admin_shutdown, crash_shutdown, cannot_connect_now: the server is going away or not ready.
  if (sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03") {
    return absl::StatusCode::kUnavailable;
  }
  if (absl::StartsWith(sqlstate, "XX")) return absl::StatusCode::kInternal;
  return absl::StatusCode::kFailedPrecondition;
}

}  // namespace

std::optional<std::string> SqlStateOf(const absl::Status& status) {
  auto payload = status.GetPayload(kSqlStatePayloadKey);  // absl::optional in this Abseil
  if (!payload.has_value()) return std::nullopt;
  return std::string(*payload);
}

std::string PgResult::Value(int row, int column) const {
  return std::string(PQgetvalue(result_.get(), row, column),
                     static_cast<size_t>(PQgetlength(result_.get(), row, column)));
}

std::map<std::string, std::string> PgResult::FirstRowByName() const {
  std::map<std::string, std::string> values;
  if (rows() == 0) return values;
  for (int column = 0; column < columns(); ++column) {
    values[ColumnName(column)] = Value(0, column);
  }
  return values;
}

absl::StatusOr<PgConnection> PgConnection::Open(const PostgresConnection& target,
                                                const PgSessionOptions& options) {
  // The conninfo string from the agent's config comes first and is expanded (expand_dbname);
  // the keywords after it override it, so this session's settings always apply.
  const std::string conninfo = target.ConnInfo();
  const std::string connect_timeout =
      absl::StrCat(std::max<int64_t>(2, absl::ToInt64Seconds(options.connect_timeout)));
  const std::string server_options =
      absl::StrCat("-c statement_timeout=", absl::ToInt64Milliseconds(options.statement_timeout),
                   " -c TimeZone=UTC -c DateStyle=ISO");
  const char* const keywords[] = {"dbname",  "connect_timeout", "application_name",
                                  "options", "client_encoding", nullptr};
  const char* const values[] = {conninfo.c_str(), connect_timeout.c_str(),
                                "pghaul-agent",   server_options.c_str(),
                                "UTF8",           nullptr};
  PGconn* conn = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
  if (conn == nullptr) return absl::ResourceExhaustedError("libpq could not allocate a connection");
  PgConnection connection(conn);
  if (PQstatus(conn) != CONNECTION_OK) {
    return absl::UnavailableError(OneLine(PQerrorMessage(conn)));
  }
  PQsetNoticeReceiver(conn, &LogNotice, nullptr);
  return connection;
}

PgConnection::PgConnection(PgConnection&& other) noexcept
    : conn_(std::exchange(other.conn_, nullptr)) {}

PgConnection& PgConnection::operator=(PgConnection&& other) noexcept {
  if (this != &other) {
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = std::exchange(other.conn_, nullptr);
  }
  return *this;
}

PgConnection::~PgConnection() {
  if (conn_ != nullptr) PQfinish(conn_);
}

absl::StatusOr<PgResult> PgConnection::Execute(
    const char* sql, const std::vector<std::optional<std::string>>& params) {
  std::vector<const char*> param_values;
  param_values.reserve(params.size());
  for (const std::optional<std::string>& param : params) {
    param_values.push_back(param.has_value() ? param->c_str() : nullptr);
  }
  // PQexecParams (the extended protocol) refuses more than one statement in `sql`, which keeps
  // the fixed texts single statements even against an accidental ';'. Types are inferred.
  PgResult result(PQexecParams(conn_, sql, static_cast<int>(param_values.size()),
                               /*paramTypes=*/nullptr, param_values.data(),
                               /*paramLengths=*/nullptr, /*paramFormats=*/nullptr,
                               /*resultFormat=*/0));
  const PGresult* raw_result = result.get();
  if (raw_result == nullptr) {
    return absl::UnavailableError(OneLine(PQerrorMessage(conn_)));
  }
  const ExecStatusType status = PQresultStatus(raw_result);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;

  const char* sqlstate = PQresultErrorField(raw_result, PG_DIAG_SQLSTATE);
  if (sqlstate == nullptr) {
    // No SQLSTATE: libpq itself failed, which in practice means the connection broke.
    const bool connection_lost = PQstatus(conn_) == CONNECTION_BAD;
    std::string message = OneLine(PQresultErrorMessage(raw_result));
    if (message.empty()) message = OneLine(PQerrorMessage(conn_));
    return absl::Status(
        connection_lost ? absl::StatusCode::kUnavailable : absl::StatusCode::kInternal, message);
  }
  const char* primary = PQresultErrorField(raw_result, PG_DIAG_MESSAGE_PRIMARY);
  const char* detail = PQresultErrorField(raw_result, PG_DIAG_MESSAGE_DETAIL);
  const char* hint = PQresultErrorField(raw_result, PG_DIAG_MESSAGE_HINT);
  std::string message = absl::StrCat("ERROR ", sqlstate, ": ", primary != nullptr ? primary : "");
  if (detail != nullptr) absl::StrAppend(&message, " (detail: ", OneLine(detail), ")");
  if (hint != nullptr) absl::StrAppend(&message, " (hint: ", OneLine(hint), ")");
  absl::Status error(CodeForSqlState(sqlstate), message);
  error.SetPayload(kSqlStatePayloadKey, absl::Cord(sqlstate));
  return error;
}

absl::StatusOr<std::map<std::string, std::string>> PgConnection::ExecuteOneRow(
    const char* sql, const std::vector<std::optional<std::string>>& params) {
  absl::StatusOr<PgResult> result = Execute(sql, params);
  if (!result.ok()) return result.status();
  if (result->rows() != 1) {
    return absl::InternalError(
        absl::StrCat("expected one row, got ", result->rows(), " from: ", sql));
  }
  return result->FirstRowByName();
}

}  // namespace pghaul::agent
