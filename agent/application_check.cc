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

absl::StatusOr<std::map<std::string, std::string>> RunApplicationCheck(
    const PostgresConnection& conn, const v1::ApplicationCheck& check, QueryCanceller* canceller) {
  PGH_RETURN_IF_ERROR(ValidateApplicationCheck(check));
  PostgresConnection target = conn;
  if (!check.database().empty()) target.database = check.database();
  PgSessionOptions options;
  options.statement_timeout = kStatementTimeout;
  PGH_ASSIGN_OR_RETURN(PgConnection session, PgConnection::Open(target, options));
  ScopedCancelAttachment attached(canceller, session.raw());

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
