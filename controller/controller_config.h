// The controller's configuration file (/etc/pghaul/controller.yaml by default);
// docs/configuration.md describes every key.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/tls_certificates.h"
#include "controller/access_policy.h"

namespace pghaul::controller {

struct ControllerConfig {
  std::string listen_address;  // required, key listen, "host:port"; port 0 picks a free port
  // Key insecure: plaintext connections (warned about at every start). Either this or tls.
  bool insecure = false;
  // Key tls {ca, cert, key}: mutual TLS for agents and the CLI (docs/security.md). Checked for
  // content at start-up (LoadTlsFiles), not here.
  TlsFilePaths tls;
  // Key access: roles of CLI users and tokens (controller/access_policy.h, docs/security.md).
  AccessConfig access;
  std::string controller_id;                             // default: this host's name
  std::string state_dir = "/var/lib/pghaul";             // absolute
  absl::Duration heartbeat_interval = absl::Seconds(2);  // between 100ms and 60s
  int missed_heartbeats = 3;        // an agent is offline after this many silent intervals, 1..100
  std::string log_level = "info";   // key log.level: trace, debug, info, warn, error, off
  std::string log_format = "json";  // key log.format: text or json
};

// Whether `id` can name a controller: 1 to 255 characters of [A-Za-z0-9._-], starting with a
// letter or digit (every host name qualifies).
bool IsValidControllerId(absl::string_view id);

// Parses the YAML text of a controller configuration. `source_name` (the file's path) starts
// every error message. Errors: InvalidArgument listing every problem, each naming its key path
// and what was expected.
absl::StatusOr<ControllerConfig> ParseControllerConfig(absl::string_view yaml,
                                                       absl::string_view source_name);

// Reads and parses the file at `path`. Errors: NotFound or PermissionDenied naming the path, or
// those of ParseControllerConfig.
absl::StatusOr<ControllerConfig> LoadControllerConfig(const std::string& path);

}  // namespace pghaul::controller
