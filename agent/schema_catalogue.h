// SCHEMA_CATALOG (tasks.proto): the schema of a cluster, object by object, so verify can list
// every object that differs between a restored copy and its source.
//
// What is read: cluster-wide (from the agent's own database) databases, roles and role
// memberships; then, per database that accepts connections (but template0/template1), in one
// REPEATABLE READ READ ONLY transaction: schemas, tables (relkind r, p, f), columns (of tables,
// views and materialized views), indexes, constraints, sequences (their definition: the values
// are TABLE_CHECKSUMS'), views and materialized views (md5 of the definition), functions and
// procedures (identity signature, md5 of the body), extensions (version), triggers. System
// schemas (pg_catalog, information_schema, pg_toast, temporary ones) are left out. Every query
// only reads catalogues, so it works on a standby in recovery.
//
// Values, keyed "<db>/<kind>:<name>" or "cluster/<kind>:<name>" (names unquoted, qualified by
// schema: "app/column:public.orders.note", "app/index:public.orders_pkey",
// "app/function:public.total(integer, text)", "cluster/membership:alice in readers"):
//   "<attribute>=<value>" pairs joined by a tab, attributes in a fixed order per kind, each
//   value with tabs, newlines and backslashes C-escaped (EncodeCatalogueValue), e.g.
//   "type=character varying(10)\tnot_null=false\tdefault=\tposition=3\tcollation=".
// Long texts (view definitions, function bodies) are md5s (definition_md5, body_md5).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/agent_config.h"
#include "agent/query_canceller.h"

namespace pghaul::agent {

struct SchemaCatalogueOptions {
  absl::Duration statement_timeout = absl::Minutes(10);
  QueryCanceller* canceller = nullptr;  // optional
};

// Reads everything described above. Needs CONNECT on every database (no superuser).
// Errors: as ComputeTableChecksums (Unavailable, FailedPrecondition with the server's error and
// the database named, DeadlineExceeded, Cancelled).
absl::StatusOr<std::map<std::string, std::string>> ComputeSchemaCatalogue(
    const PostgresConnection& conn, const SchemaCatalogueOptions& options = {});

// "name=value" pairs joined by tabs, each value C-escaped so that it holds no tab or newline.
std::string EncodeCatalogueValue(const std::vector<std::pair<std::string, std::string>>& fields);

}  // namespace pghaul::agent
