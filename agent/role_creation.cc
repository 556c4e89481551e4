#include "agent/role_creation.h"

#include <set>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/server_settings.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace pghaul::agent {
namespace {

constexpr int kMaxRoles = 8;
constexpr size_t kMaxNameBytes = 63;
constexpr char kRoleExistsSql[] = "SELECT count(*)::text AS n FROM pg_roles WHERE rolname = $1";
// The mark ENSURE_ROLES leaves on the roles it creates, and the only roles DROP_ROLES drops: a
// controller cannot have the agent drop a role pghaul did not create (an application's).
constexpr char kCreatedMark[] = "created by pghaul for Patroni (docs/patroni.md)";
constexpr char kMarkedSql[] =
    "SELECT (shobj_description(oid, 'pg_authid') IS NOT DISTINCT FROM $2)::text AS marked "
    "FROM pg_roles WHERE rolname = $1";

bool Printable(absl::string_view text) {
  for (char c : text) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

absl::StatusOr<bool> RoleExists(PgConnection& conn, const std::string& name) {
  PGH_ASSIGN_OR_RETURN(auto row, conn.ExecuteOneRow(kRoleExistsSql, {name}));
  return row["n"] != "0";
}

}  // namespace

absl::Status ValidateRolesToEnsure(const v1::SqlQuery& query) {
  const std::string kind = v1::SqlQuery::Query_Name(query.query());
  if (query.roles().empty() || query.roles_size() > kMaxRoles) {
    return absl::InvalidArgumentError(
        absl::StrCat(kind, " needs 1 to ", kMaxRoles, " roles, got ", query.roles_size()));
  }
  std::set<std::string> seen;
  for (const v1::RoleToEnsure& role : query.roles()) {
    const std::string& name = role.name();
    bool control = false;
    for (char c : name) control = control || static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
    if (name.empty() || name.size() > kMaxNameBytes || control) {
      return absl::InvalidArgumentError(
          absl::StrCat(kind, ": role name '", absl::CHexEscape(name),
                       "' must be 1 to 63 bytes without control characters"));
    }
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat(kind, ": role ", name, " given twice"));
    }
    if (query.query() == v1::SqlQuery::ENSURE_ROLES &&
        (!absl::StartsWith(role.scram_verifier(), "SCRAM-SHA-256$") ||
         !Printable(role.scram_verifier()))) {
      return absl::InvalidArgumentError(
          absl::StrCat(kind, ": role ", name, " needs a SCRAM-SHA-256 verifier, never a password"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::string>> EnsureRoles(const PostgresConnection& target,
                                                               const v1::SqlQuery& query) {
  PGH_RETURN_IF_ERROR(ValidateRolesToEnsure(query));
  PGH_ASSIGN_OR_RETURN(PgConnection conn, PgConnection::Open(target));
  std::vector<std::string> existing, missing, created;
  for (const v1::RoleToEnsure& role : query.roles()) {
    PGH_ASSIGN_OR_RETURN(bool exists, RoleExists(conn, role.name()));
    (exists ? existing : missing).push_back(role.name());
    if (exists || !query.create_roles()) continue;
    PGH_ASSIGN_OR_RETURN(std::string identifier, QuoteIdentifier(conn, role.name()));
    PGH_ASSIGN_OR_RETURN(std::string verifier, QuoteLiteral(conn, role.scram_verifier()));
    // PostgreSQL stores a password that is already a SCRAM verifier as it is.
    const std::string statement =
        absl::StrCat("CREATE ROLE ", identifier, " LOGIN", role.superuser() ? " SUPERUSER" : "",
                     role.replication() ? " REPLICATION" : "", " PASSWORD ", verifier);
    PGH_RETURN_IF_ERROR(conn.Execute("BEGIN").status());
    PGH_RETURN_IF_ERROR(conn.Execute(statement.c_str()).status());
    PGH_ASSIGN_OR_RETURN(std::string mark, QuoteLiteral(conn, kCreatedMark));
    PGH_RETURN_IF_ERROR(
        conn.Execute(absl::StrCat("COMMENT ON ROLE ", identifier, " IS ", mark).c_str()).status());
    PGH_RETURN_IF_ERROR(conn.Execute("COMMIT").status());
    PGH_LOG_INFO("created role {} (login{}{}) with a SCRAM verifier", role.name(),
                 role.superuser() ? ", superuser" : "", role.replication() ? ", replication" : "");
    created.push_back(role.name());
  }
  return std::map<std::string, std::string>{{"existing", absl::StrJoin(existing, ", ")},
                                            {"missing", absl::StrJoin(missing, ", ")},
                                            {"created", absl::StrJoin(created, ", ")}};
}

absl::StatusOr<std::map<std::string, std::string>> DropRoles(const PostgresConnection& target,
                                                             const v1::SqlQuery& query) {
  PGH_RETURN_IF_ERROR(ValidateRolesToEnsure(query));
  PGH_ASSIGN_OR_RETURN(PgConnection conn, PgConnection::Open(target));
  std::vector<std::string> dropped, kept;
  for (const v1::RoleToEnsure& role : query.roles()) {
    PGH_ASSIGN_OR_RETURN(bool exists, RoleExists(conn, role.name()));
    if (!exists) continue;
    PGH_ASSIGN_OR_RETURN(auto marked, conn.ExecuteOneRow(kMarkedSql, {role.name(), kCreatedMark}));
    if (marked["marked"] != "true") {
      PGH_LOG_WARN("role {} was not created by pghaul: not dropped", role.name());
      kept.push_back(role.name());
      continue;
    }
    PGH_ASSIGN_OR_RETURN(std::string identifier, QuoteIdentifier(conn, role.name()));
    const std::string statement = absl::StrCat("DROP ROLE IF EXISTS ", identifier);
    PGH_RETURN_IF_ERROR(conn.Execute(statement.c_str()).status());
    PGH_LOG_INFO("dropped role {}", role.name());
    dropped.push_back(role.name());
  }
  return std::map<std::string, std::string>{{"dropped", absl::StrJoin(dropped, ", ")},
                                            {"not_created_by_pghaul", absl::StrJoin(kept, ", ")}};
}

}  // namespace pghaul::agent
