// The agent's configuration file (/etc/pghaul/agent.yaml by default); docs/configuration.md
// describes every key.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/patroni_config.h"
#include "agent/service_control.h"
#include "common/tls_certificates.h"

namespace pghaul::agent {

// How the agent reaches its local PostgreSQL: always over the Unix socket, as `user`.
struct PostgresConnection {
  std::string socket_dir = "/var/run/postgresql";
  int port = 5432;
  std::string user = "postgres";
  std::string database = "postgres";

  // A libpq conninfo string for `database`: host=<socket_dir> port= user= dbname=
  // connect_timeout=5 application_name=pghaul-agent, every value quoted per libpq's rules.
  std::string ConnInfo() const;
  // The same, for another database on the same server (e.g. to list its extensions).
  std::string ConnInfoForDatabase(absl::string_view dbname) const;
};

// Quotes `value` for a libpq conninfo string: in single quotes, with '\' and '\'' escaped by a
// backslash, so any text (spaces, quotes, '=') stays one value.
std::string QuoteConnInfoValue(absl::string_view value);

struct AgentConfig {
  std::string agent_id;            // required; 1-63 of [a-z0-9._-], starting alphanumeric
  std::string controller_address;  // required, key controller.address, "host:port"
  // Key controller.insecure: a plaintext link (warned about at every start). Either this or
  // controller.tls, not both.
  bool controller_insecure = false;
  // Key controller.tls {ca, cert, key}: the files of the mutual TLS link (docs/security.md); the
  // certificate must name agent_id. Checked for content at start-up (LoadTlsFiles), not here.
  TlsFilePaths controller_tls;
  // Key controller.tls.server_name: the name the controller's certificate must hold; "" = the
  // host part of controller.address.
  std::string controller_tls_server_name;
  PostgresConnection postgres;  // key postgres: {socket_dir, port, user, database}
  // Key application_checks.user: the role the plan's application checks log in as (on the same
  // socket and port as postgres.user). Checks are SQL the agent did not write, so they never
  // run as the agent's own (superuser) role: "" refuses every check. The role must not be a
  // superuser nor able to reach the host's files or programs (agent/application_check.h).
  std::string checks_user;
  std::string data_directory;   // required, absolute
  std::string pgbackrest_binary = "/usr/bin/pgbackrest";  // key pgbackrest.binary, absolute
  std::string state_dir = "/var/lib/pghaul-agent";        // absolute
  // Key run_as: the OS user to switch to when started as root (agent/privileges.h); "" refuses
  // to run as root. Not root itself.
  std::string run_as;
  // Directories the controller's tasks may name (posix repositories, CA and certificate files),
  // checked after resolving symbolic links (agent/path_confinement.h). Key roots, a list of
  // absolute paths; default: just state_dir. None may lie inside data_directory, and state_dir
  // and data_directory may not lie inside each other (checked at load, links resolved).
  std::vector<std::string> roots;
  // Key service: how the agent starts, stops and promotes its PostgreSQL. Its data_directory is
  // the top-level data_directory. Checked at load with ServiceCommand for every action.
  ServiceControlConfig service;
  // Key patroni: present when Patroni manages this host's PostgreSQL (agent/patroni_config.h,
  // docs/patroni.md). The agent then reports Patroni's state in its facts and runs
  // PatroniAction tasks; without it, those tasks are refused.
  std::optional<PatroniConfig> patroni;
  absl::Duration facts_interval = absl::Seconds(30);    // how often facts are re-gathered
  absl::Duration reconnect_initial = absl::Seconds(1);  // key reconnect.initial
  absl::Duration reconnect_max = absl::Seconds(30);     // key reconnect.max
  std::string log_level = "info";   // key log.level: trace, debug, info, warn, error, off
  std::string log_format = "json";  // key log.format: text or json
};

// Parses the YAML text of an agent configuration. `source_name` (the file's path) starts every
// error message. Errors: InvalidArgument listing every problem, each naming its key path and
// what was expected.
absl::StatusOr<AgentConfig> ParseAgentConfig(absl::string_view yaml, absl::string_view source_name);

// Reads and parses the file at `path`. Errors: NotFound or PermissionDenied naming the path, or
// those of ParseAgentConfig.
absl::StatusOr<AgentConfig> LoadAgentConfig(const std::string& path);

}  // namespace pghaul::agent
