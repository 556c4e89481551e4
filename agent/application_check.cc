#include "agent/application_check.h"

#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/md5.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace pghaul::agent {
namespace {

constexpr absl::Duration kStatementTimeout = absl::Seconds(60);
constexpr size_t kMaxDatabaseNameBytes = 63;  // NAMEDATALEN - 1
constexpr size_t kMaxNameBytes = 255;

constexpr char kBeginSql[] = "BEGIN READ ONLY";
// Whether the session's role could reach the host, and how (for the message).
constexpr char kHostReachSql[] =
    "SELECT reasons FROM (SELECT concat_ws(', ',"
    " CASE WHEN r.rolsuper THEN 'is a superuser' END,"
    " CASE WHEN pg_has_role(session_user, 'pg_execute_server_program', 'MEMBER')"
    "  THEN 'is a member of pg_execute_server_program' END,"
    " CASE WHEN pg_has_role(session_user, 'pg_read_server_files', 'MEMBER')"
    "  THEN 'is a member of pg_read_server_files' END,"
    " CASE WHEN pg_has_role(session_user, 'pg_write_server_files', 'MEMBER')"
    "  THEN 'is a member of pg_write_server_files' END,"
    " CASE WHEN has_function_privilege(session_user, 'pg_read_file(text)', 'EXECUTE')"
    "  OR has_function_privilege(session_user, 'pg_read_binary_file(text)', 'EXECUTE')"
    "  OR has_function_privilege(session_user, 'pg_ls_dir(text)', 'EXECUTE')"
    "  THEN 'may read server files (EXECUTE on pg_read_file and the like)' END,"
    " CASE WHEN has_function_privilege(session_user, 'lo_export(oid, text)', 'EXECUTE')"
    "  OR has_function_privilege(session_user, 'lo_import(text)', 'EXECUTE')"
    "  THEN 'may execute lo_export or lo_import' END) AS reasons"
    " FROM pg_roles r WHERE r.rolname = session_user) AS role";
// Takes the transaction's first snapshot: from then on it cannot become read-write.
constexpr char kFirstSnapshotSql[] = "SELECT 1";
constexpr char kRollbackSql[] = "ROLLBACK";

bool HasControlCharacter(absl::string_view text) {
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) return true;
  }
  return false;
}

void AppendEscaped(absl::string_view value, std::string& line) {
  for (char c : value) {
    switch (c) {
      case '\\':
        line += "\\\\";
        break;
      case '\t':
        line += "\\t";
        break;
      case '\n':
        line += "\\n";
        break;
      case '\r':
        line += "\\r";
        break;
      default:
        line.push_back(c);
    }
  }
}

}  // namespace

absl::Status ValidateApplicationCheck(const v1::ApplicationCheck& check) {
  const std::string& sql = check.sql();
  if (sql.find_first_not_of(" \t\r\n") == std::string::npos) {
    return absl::InvalidArgumentError("application check has no SQL");
  }
  if (sql.size() > kMaxApplicationCheckSqlBytes) {
    return absl::InvalidArgumentError(absl::StrCat("application check SQL is ", sql.size(),
                                                   " bytes; at most ", kMaxApplicationCheckSqlBytes,
                                                   " are allowed"));
  }
  if (absl::StrContains(sql, '\0')) {
    return absl::InvalidArgumentError("application check SQL contains a NUL byte");
  }
  const std::string& database = check.database();
  if (!database.empty() &&
      (database.size() > kMaxDatabaseNameBytes || HasControlCharacter(database))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "application check database \"", absl::CHexEscape(database.substr(0, 80)),
        "\" is invalid: expected 1-63 bytes without control characters (or empty for the "
        "agent's own database)"));
  }
  if (check.name().size() > kMaxNameBytes || HasControlCharacter(check.name())) {
    return absl::InvalidArgumentError(
        "application check name is invalid: expected at most 255 bytes without control "
        "characters");
  }
  return absl::OkStatus();
}

std::string ResultDigest(const PgResult& result) {
  Md5 md5;
  std::string line;
  for (int row = 0; row < result.rows(); ++row) {
    line.clear();
    for (int column = 0; column < result.columns(); ++column) {
      if (column > 0) line.push_back('\t');
      if (result.IsNull(row, column)) {
        line += "\\N";
      } else {
        AppendEscaped(result.Value(row, column), line);
      }
    }
    line.push_back('\n');
    md5.Update(line);
  }
  return md5.HexDigest();
}

absl::Status NoChecksUserError() {
  return absl::FailedPreconditionError(
      "application checks need a role of their own: set application_checks.user in agent.yaml to "
      "a login role that is not a superuser and may read what the checks read (they never run as "
      "the agent's role, which could reach the host's files and programs; docs/configuration.md)");
}

absl::StatusOr<std::map<std::string, std::string>> RunApplicationCheck(
    const PostgresConnection& conn, const std::string& checks_user,
    const v1::ApplicationCheck& check, QueryCanceller* canceller) {
  PGH_RETURN_IF_ERROR(ValidateApplicationCheck(check));
  if (checks_user.empty()) return NoChecksUserError();
  PostgresConnection target = conn;
  target.user = checks_user;
  if (!check.database().empty()) target.database = check.database();
  PgSessionOptions options;
  options.statement_timeout = kStatementTimeout;
  PGH_ASSIGN_OR_RETURN(PgConnection session, PgConnection::Open(target, options));
  ScopedCancelAttachment attached(canceller, session.raw());
  PGH_ASSIGN_OR_RETURN(PgResult reach, session.Execute(kHostReachSql));
  if (reach.rows() != 1 || !reach.Value(0, 0).empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "application_checks.user '", checks_user, "' ",
        reach.rows() == 1 ? reach.Value(0, 0) : "is not a known role",
        ": a check running as it could reach the host's files or programs; use a role without "
        "superuser, without pg_execute_server_program, pg_read_server_files and "
        "pg_write_server_files, and without EXECUTE on the server-file functions"));
  }

  PGH_RETURN_IF_ERROR(session.Execute(kBeginSql).status());
  PGH_RETURN_IF_ERROR(session.Execute(kFirstSnapshotSql).status());
  // The plan's text, as one statement without parameters: see the header.
  absl::StatusOr<PgResult> result = session.Execute(check.sql().c_str());
  // Nothing to keep, and a failed statement leaves the transaction aborted anyway. When the
  // connection is gone this fails too, and closing it ends the transaction.
  absl::Status rolled_back = session.Execute(kRollbackSql).status();
  if (!rolled_back.ok())
    PGH_LOG_DEBUG("ROLLBACK after application check: {}", rolled_back.ToString());

  if (canceller != nullptr && canceller->cancelled()) {
    return absl::CancelledError(absl::StrCat("application check ", check.name(), " cancelled"));
  }
  if (!result.ok()) return result.status();
  std::map<std::string, std::string> values;
  values["rows"] = absl::StrCat(result->rows());
  values["digest"] = ResultDigest(*result);
  values["first"] = (result->rows() > 0 && result->columns() > 0 && !result->IsNull(0, 0))
                        ? result->Value(0, 0)
                        : "";
  return values;
}

}  // namespace pghaul::agent
