// ApplicationCheck (tasks.proto): one SQL statement from the migration plan, run read-only on the
// local server, whose result verify compares between the source and the restored copy.
//
// The statement is the one place where the agent runs SQL text it did not write, so it is
// fenced in:
//   - one statement only: it goes through PQexecParams (the extended protocol refuses several);
//   - in a transaction begun READ ONLY whose first snapshot is taken before the statement runs,
//     so the statement can neither write nor switch the transaction to read-write
//     (SET TRANSACTION READ WRITE is refused once a query ran), and the transaction is rolled
//     back afterwards whatever happened;
//   - statement_timeout 60 s, in its own short session (application_name pghaul-agent);
//   - at most 64 KiB of text, no NUL byte; a database name of 1-63 bytes without control
//     characters, passed to libpq as a quoted conninfo value.
//   - as its own role (application_checks.user in agent.yaml), never the agent's: a READ ONLY
//     transaction still lets a superuser run COPY ... TO PROGRAM, lo_export and pg_read_file,
//     i.e. a shell and the host's files (the agent's key and the repository secrets). After
//     connecting, the session is checked: a superuser, a member of pg_execute_server_program,
//     pg_read_server_files or pg_write_server_files, or a role that may execute the server-file
//     functions is refused before the statement runs. SET ROLE would not do: a superuser session
//     can set it back from inside the statement (set_config).
// Whoever can submit a check (an operator, or the controller) is thereby limited to what that
// role may read. A function that opens its own connection (dblink, postgres_fdw) is outside the
// read-only transaction: do not give the role those.
#pragma once

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/agent_config.h"
#include "agent/pg_connection.h"
#include "agent/query_canceller.h"
#include "pghaul/v1/tasks.pb.h"

namespace pghaul::agent {

inline constexpr size_t kMaxApplicationCheckSqlBytes = 64 * 1024;

// Checks the fields without connecting. Errors: InvalidArgument saying which field is wrong
// (empty or oversized SQL, a NUL byte, a bad database name, a name over 255 bytes or with control
// characters); the SQL text itself is not echoed.
absl::Status ValidateApplicationCheck(const v1::ApplicationCheck& check);

// The digest of a result: md5 of every row as one line ("\n"-terminated), its columns separated
// by tabs, in the order returned. Values are escaped as COPY's text format does (\\, \t, \n, \r)
// and NULL is \N, so no two different results share their text.
std::string ResultDigest(const PgResult& result);

// Runs the check in check.database ("" means conn.database) as `checks_user` (on conn's socket
// and port). Values: rows (the row count),
// digest (ResultDigest), first (the first column of the first row; "" when there is no row or
// it is NULL). Errors: InvalidArgument as ValidateApplicationCheck; Cancelled when `canceller`
// was cancelled; otherwise those of PgConnection::Execute, whose messages carry the server's
// error ("ERROR 42P01: relation \"x\" does not exist"), e.g. FailedPrecondition for 25006 when
// the statement tried to write, DeadlineExceeded after 60 s; FailedPrecondition naming the role
// when `checks_user` is empty or the role may reach the host (see above).
absl::StatusOr<std::map<std::string, std::string>> RunApplicationCheck(
    const PostgresConnection& conn, const std::string& checks_user,
    const v1::ApplicationCheck& check, QueryCanceller* canceller = nullptr);

// The refusal when agent.yaml names no application_checks.user.
absl::Status NoChecksUserError();

}  // namespace pghaul::agent
