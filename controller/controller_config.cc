#include "controller/controller_config.h"

#include <limits.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
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
