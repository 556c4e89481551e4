// Access to the controller (docs/security.md, "Roles and tokens"):
//
//   pghaul token create --name NAME --role ROLE --out FILE [--force]
//       writes a new token to FILE (0600) and prints the line to add under access.tokens in
//       controller.yaml: "NAME ROLE sha256:<hex>". Works offline: the controller never sees the
//       token until a CLI sends it.
//   pghaul whoami
//       who the controller takes this CLI for (certificate or token), and its role.
//
// app.cc plugs `token` in with one line, among its other plugged commands, and runs `whoami`
// with the other commands that call the controller.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <utility>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "cli/controller_client.h"
#include "cli/json_output.h"

namespace pghaul::cli {

struct TokenOptions {
  std::string name;
  std::string role;
  std::string out;  // the file the token goes to
  bool force = false;
};

// Makes a token, writes it to options.out (0600; an existing file only with force) and returns
// what to print. Errors: InvalidArgument for a bad name or role; AlreadyExists for an existing
// file without force; those of writing the file.
absl::StatusOr<std::string> RunTokenCreate(const TokenOptions& options, OutputFormat format);

// Asks the controller who this client is.
absl::StatusOr<std::string> RunWhoAmI(ControllerClient& client, OutputFormat format);

using PluggedTokenCommand =
    std::pair<CLI::App*, std::function<int(std::ostream& out, std::ostream& err)>>;

// Adds `token` (with `create`) to `app`; the returned function must not outlive `app`.
PluggedTokenCommand AddTokenCommand(CLI::App& app);

// Where the CLI's token comes from: the file `token_file` when not empty, else the value of the
// PGHAUL_TOKEN variable `env_token` (null: unset), else none (""). Errors: those of reading the
// file (common/access_tokens.h), or InvalidArgument for a malformed PGHAUL_TOKEN.
absl::StatusOr<std::string> ResolveToken(const std::string& token_file, const char* env_token);

}  // namespace pghaul::cli
