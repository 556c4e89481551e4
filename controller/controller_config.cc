#include "controller/controller_config.h"

#include <limits.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/access_tokens.h"
#include "common/config_reader.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/tls_config.h"

namespace pghaul::controller {
namespace {

std::string Hostname() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "";
  return name;
}

// Reads the `access` section into `out`: each role's list of CLI names, the default role, and
// the tokens, each "<name> <role> sha256:<hex>" as `pghaul token create` prints it.
void ReadAccess(ConfigReader& root, AccessConfig* out) {
  out->configured = root.Has("access");
  ConfigReader access = root.Section("access");
  if (!out->configured) {
    // Known keys, absent: an unknown key under a missing section cannot occur.
    return;
  }
  out->default_role = Role::kReadOnly;
  std::string default_role(RoleName(out->default_role));
  if (access.OneOf("default_role", &default_role, {"read-only", "operator", "admin"})) {
    out->default_role = *ParseRole(default_role);
  }
  const StringRule cli_name{[](absl::string_view name) { return ValidateCliName(name).ok(); },
                            "a CLI name as in its certificate's cli:<name>: 1 to 63 of a-z, 0-9, "
                            "'.', '_' or '-'"};
  for (Role role : {Role::kReadOnly, Role::kOperator, Role::kAdmin}) {
    const std::string key(RoleConfigKey(role));
    std::vector<std::string> names;
    if (!access.StringList(key, &names, kOptional, &cli_name)) continue;
    for (const std::string& name : names) {
      auto [it, inserted] = out->users.emplace(name, role);
      if (!inserted && it->second != role) {
        access.AddError(key, absl::StrCat("'", name, "' is also listed under ",
                                          RoleConfigKey(it->second), ": give each user one role"));
      }
    }
  }
  std::vector<std::string> tokens;
  access.StringList("tokens", &tokens);
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::vector<std::string> fields =
        absl::StrSplit(tokens[i], absl::ByAnyChar(" \t"), absl::SkipEmpty());
    std::optional<Role> role = fields.size() == 3 ? ParseRole(fields[1]) : std::nullopt;
    const std::string key = absl::StrCat("tokens[", i, "]");
    if (fields.size() != 3 || !ValidateCliName(fields[0]).ok() || !role.has_value() ||
        !IsAccessTokenDigest(fields[2])) {
      access.AddError(key, "expected \"<name> <read-only|operator|admin> sha256:<64 hex digits>\" "
                           "as printed by pghaul token create");
      continue;
    }
    for (const AccessToken& earlier : out->tokens) {
      if (earlier.name == fields[0]) {
        access.AddError(key, absl::StrCat("token name '", fields[0], "' is used twice"));
      }
      if (earlier.digest == fields[2]) {
        access.AddError(key, absl::StrCat("the same token is listed for '", earlier.name,
                                          "' and '", fields[0], "'"));
      }
    }
    out->tokens.push_back({fields[0], *role, fields[2]});
  }
}

}  // namespace

bool IsValidControllerId(absl::string_view id) {
  if (id.empty() || id.size() > 255 || !absl::ascii_isalnum(static_cast<unsigned char>(id[0]))) {
    return false;
  }
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

absl::StatusOr<ControllerConfig> ParseControllerConfig(absl::string_view yaml,
                                                       absl::string_view source_name) {
  PGH_ASSIGN_OR_RETURN(ConfigReader root, ConfigReader::Parse(yaml, source_name));
  ControllerConfig config;
  const StringRule listen = HostPortRule(/*allow_port_zero=*/true);
  const StringRule absolute_path = AbsolutePathRule();
  const StringRule controller_id{IsValidControllerId,
                                 "1 to 255 characters of A-Z, a-z, 0-9, '.', '_' or '-', "
                                 "starting with a letter or digit"};

  root.String("listen", &config.listen_address, kRequired, &listen);
  TransportSecurity security;
  ReadTransportSecurity(root, /*with_server_name=*/false, &security);
  config.insecure = security.insecure;
  config.tls = security.tls;
  ReadAccess(root, &config.access);
  if (root.Has("controller_id")) {
    root.String("controller_id", &config.controller_id, kRequired, &controller_id);
  } else {
    root.String("controller_id", &config.controller_id);  // known key, absent
    config.controller_id = Hostname();
    if (!IsValidControllerId(config.controller_id)) {
      root.AddError(
          "controller_id",
          absl::StrCat("not set, and the host name \"", absl::CHexEscape(config.controller_id),
                       "\" cannot serve as one; set controller_id to ", controller_id.expectation));
    }
  }
  root.String("state_dir", &config.state_dir, kOptional, &absolute_path);
  root.Duration("heartbeat_interval", &config.heartbeat_interval, absl::Milliseconds(100),
                absl::Seconds(60));
  root.Int("missed_heartbeats", &config.missed_heartbeats, 1, 100);

  ConfigReader log = root.Section("log");
  log.OneOf("level", &config.log_level, {"trace", "debug", "info", "warn", "error", "off"});
  log.OneOf("format", &config.log_format, {"text", "json"});

  PGH_RETURN_IF_ERROR(root.Finish());
  return config;
}

absl::StatusOr<ControllerConfig> LoadControllerConfig(const std::string& path) {
  PGH_ASSIGN_OR_RETURN(std::string text, ReadFile(path, /*max_bytes=*/1 << 20));
  return ParseControllerConfig(text, path);
}

}  // namespace pghaul::controller
