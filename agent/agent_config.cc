#include "agent/agent_config.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/path_confinement.h"
#include "common/config_reader.h"
#include "common/files.h"
#include "common/identifiers.h"
#include "common/status_macros.h"
#include "common/tls_config.h"
#include "common/validators.h"
#include "pghaul/v1/tasks.pb.h"

namespace pghaul::agent {
namespace {

const std::vector<std::string>& LogLevels() {
  static const auto* levels =
      new std::vector<std::string>{"trace", "debug", "info", "warn", "error", "off"};
  return *levels;
}

// The `service` section, then a check of the whole ServiceControlConfig with ServiceCommand
// itself, so a configuration the agent could not act on fails at start-up, not at cutover.
void ReadServiceSection(ConfigReader service, const StringRule& absolute_path,
                        AgentConfig& config) {
  ServiceControlConfig& out = config.service;
  std::string method = "pg_ctl";
  bool ok = service.OneOf("method", &method, {"pg_ctl", "pg_ctlcluster", "systemd"});
  if (method == "pg_ctlcluster") out.method = ServiceControlConfig::Method::kPgCtlCluster;
  if (method == "systemd") out.method = ServiceControlConfig::Method::kSystemd;
  ok &= service.String("pg_ctl", &out.pg_ctl, kOptional, &absolute_path);
  ok &= service.String("pg_ctlcluster", &out.pg_ctlcluster, kOptional, &absolute_path);
  ok &= service.String("cluster_version", &out.cluster_version);
  ok &= service.String("cluster_name", &out.cluster_name);
  ok &= service.String("systemctl", &out.systemctl, kOptional, &absolute_path);
  ok &= service.String("unit", &out.unit);
  ok &= service.String("log_file", &out.log_file, kOptional, &absolute_path);
  ok &= service.StringList("pg_ctl_options", &out.pg_ctl_options);
  ok &= service.StringList("run_as_prefix", &out.run_as_prefix);
  out.data_directory = config.data_directory;
  if (!ok || config.data_directory.empty()) return;  // already reported

  for (v1::ServiceAction::Action action :
       {v1::ServiceAction::START, v1::ServiceAction::STOP, v1::ServiceAction::RESTART,
        v1::ServiceAction::STATUS, v1::ServiceAction::PROMOTE}) {
    v1::ServiceAction probe;
    probe.set_action(action);
    absl::Status status = ServiceCommand(out, probe).status();
    if (!status.ok()) {
      absl::string_view message = status.message();
      absl::ConsumePrefix(&message, "service control: ");
      service.AddError("method", absl::StrCat("cannot ", v1::ServiceAction::Action_Name(action),
                                              " the server with method ", method, ": ", message));
      return;
    }
  }
}

// Whether `path` is `area` or below it: resolved (agent/path_confinement.h) when both can be,
// as written otherwise (e.g. a link to a directory not mounted yet).
bool Overlaps(const std::string& path, const std::string& area) {
  absl::StatusOr<bool> resolved = ResolvedPathIsWithin(path, area);
  if (resolved.ok()) return *resolved;
  return PathWithinRoots(path, {area});
}

// The places the configuration names must keep apart, checked at load so that an agent that
// would put its own state (and the repository secrets) into the data directory never starts:
// pgBackRest's backup would copy it into the repository and a delta restore would delete it.
void CheckPathsApart(ConfigReader& root, const AgentConfig& config) {
  if (config.data_directory.empty() || config.state_dir.empty()) return;  // already reported
  if (Overlaps(config.state_dir, config.data_directory)) {
    root.AddError("state_dir", absl::StrCat("'", config.state_dir, "' is inside data_directory '",
                                            config.data_directory,
                                            "', which pgBackRest backs up and restores over: "
                                            "keep the agent's state outside it"));
  } else if (Overlaps(config.data_directory, config.state_dir)) {
    root.AddError("data_directory",
                  absl::StrCat("'", config.data_directory, "' is inside state_dir '",
                               config.state_dir, "': keep the agent's state outside it"));
  }
  for (const std::string& path : config.roots) {
    if (Overlaps(path, config.data_directory)) {
      root.AddError("roots",
                    absl::StrCat("'", path, "' is inside data_directory '", config.data_directory,
                                 "': no task may name a path there, so it cannot be a root"));
    }
  }
}

}  // namespace

std::string QuoteConnInfoValue(absl::string_view value) {
  std::string quoted = "'";
  for (char c : value) {
    if (c == '\\' || c == '\'') quoted.push_back('\\');
    quoted.push_back(c);
  }
  quoted.push_back('\'');
  return quoted;
}

std::string PostgresConnection::ConnInfo() const { return ConnInfoForDatabase(database); }

std::string PostgresConnection::ConnInfoForDatabase(absl::string_view dbname) const {
  return absl::StrCat("host=", QuoteConnInfoValue(socket_dir), " port=", port,
                      " user=", QuoteConnInfoValue(user), " dbname=", QuoteConnInfoValue(dbname),
                      " connect_timeout=5 application_name=pghaul-agent");
}

absl::StatusOr<AgentConfig> ParseAgentConfig(absl::string_view yaml,
                                             absl::string_view source_name) {
  PGH_ASSIGN_OR_RETURN(ConfigReader root, ConfigReader::Parse(yaml, source_name));
  AgentConfig config;
  const StringRule absolute_path = AbsolutePathRule();
  const StringRule non_empty = NonEmptyRule();
  const StringRule host_port = HostPortRule(/*allow_port_zero=*/false);
  // The one rule for agent ids lives in common/identifiers; this only words it as a key error.
  const StringRule agent_id{[](absl::string_view id) { return ValidateAgentId(id).ok(); },
                            "1 to 63 characters of a-z, 0-9, '.', '_' or '-', starting with a "
                            "letter or digit"};

  root.String("agent_id", &config.agent_id, kRequired, &agent_id);

  ConfigReader controller = root.Section("controller");
  controller.String("address", &config.controller_address, kRequired, &host_port);
  TransportSecurity security;
  ReadTransportSecurity(controller, /*with_server_name=*/true, &security);
  config.controller_insecure = security.insecure;
  config.controller_tls = security.tls;
  config.controller_tls_server_name = security.server_name;

  ConfigReader postgres = root.Section("postgres");
  postgres.String("socket_dir", &config.postgres.socket_dir, kOptional, &absolute_path);
  postgres.Int("port", &config.postgres.port, 1, 65535);
  postgres.String("user", &config.postgres.user, kOptional, &non_empty);
  postgres.String("database", &config.postgres.database, kOptional, &non_empty);

  const StringRule role_name{
      [](absl::string_view name) {
        if (name.empty() || name.size() > 63) return false;
        for (char c : name) {
          if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
        }
        return true;
      },
      "a PostgreSQL role name of 1 to 63 bytes without control characters"};
  root.Section("application_checks").String("user", &config.checks_user, kOptional, &role_name);

  root.String("data_directory", &config.data_directory, kRequired, &absolute_path);
  ConfigReader pgbackrest = root.Section("pgbackrest");
  pgbackrest.String("binary", &config.pgbackrest_binary, kOptional, &absolute_path);
  root.String("state_dir", &config.state_dir, kOptional, &absolute_path);
  const StringRule user_name{
      [](absl::string_view name) {
        if (name.empty() || name.size() > 32 || name == "root") return false;
        for (char c : name) {
          if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
            return false;
          }
        }
        return !(name[0] >= '0' && name[0] <= '9') && name[0] != '-';
      },
      "an OS user name other than root (1 to 32 of a-z, 0-9, '_', '-', not starting with a "
      "digit or '-'), e.g. postgres"};
  root.String("run_as", &config.run_as, kOptional, &user_name);
  root.StringList("roots", &config.roots, kOptional, &absolute_path);
  if (config.roots.empty()) config.roots.push_back(config.state_dir);
  CheckPathsApart(root, config);
  ReadServiceSection(root.Section("service"), absolute_path, config);
  if (root.Has("patroni")) {
    config.patroni.emplace();
    ReadPatroniSection(root.Section("patroni"), *config.patroni);
  }
  root.Duration("facts_interval", &config.facts_interval, absl::Seconds(1), absl::Hours(24));

  ConfigReader reconnect = root.Section("reconnect");
  bool initial_ok = reconnect.Duration("initial", &config.reconnect_initial, absl::Milliseconds(10),
                                       absl::Minutes(10));
  bool max_ok =
      reconnect.Duration("max", &config.reconnect_max, absl::Milliseconds(10), absl::Hours(1));
  if (initial_ok && max_ok && config.reconnect_initial > config.reconnect_max) {
    reconnect.AddError("initial",
                       absl::StrCat("must not be longer than reconnect.max (",
                                    absl::FormatDuration(config.reconnect_initial), " > ",
                                    absl::FormatDuration(config.reconnect_max), ")"));
  }

  ConfigReader log = root.Section("log");
  log.OneOf("level", &config.log_level, LogLevels());
  log.OneOf("format", &config.log_format, {"text", "json"});

  PGH_RETURN_IF_ERROR(root.Finish());
  return config;
}

absl::StatusOr<AgentConfig> LoadAgentConfig(const std::string& path) {
  PGH_ASSIGN_OR_RETURN(std::string text, ReadFile(path, /*max_bytes=*/1 << 20));
  return ParseAgentConfig(text, path);
}

}  // namespace pghaul::agent
