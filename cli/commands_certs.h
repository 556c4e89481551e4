// `pghaul certs`: a small certificate authority for users without a PKI (docs/security.md).
//
//   pghaul certs init --dir D [--days N] [--force]
//       D/ca.crt and D/ca.key (0600): a new CA with an EC P-256 key
//   pghaul certs issue --dir D --agent ID [--days N] [--force]          D/agent-ID.{crt,key}
//   pghaul certs issue --dir D --controller [--name HOST]... [...]      D/controller.{crt,key}
//   pghaul certs issue --dir D --cli NAME [...]                         D/cli-NAME.{crt,key}
//
// Files are never replaced without --force. Output: the paths written (with -o json, an object
// {"certificate": .., "key": .., "ca": ..}). The controller is not asked: this command works
// offline, on whichever machine keeps the CA key.
//
// app.cc plugs it in with one line, among its other plugged commands:
//
//   plugged.push_back(AddCertsCommand(app));
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/json_output.h"
#include "common/tls_certificates.h"

namespace pghaul::cli {

// What `certs init` or `certs issue` was asked to do.
struct CertsOptions {
  bool init = false;  // init, else issue
  std::string dir;
  int days = 0;  // 0: the default for the kind (CA 3650, others 825)
  bool force = false;
  std::string agent_id;            // --agent
  bool controller = false;         // --controller
  std::vector<std::string> hosts;  // --name, with --controller
  std::string cli_name;            // --cli
};

// Runs a parsed `certs` command: writes the files and prints their paths to `out` in `format`.
// Errors (also as the returned status): InvalidArgument for bad names or no kind; AlreadyExists
// for files present without --force; NotFound for `issue` without a CA in the directory.
absl::StatusOr<std::string> RunCerts(const CertsOptions& options, OutputFormat format);

using PluggedCertsCommand =
    std::pair<CLI::App*, std::function<int(std::ostream& out, std::ostream& err)>>;

// Adds `certs` (with `init` and `issue`) to `app`. The returned function runs RunCerts with the
// parsed flags and the global --output; it must not outlive `app`.
PluggedCertsCommand AddCertsCommand(CLI::App& app);

}  // namespace pghaul::cli
