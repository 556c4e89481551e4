// Writing one server setting with ALTER SYSTEM when its value is not a fixed text of the agent's
// own (a value read back from the server or built from the agent's config): the value is quoted
// by libpq, the setting's name is always one of pghaul's fixed names.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/pg_connection.h"

namespace pghaul::agent {

// `value` as an SQL string literal, quoted by libpq for this connection's encoding and
// standard_conforming_strings. Errors: Internal when libpq cannot quote it.
absl::StatusOr<std::string> QuoteLiteral(PgConnection& conn, absl::string_view value);

// `name` as an SQL identifier (double-quoted by libpq). Errors: Internal when libpq cannot.
absl::StatusOr<std::string> QuoteIdentifier(PgConnection& conn, absl::string_view name);

// ALTER SYSTEM SET <name> = <value>. `name` must be a constant of the caller's (never a value
// that came from outside); `value` is quoted. The change is in postgresql.auto.conf only: reload
// (ReloadConfigurationAndWait in sql_catalogue.h) for it to apply. Errors: those of QuoteLiteral
// and PgConnection::Execute.
absl::Status AlterSystemSet(PgConnection& conn, absl::string_view name, absl::string_view value);

}  // namespace pghaul::agent
