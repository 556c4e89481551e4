#include "agent/patroni_config.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "yaml-cpp/yaml.h"

namespace pghaul::agent {
namespace {

// A systemd unit name: letters, digits and "@:._-\", not starting with '-'.
bool IsUnitName(absl::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '-') return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) &&
        absl::string_view("@:._-\\").find(c) == absl::string_view::npos) {
      return false;
    }
  }
  return true;
}

constexpr size_t kMaxPatroniConfigBytes = 1 << 20;

// node[key] for a mapping; an undefined node when `node` is not a mapping or lacks the key.
// (yaml-cpp throws when asked for the kind of a missing key's node, or for a key of a scalar,
// so both are checked first.)
YAML::Node Child(const YAML::Node& node, const char* key) {
  if (!node.IsDefined() || !node.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  return node[key];
}

// The username of an authentication entry ({username: ..., password: ...}), "" when absent.
absl::StatusOr<std::string> Username(const YAML::Node& entry, absl::string_view path) {
  if (!entry.IsDefined() || entry.IsNull()) return std::string();
  if (!entry.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a mapping"));
  }
  YAML::Node username = entry["username"];
  if (!username.IsDefined() || username.IsNull()) return std::string();
  if (!username.IsScalar()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ".username is not a string"));
  }
  return username.Scalar();
}

// The password of an authentication entry, nullopt when absent. Errors never quote it.
absl::StatusOr<std::optional<std::string>> Password(const YAML::Node& entry,
                                                    absl::string_view path) {
  if (!entry.IsDefined() || !entry.IsMap()) return std::nullopt;
  YAML::Node password = entry["password"];
  if (!password.IsDefined() || password.IsNull()) return std::nullopt;
  if (!password.IsScalar()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ".password is not a string"));
  }
  return password.Scalar();
}

// A scalar of `node`'s `key` ("" when absent). Errors: InvalidArgument when it is not a scalar.
absl::StatusOr<std::string> Scalar(const YAML::Node& node, const char* key,
                                   absl::string_view path) {
  YAML::Node value = Child(node, key);
  if (!value.IsDefined() || value.IsNull()) return std::string();
  if (!value.IsScalar()) return absl::InvalidArgumentError(absl::StrCat(path, " is not a string"));
  return value.Scalar();
}

// etcd3: {host | hosts, protocol, username, ...} into `settings`.
absl::Status ReadEtcd3(const YAML::Node& etcd3, PatroniFileSettings& settings) {
  if (!etcd3.IsDefined() || etcd3.IsNull()) return absl::OkStatus();
  if (!etcd3.IsMap()) return absl::InvalidArgumentError("etcd3 is not a mapping");
  PGH_ASSIGN_OR_RETURN(std::string host, Scalar(etcd3, "host", "etcd3.host"));
  if (!host.empty()) settings.etcd3_hosts.push_back(host);
  YAML::Node hosts = Child(etcd3, "hosts");
  if (hosts.IsDefined() && hosts.IsSequence()) {
    for (const YAML::Node& entry : hosts) {
      if (!entry.IsScalar()) {
        return absl::InvalidArgumentError("etcd3.hosts has an entry that is not a string");
      }
      settings.etcd3_hosts.push_back(entry.Scalar());
    }
  } else if (hosts.IsDefined() && !hosts.IsNull()) {
    PGH_ASSIGN_OR_RETURN(std::string list, Scalar(etcd3, "hosts", "etcd3.hosts"));
    for (absl::string_view part : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
      settings.etcd3_hosts.emplace_back(absl::StripAsciiWhitespace(part));
    }
  }
  PGH_ASSIGN_OR_RETURN(std::string protocol, Scalar(etcd3, "protocol", "etcd3.protocol"));
  if (!protocol.empty() && protocol != "http") {
    settings.etcd3_unsupported.push_back("etcd3.protocol " + protocol);
  }
  for (const char* key : {"username", "cacert", "cert", "key", "url", "proxy", "srv"}) {
    YAML::Node value = Child(etcd3, key);
    if (value.IsDefined() && !value.IsNull()) {
      settings.etcd3_unsupported.push_back(absl::StrCat("etcd3.", key));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> HbaLines(const YAML::Node& node, absl::string_view path) {
  std::vector<std::string> lines;
  if (!node.IsDefined() || node.IsNull()) return lines;
  if (!node.IsSequence()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a list"));
  }
  for (const YAML::Node& line : node) {
    if (!line.IsScalar()) {
      return absl::InvalidArgumentError(absl::StrCat(path, " has an entry that is not a string"));
    }
    lines.push_back(line.Scalar());
  }
  return lines;
}

absl::StatusOr<PatroniFileSettings> ParseYaml(const YAML::Node& root) {
  if (!root.IsMap()) return absl::InvalidArgumentError("it is not a YAML mapping");
  PatroniFileSettings settings;
  const YAML::Node postgresql = Child(root, "postgresql");
  const YAML::Node authentication = Child(postgresql, "authentication");
  if (authentication.IsDefined() && !authentication.IsNull()) {
    PGH_ASSIGN_OR_RETURN(settings.superuser, Username(Child(authentication, "superuser"),
                                                      "postgresql.authentication.superuser"));
    PGH_ASSIGN_OR_RETURN(settings.replication, Username(Child(authentication, "replication"),
                                                        "postgresql.authentication.replication"));
    PGH_ASSIGN_OR_RETURN(settings.rewind, Username(Child(authentication, "rewind"),
                                                   "postgresql.authentication.rewind"));
  } else {
    // Patroni's older layout (config.py moves these under authentication).
    PGH_ASSIGN_OR_RETURN(settings.superuser,
                         Username(Child(postgresql, "superuser"), "postgresql.superuser"));
    PGH_ASSIGN_OR_RETURN(settings.replication,
                         Username(Child(postgresql, "replication"), "postgresql.replication"));
  }
  const YAML::Node auth_parent =
      authentication.IsDefined() && !authentication.IsNull() ? authentication : postgresql;
  PGH_ASSIGN_OR_RETURN(settings.superuser_password,
                       Password(Child(auth_parent, "superuser"), "superuser"));
  PGH_ASSIGN_OR_RETURN(settings.replication_password,
                       Password(Child(auth_parent, "replication"), "replication"));
  PGH_ASSIGN_OR_RETURN(settings.rewind_password, Password(Child(auth_parent, "rewind"), "rewind"));
  if (settings.superuser.empty()) {
    PGH_ASSIGN_OR_RETURN(settings.superuser_password,
                         Password(Child(postgresql, "pg_rewind"), "postgresql.pg_rewind"));
    // Patroni uses postgresql.pg_rewind as the superuser when none is configured.
    PGH_ASSIGN_OR_RETURN(settings.superuser,
                         Username(Child(postgresql, "pg_rewind"), "postgresql.pg_rewind"));
  }
  PGH_ASSIGN_OR_RETURN(settings.scope, Scalar(root, "scope", "scope"));
  PGH_ASSIGN_OR_RETURN(std::string dcs_namespace, Scalar(root, "namespace", "namespace"));
  if (!dcs_namespace.empty()) settings.dcs_namespace = dcs_namespace;
  PGH_RETURN_IF_ERROR(ReadEtcd3(Child(root, "etcd3"), settings));
  const YAML::Node local_hba = Child(postgresql, "pg_hba");
  if (local_hba.IsDefined() && !local_hba.IsNull()) {
    PGH_ASSIGN_OR_RETURN(settings.pg_hba, HbaLines(local_hba, "postgresql.pg_hba"));
  } else {
    PGH_ASSIGN_OR_RETURN(
        settings.pg_hba,
        HbaLines(Child(Child(Child(Child(root, "bootstrap"), "dcs"), "postgresql"), "pg_hba"),
                 "bootstrap.dcs.postgresql.pg_hba"));
  }
  return settings;
}

}  // namespace

absl::StatusOr<PatroniFileSettings> ParsePatroniFileSettings(absl::string_view yaml_text) {
  try {
    return ParseYaml(YAML::Load(std::string(yaml_text)));
  } catch (const YAML::Exception& e) {
    // The message of a parser error quotes no values, only the position.
    return absl::InvalidArgumentError(absl::StrCat("not valid YAML: ", e.what()));
  }
}

absl::StatusOr<PatroniFileSettings> ReadPatroniFileSettings(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path, kMaxPatroniConfigBytes);
  if (!text.ok()) {
    return absl::Status(text.status().code(), absl::StrCat("cannot read Patroni's configuration ",
                                                           path, ": ", text.status().message()));
  }
  absl::StatusOr<PatroniFileSettings> settings = ParsePatroniFileSettings(*text);
  if (!settings.ok()) {
    return absl::Status(settings.status().code(), absl::StrCat("Patroni's configuration ", path,
                                                               ": ", settings.status().message()));
  }
  return settings;
}

std::string PatroniFileSettings::ClusterPrefix() const {
  // As Patroni's AbstractDCS: '/'.join(['', namespace, scope]) with runs of '/' collapsed.
  const std::string joined = absl::StrCat("/", dcs_namespace, "/", scope, "/");
  std::string prefix;
  for (char c : joined) {
    if (c == '/' && !prefix.empty() && prefix.back() == '/') continue;
    prefix.push_back(c);
  }
  return prefix;
}

std::string PatroniConfig::RestApiAddress() const {
  const bool ipv6 = rest_api_host.find(':') != std::string::npos;
  return absl::StrCat(ipv6 ? "[" : "", rest_api_host, ipv6 ? "]" : "", ":", rest_api_port);
}

absl::Status SplitHostPort(absl::string_view address, std::string* host, int* port) {
  if (!IsHostPort(address, /*allow_port_zero=*/false)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", address, "\" is not host:port"));
  }
  size_t colon = address.rfind(':');
  absl::string_view host_part = address.substr(0, colon);
  if (!host_part.empty() && host_part.front() == '[') {
    host_part = host_part.substr(1, host_part.size() - 2);
  }
  *host = std::string(host_part);
  if (!absl::SimpleAtoi(address.substr(colon + 1), port)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", address, "\" has no valid port"));
  }
  return absl::OkStatus();
}

void ReadPatroniSection(ConfigReader section, PatroniConfig& out) {
  const StringRule absolute_path = AbsolutePathRule();
  const StringRule host_port = HostPortRule(/*allow_port_zero=*/false);
  const StringRule non_empty = NonEmptyRule();
  const StringRule unit_name{IsUnitName,
                             "a systemd unit name (letters, digits, '@', ':', '.', '_', '-', "
                             "'\\'), e.g. patroni.service"};

  section.String("config_file", &out.config_file, kRequired, &absolute_path);
  if (section.Has("dcs")) {
    std::string dcs;
    section.String("dcs", &dcs);
    if (dcs == "etcd") {
      section.AddError("dcs",
                       "etcd (the v2 API) is not supported: etcd 3.4 serves no v2 API by "
                       "default; configure Patroni with an etcd3: section and say dcs: etcd3");
    } else if (dcs != "etcd3") {
      section.AddError("dcs", absl::StrCat("expected etcd3 (the only DCS pghaul supports so "
                                           "far), got \"",
                                           dcs, "\""));
    }
    out.dcs = "etcd3";
  }

  ConfigReader rest_api = section.Section("rest_api");
  std::string address;
  if (rest_api.String("address", &address, kRequired, &host_port) && !address.empty()) {
    absl::Status split = SplitHostPort(address, &out.rest_api_host, &out.rest_api_port);
    if (!split.ok()) rest_api.AddError("address", split.message());
  }
  const bool has_user = rest_api.String("username", &out.rest_api_username, kOptional, &non_empty);
  const bool has_file =
      rest_api.String("password_file", &out.rest_api_password_file, kOptional, &absolute_path);
  if (has_user && has_file) {
    if (!out.rest_api_username.empty() && out.rest_api_password_file.empty()) {
      rest_api.AddError("password_file",
                        "is required with username (Patroni's restapi.authentication)");
    } else if (out.rest_api_username.empty() && !out.rest_api_password_file.empty()) {
      rest_api.AddError("username", "is required with password_file");
    }
  }
  rest_api.Duration("timeout", &out.request_timeout, absl::Milliseconds(100), absl::Seconds(60));

  ConfigReader control = section.Section("control");
  std::string method = "systemd";
  control.OneOf("method", &method, {"systemd", "command"});
  out.control =
      method == "command" ? PatroniConfig::Control::kCommand : PatroniConfig::Control::kSystemd;
  control.String("systemctl", &out.systemctl, kOptional, &absolute_path);
  control.String("unit", &out.unit, kOptional, &unit_name);
  control.StringList("command", &out.command, kOptional, &non_empty);
  control.String("log_file", &out.log_file, kOptional, &absolute_path);
  if (out.control == PatroniConfig::Control::kSystemd) {
    for (const char* key : {"command", "log_file"}) {
      if (control.Has(key)) {
        control.AddError(key, "is only for method command (method is systemd)");
      }
    }
    return;
  }
  for (const char* key : {"unit", "systemctl"}) {
    if (control.Has(key)) control.AddError(key, "is only for method systemd (method is command)");
  }
  if (out.command.empty()) {
    control.AddError("command",
                     "is required with method command: Patroni's argv, e.g. "
                     "[/usr/bin/patroni, /etc/patroni/patroni.yml]");
  } else if (out.command.front().empty() || out.command.front().front() != '/') {
    control.AddError("command", absl::StrCat("its first element must be an absolute path, got \"",
                                             out.command.front(), "\""));
  }
  if (out.log_file.empty()) {
    control.AddError("log_file",
                     "is required with method command: Patroni's output is appended there");
  }
}

}  // namespace pghaul::agent
