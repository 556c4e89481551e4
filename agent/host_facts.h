// Facts about this host and its PostgreSQL, for the controller's preflight checks and for
// `pghaul agents` (proto/pghaul/v1/facts.proto describes each field).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/agent_config.h"
#include "pghaul/v1/facts.pb.h"

namespace pghaul::agent {

// Gathers everything, from: gethostname, /etc/os-release, uname, gnu_get_libc_version, statvfs
// of the data directory (or, if it does not exist yet, of its nearest existing parent, where it
// will be created), `<pgbackrest_binary> version`, GatherPostgresFacts, and, for an agent
// configured for Patroni, GatherPatroniFacts (agent/patroni_rest.h). Never fails: what
// cannot be learned is said in disk_error, pgbackrest_error or postgres.error. Blocks for up to
// about 15 s per unreachable source (the pgBackRest timeout, libpq's connect_timeout), so call it
// off any thread that must stay responsive.
pghaul::v1::HostFacts GatherHostFacts(const AgentConfig& config);

// "pgBackRest 2.45\n" -> "2.45". Errors: InvalidArgument, quoting the output, for anything else.
absl::StatusOr<std::string> ParsePgBackRestVersion(absl::string_view version_output);

// PRETTY_NAME from the text of an os-release(5) file, unquoted; "Linux" when absent, as
// os-release(5) specifies.
std::string ParseOsReleasePrettyName(absl::string_view os_release_text);

// Asks the local PostgreSQL about itself through libpq, with fixed queries only, closing every
// connection before returning. Extensions are listed for every database that accepts
// connections, connecting to each in turn; the extension versions the host's packages provide
// (pg_available_extension_versions) are listed once, for the host. When the server cannot be
// reached, reachable is false and error holds libpq's message. When it is reached but some facts
// cannot be read (a user without the rights to see data_directory, a database refusing
// connections), reachable is true, the facts read are filled in, and error says what is missing.
pghaul::v1::PostgresFacts GatherPostgresFacts(const PostgresConnection& conn);

}  // namespace pghaul::agent
