// ENSURE_ROLES and DROP_ROLES (SqlQuery): a Patroni target's superuser, replication and rewind
// users created on the source, where a standby restore gets them through the archive, since a
// standby is read-only and Patroni must log in to it (docs/patroni.md). Each role is created
// with the SCRAM verifier the target's agent computed from patroni.yml: the source never sees a
// password. A role that already exists is never changed (its password is the source's own).
#pragma once

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/pg_connection.h"
#include "pghaul/v1/tasks.pb.h"

namespace pghaul::agent {

// Checks the roles of an ENSURE_ROLES or DROP_ROLES query: 1 to 8 of them, names of 1 to 63
// bytes without control characters, no name twice; for ENSURE_ROLES each verifier is a
// SCRAM-SHA-256 one of printable ASCII. Errors: InvalidArgument naming the role.
absl::Status ValidateRolesToEnsure(const v1::SqlQuery& query);

// values: existing, missing (before this call), created: names joined by ", ". Each role is
// created and marked (COMMENT ON ROLE: created by pghaul) in one transaction.
absl::StatusOr<std::map<std::string, std::string>> EnsureRoles(const PostgresConnection& target,
                                                               const v1::SqlQuery& query);

// DROP ROLE IF EXISTS for each name that carries ENSURE_ROLES's mark; a role without it is left
// alone (and logged). values: dropped, not_created_by_pghaul.
absl::StatusOr<std::map<std::string, std::string>> DropRoles(const PostgresConnection& target,
                                                             const v1::SqlQuery& query);

}  // namespace pghaul::agent
