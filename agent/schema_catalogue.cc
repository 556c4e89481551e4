#include "agent/schema_catalogue.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/pg_connection.h"
#include "agent/snapshot_sql.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace pghaul::agent {
namespace {

using Values = std::map<std::string, std::string>;

// One kind of object: a fixed query whose first column is the object's name and whose other
// columns are its attributes (column name = attribute name).
struct CatalogueQuery {
  const char* kind;
  const char* sql;
};

// Expressions (defaults, index and constraint definitions) print the same on both sides only
// with the same search_path: empty, so every name is printed schema-qualified.
constexpr char kSettingsSql[] =
    "SELECT set_config('search_path', '', true), set_config('DateStyle', 'ISO', true),"
    " set_config('TimeZone', 'UTC', true), set_config('extra_float_digits', '1', true)";

// Cluster-wide objects, read once. Passwords are not compared (pg_authid needs a superuser).
const CatalogueQuery kClusterQueries[] = {
    {"database", R"sql(
SELECT d.datname, pg_get_userbyid(d.datdba) AS owner,
       pg_encoding_to_char(d.encoding) AS encoding, d.datcollate AS collate,
       d.datctype AS ctype, d.datallowconn::text AS allow_connections,
       d.datconnlimit::text AS connection_limit, coalesce(d.datacl::text, '') AS acl
  FROM pg_database d ORDER BY 1)sql"},
    {"role", R"sql(
SELECT r.rolname, r.rolsuper::text AS superuser, r.rolinherit::text AS inherit,
       r.rolcreaterole::text AS createrole, r.rolcreatedb::text AS createdb,
       r.rolcanlogin::text AS login, r.rolreplication::text AS replication,
       r.rolbypassrls::text AS bypassrls, r.rolconnlimit::text AS connection_limit,
       coalesce(r.rolvaliduntil::text, '') AS valid_until,
       coalesce(array_to_string(r.rolconfig, ','), '') AS config
  FROM pg_roles r ORDER BY 1)sql"},
    {"membership", R"sql(
SELECT m.rolname || ' in ' || r.rolname, a.admin_option::text AS admin_option
  FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
 ORDER BY 1)sql"},
};

// The filter on user schemas, as a fixed piece of every per-database query.
#define PGH_USER_SCHEMA(alias)                                       \
  " " alias                                                          \
  ".nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')" \
  " AND " alias ".nspname NOT LIKE 'pg\\_temp\\_%' AND " alias       \
  ".nspname NOT LIKE 'pg\\_toast\\_temp\\_%' "

const CatalogueQuery kDatabaseQueries[] = {
    {"schema",
     "SELECT n.nspname, pg_get_userbyid(n.nspowner) AS owner, coalesce(n.nspacl::text, '') AS acl"
     " FROM pg_namespace n WHERE" PGH_USER_SCHEMA("n") "ORDER BY 1"},
    {"table",
     "SELECT n.nspname || '.' || c.relname, c.relkind::text AS kind,"
     " c.relpersistence::text AS persistence, pg_get_userbyid(c.relowner) AS owner,"
     " coalesce(c.relacl::text, '') AS acl, c.relrowsecurity::text AS row_security,"
     " coalesce(pg_get_expr(c.relpartbound, c.oid), '') AS partition_bound"
     " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
     " WHERE c.relkind IN ('r', 'p', 'f') AND c.relpersistence IN ('p', 'u') AND" PGH_USER_SCHEMA(
         "n") "ORDER BY 1"},
    {"column",
     "SELECT n.nspname || '.' || c.relname || '.' || a.attname,"
     " format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull::text AS not_null,"
     " coalesce(pg_get_expr(d.adbin, d.adrelid), '') AS default, a.attnum::text AS position,"
     " CASE WHEN a.attcollation = 0 OR a.attcollation = t.typcollation THEN ''"
     " ELSE a.attcollation::regcollation::text END AS collation,"
     " a.attidentity::text AS identity, a.attgenerated::text AS generated"
     " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
     " JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid"
     " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
     " WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f', 'v', 'm')"
     " AND c.relpersistence IN ('p', 'u') AND" PGH_USER_SCHEMA("n") "ORDER BY 1"},
    {"index",
     "SELECT n.nspname || '.' || ci.relname, tn.nspname || '.' || tc.relname AS table,"
     " pg_get_indexdef(i.indexrelid) AS definition, i.indisvalid::text AS valid"
     " FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid"
     " JOIN pg_namespace n ON n.oid = ci.relnamespace JOIN pg_class tc ON tc.oid = i.indrelid"
     " JOIN pg_namespace tn ON tn.oid = tc.relnamespace"
     " WHERE ci.relpersistence IN ('p', 'u') AND" PGH_USER_SCHEMA("n") "ORDER BY 1"},
    {"constraint",
     "SELECT n.nspname || '.' || coalesce(c.relname, t.typname) || '.' || con.conname,"
     " con.contype::text AS type, pg_get_constraintdef(con.oid) AS definition,"
     " con.convalidated::text AS validated"
     " FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace"
     " LEFT JOIN pg_class c ON c.oid = con.conrelid LEFT JOIN pg_type t ON t.oid = con.contypid"
     " WHERE (c.oid IS NULL OR c.relpersistence IN ('p', 'u')) AND" PGH_USER_SCHEMA(
         "n") "ORDER BY 1"},
    {"sequence",
     "SELECT n.nspname || '.' || c.relname, format_type(s.seqtypid, NULL) AS type,"
     " s.seqstart::text AS start, s.seqincrement::text AS increment, s.seqmin::text AS min,"
     " s.seqmax::text AS max, s.seqcache::text AS cache, s.seqcycle::text AS cycle,"
     " c.relpersistence::text AS persistence, pg_get_userbyid(c.relowner) AS owner"
     " FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid"
     " JOIN pg_namespace n ON n.oid = c.relnamespace"
     " WHERE c.relpersistence IN ('p', 'u') AND" PGH_USER_SCHEMA("n") "ORDER BY 1"},
    {"view",
     "SELECT n.nspname || '.' || c.relname, md5(pg_get_viewdef(c.oid)) AS definition_md5,"
     " pg_get_userbyid(c.relowner) AS owner, coalesce(c.relacl::text, '') AS acl"
     " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
     " WHERE c.relkind = 'v' AND" PGH_USER_SCHEMA("n") "ORDER BY 1"},
    {"materialized view",
     "SELECT n.nspname || '.' || c.relname, md5(pg_get_viewdef(c.oid)) AS definition_md5,"
     " pg_get_userbyid(c.relowner) AS owner, c.relispopulated::text AS populated"
     " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
     " WHERE c.relkind = 'm' AND" PGH_USER_SCHEMA("n") "ORDER BY 1"},
    {"function",
     "SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid)"
     " || ')', p.prokind::text AS kind, coalesce(pg_get_function_result(p.oid), '') AS returns,"
     " l.lanname AS language, p.provolatile::text AS volatility,"
     " p.prosecdef::text AS security_definer, p.proisstrict::text AS strict,"
     " coalesce(array_to_string(p.proconfig, ','), '') AS config,"
     " md5(coalesce(p.prosrc, '') || '/' || coalesce(p.probin, '') || '/' ||"
     " coalesce(pg_get_function_sqlbody(p.oid), '')) AS body_md5,"
     " pg_get_userbyid(p.proowner) AS owner, coalesce(p.proacl::text, '') AS acl"
     " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
     " JOIN pg_language l ON l.oid = p.prolang WHERE" PGH_USER_SCHEMA("n") "ORDER BY 1"},
    {"extension",
     "SELECT e.extname, e.extversion AS version, n.nspname AS schema"
     " FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1"},
    {"trigger",
     "SELECT n.nspname || '.' || c.relname || '.' || t.tgname,"
     " pg_get_triggerdef(t.oid) AS definition, t.tgenabled::text AS enabled"
     " FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
     " JOIN pg_namespace n ON n.oid = c.relnamespace"
     " WHERE NOT t.tgisinternal AND" PGH_USER_SCHEMA("n") "ORDER BY 1"},
};

#undef PGH_USER_SCHEMA

absl::Status WithDatabase(const absl::Status& status, absl::string_view database,
                          absl::string_view what) {
  return absl::Status(status.code(), absl::StrCat("database \"", absl::CHexEscape(database), "\", ",
                                                  what, ": ", status.message()));
}

// Runs `query` on `conn` and adds one value per row under "<scope>/<kind>:<name>".
absl::Status ReadKind(PgConnection& conn, const CatalogueQuery& query, absl::string_view scope,
                      absl::string_view database, Values& values) {
  absl::StatusOr<PgResult> result = conn.Execute(query.sql);
  if (!result.ok()) return WithDatabase(result.status(), database, query.kind);
  for (int row = 0; row < result->rows(); ++row) {
    std::vector<std::pair<std::string, std::string>> fields;
    for (int column = 1; column < result->columns(); ++column) {
      fields.emplace_back(result->ColumnName(column), result->Value(row, column));
    }
    values[absl::StrCat(scope, "/", query.kind, ":", result->Value(row, 0))] =
        EncodeCatalogueValue(fields);
  }
  return absl::OkStatus();
}

absl::Status Cancelled(const SchemaCatalogueOptions& options) {
  if (options.canceller != nullptr && options.canceller->cancelled()) {
    return absl::CancelledError("schema catalogue cancelled");
  }
  return absl::OkStatus();
}

absl::Status ReadDatabase(PgConnection& conn, const std::string& database,
                          const SchemaCatalogueOptions& options, Values& values) {
  ScopedCancelAttachment attached(options.canceller, conn.raw());
  absl::Status begun = conn.Execute(kBeginSnapshotSql).status();
  if (!begun.ok()) return WithDatabase(begun, database, "BEGIN");
  absl::Status set = conn.Execute(kSettingsSql).status();
  if (!set.ok()) return WithDatabase(set, database, "session settings");
  for (const CatalogueQuery& query : kDatabaseQueries) {
    PGH_RETURN_IF_ERROR(Cancelled(options));
    PGH_RETURN_IF_ERROR(ReadKind(conn, query, database, database, values));
  }
  absl::Status committed = conn.Execute(kCommitSql).status();
  if (!committed.ok()) return WithDatabase(committed, database, "COMMIT");
  return absl::OkStatus();
}

}  // namespace

std::string EncodeCatalogueValue(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::vector<std::string> parts;
  parts.reserve(fields.size());
  for (const auto& [name, value] : fields) {
    parts.push_back(absl::StrCat(name, "=", absl::CEscape(value)));
  }
  return absl::StrJoin(parts, "\t");
}

absl::StatusOr<std::map<std::string, std::string>> ComputeSchemaCatalogue(
    const PostgresConnection& conn, const SchemaCatalogueOptions& options) {
  PgSessionOptions session;
  session.statement_timeout = options.statement_timeout;
  Values values;
  std::vector<std::string> databases;
  {
    PGH_ASSIGN_OR_RETURN(PgConnection first, PgConnection::Open(conn, session));
    ScopedCancelAttachment attached(options.canceller, first.raw());
    for (const CatalogueQuery& query : kClusterQueries) {
      PGH_RETURN_IF_ERROR(ReadKind(first, query, "cluster", conn.database, values));
    }
    PGH_ASSIGN_OR_RETURN(PgResult result, first.Execute(kConnectableDatabasesSql));
    for (int row = 0; row < result.rows(); ++row) databases.push_back(result.Value(row, 0));
  }
  for (const std::string& database : databases) {
    PGH_RETURN_IF_ERROR(Cancelled(options));
    PostgresConnection target = conn;
    target.database = database;
    absl::StatusOr<PgConnection> opened = PgConnection::Open(target, session);
    if (!opened.ok()) {
      return absl::Status(opened.status().code(),
                          absl::StrCat("cannot connect to database \"", absl::CHexEscape(database),
                                       "\": ", opened.status().message()));
    }
    PGH_RETURN_IF_ERROR(ReadDatabase(*opened, database, options, values));
  }
  PGH_LOG_INFO("schema catalogue of {} databases: {} objects", databases.size(), values.size());
  return values;
}

}  // namespace pghaul::agent
