#include "agent/server_settings.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "libpq-fe.h"

namespace pghaul::agent {

absl::StatusOr<std::string> QuoteLiteral(PgConnection& conn, absl::string_view value) {
  char* quoted = PQescapeLiteral(conn.raw(), value.data(), value.size());
  if (quoted == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot quote a value for ALTER SYSTEM: ", PQerrorMessage(conn.raw())));
  }
  std::string literal(quoted);
  PQfreemem(quoted);
  return literal;
}

absl::StatusOr<std::string> QuoteIdentifier(PgConnection& conn, absl::string_view name) {
  char* quoted = PQescapeIdentifier(conn.raw(), name.data(), name.size());
  if (quoted == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot quote an identifier: ", PQerrorMessage(conn.raw())));
  }
  std::string identifier(quoted);
  PQfreemem(quoted);
  return identifier;
}

absl::Status AlterSystemSet(PgConnection& conn, absl::string_view name, absl::string_view value) {
  PGH_ASSIGN_OR_RETURN(std::string literal, QuoteLiteral(conn, value));
  const std::string statement = absl::StrCat("ALTER SYSTEM SET ", name, " = ", literal);
  return conn.Execute(statement.c_str()).status();
}

}  // namespace pghaul::agent
