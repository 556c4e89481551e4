#include "agent/host_facts.h"

#include <errno.h>
#include <gnu/libc-version.h>
#include <limits.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/patroni_rest.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/subprocess.h"
#include "common/time_proto.h"
#include "libpq-fe.h"

namespace pghaul::agent {
namespace {

constexpr absl::Duration kPgBackRestVersionTimeout = absl::Seconds(10);

// libpq messages span lines ("...failed: No such file\n\tIs the server running..."): one line
// reads better in a log and a table.
std::string OneLine(absl::string_view text) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(text, absl::ByAnyChar("\n\r\t"), absl::SkipWhitespace());
  for (absl::string_view& part : parts) part = absl::StripAsciiWhitespace(part);
  return absl::StrJoin(parts, " ");
}

struct ConnCloser {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
using Connection = std::unique_ptr<PGconn, ConnCloser>;
struct ResultClearer {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Result = std::unique_ptr<PGresult, ResultClearer>;

absl::StatusOr<Connection> Connect(const std::string& conninfo) {
  Connection conn(PQconnectdb(conninfo.c_str()));
  if (conn == nullptr) return absl::ResourceExhaustedError("libpq could not allocate a connection");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return absl::UnavailableError(OneLine(PQerrorMessage(conn.get())));
  }
  return conn;
}

// Runs one fixed query (never built from input) and returns its rows.
absl::StatusOr<Result> Query(PGconn* conn, const char* sql) {
  Result result(PQexec(conn, sql));
  if (result == nullptr) return absl::UnavailableError(OneLine(PQerrorMessage(conn)));
  if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
    return absl::InternalError(OneLine(PQresultErrorMessage(result.get())));
  }
  return result;
}

std::string Text(const PGresult* result, int row, int column) {
  return std::string(PQgetvalue(result, row, column),
                     static_cast<size_t>(PQgetlength(result, row, column)));
}

bool IsNull(const PGresult* result, int row, int column) {
  return PQgetisnull(result, row, column) != 0;
}

// The facts in one row; columns hidden from a user without the rights to read them are NULL.
constexpr char kServerQuery[] = R"sql(
SELECT current_setting('server_version_num'),
       current_setting('server_version'),
       current_setting('block_size'),
       (SELECT setting::bigint * CASE unit WHEN 'B' THEN 1 WHEN 'kB' THEN 1024
                                           WHEN '8kB' THEN 8192 WHEN 'MB' THEN 1048576 END
          FROM pg_settings WHERE name = 'wal_segment_size'),
       current_setting('data_checksums'),
       pg_encoding_to_char(d.encoding),
       d.datcollate,
       d.datctype,
       current_setting('archive_mode'),
       (SELECT setting FROM pg_settings WHERE name = 'archive_command'),
       (SELECT setting FROM pg_settings WHERE name = 'data_directory'),
       pg_is_in_recovery(),
       current_user,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
       current_setting('password_encryption')
  FROM pg_database d
 WHERE d.datname = current_database()
)sql";

constexpr char kSystemIdentifierQuery[] = "SELECT system_identifier FROM pg_control_system()";
constexpr char kTablespacesQuery[] =
    "SELECT spcname, pg_tablespace_location(oid) FROM pg_tablespace ORDER BY spcname";
constexpr char kDatabasesQuery[] =
    "SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname";
// Databases the user may not connect to are left out (pg_database_size would fail for them),
// and counted so the gap is said. pg_read_all_stats may read every size.
constexpr char kDatabaseSizeQuery[] = R"sql(
SELECT coalesce(sum(pg_database_size(oid)) FILTER (WHERE readable), 0)::text,
       count(*) FILTER (WHERE NOT readable)
  FROM (SELECT oid, has_database_privilege(oid, 'CONNECT')
                    OR pg_has_role('pg_read_all_stats', 'USAGE') AS readable
          FROM pg_database WHERE datallowconn) AS databases
)sql";
constexpr char kExtensionsQuery[] = "SELECT extname, extversion FROM pg_extension ORDER BY extname";
// Host-wide: the server reads its extension directory (SHAREDIR/extension) for every database
// alike, so one connection answers for all.
constexpr char kAvailableExtensionsQuery[] =
    "SELECT name, version FROM pg_available_extension_versions ORDER BY name, version";

// At most this many roles are reported (one more is asked for, to know that there were more).
constexpr int kMaxReportedRoles = 10000;
// Only a superuser may read pg_authid, and with it whether a password is an md5 hash (the hash
// itself never leaves the server: only the comparison's result does). Others get pg_roles,
// without that column.
constexpr char kRolesWithHashesQuery[] = R"sql(
SELECT rolname, rolsuper, rolreplication, rolcanlogin, coalesce(rolpassword LIKE 'md5%', false)
  FROM pg_authid WHERE rolname !~ '^pg_' ORDER BY rolname LIMIT 10001
)sql";
constexpr char kRolesQuery[] = R"sql(
SELECT rolname, rolsuper, rolreplication, rolcanlogin, false
  FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY rolname LIMIT 10001
)sql";

void ReadRoles(PGconn* conn, pghaul::v1::PostgresFacts& facts, std::vector<std::string>& problems) {
  absl::StatusOr<Result> result = absl::UnavailableError("not asked");
  if (facts.is_superuser()) {
    result = Query(conn, kRolesWithHashesQuery);
    facts.set_password_hashes_read(result.ok());
  }
  if (!result.ok()) result = Query(conn, kRolesQuery);
  if (!result.ok()) {
    problems.push_back(absl::StrCat("cannot list roles: ", result.status().message()));
    return;
  }
  const PGresult* r = result->get();
  const int rows = PQntuples(r);
  for (int row = 0; row < rows && row < kMaxReportedRoles; ++row) {
    pghaul::v1::Role* role = facts.add_roles();
    role->set_name(Text(r, row, 0));
    role->set_superuser(Text(r, row, 1) == "t");
    role->set_replication(Text(r, row, 2) == "t");
    role->set_can_login(Text(r, row, 3) == "t");
    role->set_md5_password(Text(r, row, 4) == "t");
  }
  facts.set_roles_truncated(rows > kMaxReportedRoles);
  facts.set_roles_listed(true);
}

absl::Status ReadServerRow(PGconn* conn, pghaul::v1::PostgresFacts& facts,
                           std::vector<std::string>& problems) {
  absl::StatusOr<Result> result = Query(conn, kServerQuery);
  if (!result.ok()) return result.status();
  const PGresult* r = result->get();
  if (PQntuples(r) != 1) {
    return absl::InternalError("the current database is missing from pg_database");
  }
  int32_t version_num = 0;
  int32_t block_size = 0;
  int64_t wal_segment_size = 0;
  if (!absl::SimpleAtoi(Text(r, 0, 0), &version_num)) {
    problems.push_back(absl::StrCat("unexpected server_version_num \"", Text(r, 0, 0), "\""));
  }
  if (!absl::SimpleAtoi(Text(r, 0, 2), &block_size)) {
    problems.push_back(absl::StrCat("unexpected block_size \"", Text(r, 0, 2), "\""));
  }
  if (IsNull(r, 0, 3) || !absl::SimpleAtoi(Text(r, 0, 3), &wal_segment_size)) {
    problems.push_back("cannot read wal_segment_size in bytes from pg_settings");
  }
  facts.set_server_version_num(version_num);
  facts.set_server_version(Text(r, 0, 1));
  facts.set_block_size(block_size);
  facts.set_wal_segment_size(wal_segment_size);
  facts.set_data_checksums(Text(r, 0, 4) == "on");
  facts.set_encoding(Text(r, 0, 5));
  facts.set_lc_collate(Text(r, 0, 6));
  facts.set_lc_ctype(Text(r, 0, 7));
  facts.set_archive_mode(Text(r, 0, 8));
  facts.set_archive_command(Text(r, 0, 9));
  facts.set_data_directory(Text(r, 0, 10));
  facts.set_in_recovery(Text(r, 0, 11) == "t");
  facts.set_current_user(Text(r, 0, 12));
  facts.set_is_superuser(Text(r, 0, 13) == "t");
  facts.set_password_encryption(Text(r, 0, 14));
  if (IsNull(r, 0, 9) || IsNull(r, 0, 10)) {
    problems.push_back(absl::StrCat(
        "user '", facts.current_user(),
        "' may not read data_directory and archive_command: connect as a superuser or grant it "
        "pg_read_all_settings"));
  }
  return absl::OkStatus();
}

void ReadSystemIdentifier(PGconn* conn, pghaul::v1::PostgresFacts& facts,
                          std::vector<std::string>& problems) {
  absl::StatusOr<Result> result = Query(conn, kSystemIdentifierQuery);
  // pg_control_system() returns it as a signed bigint; pg_controldata prints it unsigned.
  int64_t identifier = 0;
  if (!result.ok()) {
    problems.push_back(
        absl::StrCat("cannot read the system identifier: ", result.status().message()));
  } else if (PQntuples(result->get()) != 1 ||
             !absl::SimpleAtoi(Text(result->get(), 0, 0), &identifier)) {
    problems.push_back("unexpected answer from pg_control_system()");
  } else {
    facts.set_system_identifier(static_cast<uint64_t>(identifier));
  }
}

void ReadTablespaces(PGconn* conn, pghaul::v1::PostgresFacts& facts,
                     std::vector<std::string>& problems) {
  absl::StatusOr<Result> result = Query(conn, kTablespacesQuery);
  if (!result.ok()) {
    problems.push_back(absl::StrCat("cannot list tablespaces: ", result.status().message()));
    return;
  }
  for (int row = 0; row < PQntuples(result->get()); ++row) {
    pghaul::v1::Tablespace* tablespace = facts.add_tablespaces();
    tablespace->set_name(Text(result->get(), row, 0));
    tablespace->set_location(Text(result->get(), row, 1));
  }
}

void ReadDatabaseSize(PGconn* conn, pghaul::v1::PostgresFacts& facts,
                      std::vector<std::string>& problems) {
  absl::StatusOr<Result> result = Query(conn, kDatabaseSizeQuery);
  uint64_t bytes = 0;
  int64_t unreadable = 0;
  if (!result.ok()) {
    problems.push_back(
        absl::StrCat("cannot read the size of the databases: ", result.status().message()));
  } else if (PQntuples(result->get()) != 1 ||
             !absl::SimpleAtoi(Text(result->get(), 0, 0), &bytes) ||
             !absl::SimpleAtoi(Text(result->get(), 0, 1), &unreadable)) {
    problems.push_back("unexpected answer when summing pg_database_size()");
  } else {
    facts.set_database_size_bytes(bytes);
    if (unreadable > 0) {
      problems.push_back(absl::StrCat(
          "database_size_bytes leaves out ", unreadable,
          " database(s) the user may not connect to: grant it CONNECT or pg_read_all_stats"));
    }
  }
}

std::vector<std::string> ListDatabases(PGconn* conn, std::vector<std::string>& problems) {
  std::vector<std::string> databases;
  absl::StatusOr<Result> result = Query(conn, kDatabasesQuery);
  if (!result.ok()) {
    problems.push_back(absl::StrCat("cannot list databases: ", result.status().message()));
    return databases;
  }
  for (int row = 0; row < PQntuples(result->get()); ++row) {
    databases.push_back(Text(result->get(), row, 0));
  }
  return databases;
}

void ReadExtensions(const PostgresConnection& conn, const std::string& database,
                    pghaul::v1::PostgresFacts& facts, std::vector<std::string>& problems) {
  absl::StatusOr<Connection> db = Connect(conn.ConnInfoForDatabase(database));
  absl::StatusOr<Result> result =
      db.ok() ? Query(db->get(), kExtensionsQuery) : absl::StatusOr<Result>(db.status());
  if (!result.ok()) {
    problems.push_back(absl::StrCat("cannot list the extensions of database \"",
                                    absl::CHexEscape(database), "\": ", result.status().message()));
    return;
  }
  for (int row = 0; row < PQntuples(result->get()); ++row) {
    pghaul::v1::Extension* extension = facts.add_extensions();
    extension->set_database(database);
    extension->set_name(Text(result->get(), row, 0));
    extension->set_version(Text(result->get(), row, 1));
  }
}

void ReadAvailableExtensions(PGconn* conn, pghaul::v1::PostgresFacts& facts,
                             std::vector<std::string>& problems) {
  absl::StatusOr<Result> result = Query(conn, kAvailableExtensionsQuery);
  if (!result.ok()) {
    problems.push_back(
        absl::StrCat("cannot list the extensions this host provides: ", result.status().message()));
    return;
  }
  for (int row = 0; row < PQntuples(result->get()); ++row) {
    pghaul::v1::Extension* extension = facts.add_available_extensions();
    extension->set_name(Text(result->get(), row, 0));
    extension->set_version(Text(result->get(), row, 1));
  }
}

void GatherDiskFacts(const std::string& data_directory, pghaul::v1::HostFacts& facts) {
  if (data_directory.empty()) {
    facts.set_disk_error("no data directory is configured");
    return;
  }
  // A target's data directory may not exist yet: its nearest existing parent is on the
  // filesystem it will be created on.
  std::string path = data_directory;
  struct statvfs stats;
  while (statvfs(path.c_str(), &stats) != 0) {
    int err = errno;
    size_t slash = path.find_last_of('/');
    if (err != ENOENT || slash == std::string::npos || path == "/") {
      facts.set_disk_error(
          absl::StrCat("cannot read the free space of '", path, "': ", strerrordesc_np(err)));
      return;
    }
    path = slash == 0 ? "/" : path.substr(0, slash);
  }
  facts.set_data_dir_free_bytes(static_cast<uint64_t>(stats.f_bavail) * stats.f_frsize);
  facts.set_data_dir_total_bytes(static_cast<uint64_t>(stats.f_blocks) * stats.f_frsize);
}

void GatherPgBackRestVersion(const std::string& binary, pghaul::v1::HostFacts& facts) {
  SubprocessSpec spec;
  spec.argv = {binary, "version"};
  spec.env = {"PATH=/usr/bin:/bin", "LANG=C"};
  spec.timeout = kPgBackRestVersionTimeout;
  spec.kill_grace = absl::Seconds(2);
  absl::StatusOr<CapturedOutput> output = RunAndCapture(spec, /*max_bytes=*/64 * 1024);
  if (!output.ok()) {
    facts.set_pgbackrest_error(std::string(output.status().message()));
    return;
  }
  if (!output->result.Succeeded()) {
    std::string detail = OneLine(output->stderr_text.substr(0, 500));
    facts.set_pgbackrest_error(absl::StrCat("'", binary, " version' ", output->result.Describe(),
                                            detail.empty() ? "" : ": ", detail));
    return;
  }
  absl::StatusOr<std::string> version = ParsePgBackRestVersion(output->stdout_text);
  if (!version.ok()) {
    facts.set_pgbackrest_error(std::string(version.status().message()));
    return;
  }
  facts.set_pgbackrest_version(*version);
}

std::string OsPrettyName() {
  for (const char* path : {"/etc/os-release", "/usr/lib/os-release"}) {
    absl::StatusOr<std::string> text = ReadFile(path, /*max_bytes=*/64 * 1024);
    if (text.ok()) return ParseOsReleasePrettyName(*text);
  }
  PGH_LOG_WARN("cannot read /etc/os-release or /usr/lib/os-release; the OS is reported empty");
  return "";
}

// The value of an os-release assignment: shell-like, optionally quoted; inside double quotes
// a backslash escapes $ " \ and `.
std::string UnquoteOsReleaseValue(absl::string_view value) {
  if (value.size() >= 2 && value.front() == '\'' && value.back() == '\'') {
    return std::string(value.substr(1, value.size() - 2));
  }
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
    value = value.substr(1, value.size() - 2);
    std::string out;
    for (size_t i = 0; i < value.size(); ++i) {
      if (value[i] == '\\' && i + 1 < value.size() &&
          absl::string_view("$\"\\`").find(value[i + 1]) != absl::string_view::npos) {
        ++i;
      }
      out.push_back(value[i]);
    }
    return out;
  }
  return std::string(value);
}

}  // namespace

absl::StatusOr<std::string> ParsePgBackRestVersion(absl::string_view version_output) {
  absl::string_view text = absl::StripAsciiWhitespace(version_output);
  absl::string_view version = text;
  bool ok = absl::ConsumePrefix(&version, "pgBackRest ") && !version.empty() &&
            absl::ascii_isdigit(static_cast<unsigned char>(version[0]));
  for (char c : version) {
    ok = ok && (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-');
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected output from 'pgbackrest version': \"",
                     absl::CHexEscape(text.substr(0, 200)), "\" (expected \"pgBackRest X.Y\")"));
  }
  return std::string(version);
}

std::string ParseOsReleasePrettyName(absl::string_view os_release_text) {
  std::string pretty_name = "Linux";
  for (absl::string_view line : absl::StrSplit(os_release_text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (absl::ConsumePrefix(&line, "PRETTY_NAME=")) pretty_name = UnquoteOsReleaseValue(line);
  }
  return pretty_name;
}

pghaul::v1::PostgresFacts GatherPostgresFacts(const PostgresConnection& conn) {
  pghaul::v1::PostgresFacts facts;
  std::vector<std::string> problems;
  std::vector<std::string> databases;
  {
    absl::StatusOr<Connection> main = Connect(conn.ConnInfo());
    if (!main.ok()) {
      facts.set_reachable(false);
      facts.set_error(std::string(main.status().message()));
      return facts;
    }
    facts.set_reachable(true);
    absl::Status row = ReadServerRow(main->get(), facts, problems);
    if (!row.ok()) problems.push_back(absl::StrCat("cannot read server settings: ", row.message()));
    ReadSystemIdentifier(main->get(), facts, problems);
    ReadTablespaces(main->get(), facts, problems);
    ReadDatabaseSize(main->get(), facts, problems);
    ReadRoles(main->get(), facts, problems);
    ReadAvailableExtensions(main->get(), facts, problems);
    databases = ListDatabases(main->get(), problems);
  }  // Closed before the per-database connections: at most one connection at a time.
  for (const std::string& database : databases) ReadExtensions(conn, database, facts, problems);
  facts.set_error(absl::StrJoin(problems, "; "));
  return facts;
}

pghaul::v1::HostFacts GatherHostFacts(const AgentConfig& config) {
  pghaul::v1::HostFacts facts;
  char hostname[HOST_NAME_MAX + 1] = {};
  if (gethostname(hostname, sizeof(hostname) - 1) == 0) facts.set_hostname(hostname);
  facts.set_os(OsPrettyName());
  struct utsname uts;
  if (uname(&uts) == 0) {
    facts.set_kernel(uts.release);
    facts.set_architecture(uts.machine);
  }
  facts.set_libc_version(gnu_get_libc_version());
  facts.set_data_directory(config.data_directory);
  GatherDiskFacts(config.data_directory, facts);
  GatherPgBackRestVersion(config.pgbackrest_binary, facts);
  *facts.mutable_postgres() = GatherPostgresFacts(config.postgres);
  if (config.patroni.has_value()) *facts.mutable_patroni() = GatherPatroniFacts(*config.patroni);
  *facts.mutable_gathered_at() = ToProto(absl::Now());
  return facts;
}

}  // namespace pghaul::agent
