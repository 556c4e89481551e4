#include "cli/commands_access.h"

#include <sys/stat.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "cli/agent_table.h"
#include "cli/exit_codes.h"
#include "common/access_tokens.h"
#include "common/files.h"
#include "common/json_escape.h"
#include "common/status_macros.h"
#include "common/tls_certificates.h"

namespace pghaul::cli {
namespace {

constexpr absl::string_view kRoles[] = {"read-only", "operator", "admin"};

bool IsRole(absl::string_view role) {
  for (absl::string_view known : kRoles) {
    if (role == known) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::string> RunTokenCreate(const TokenOptions& options, OutputFormat format) {
  if (absl::Status s = ValidateCliName(options.name); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--name: ", s.message()));
  }
  if (!IsRole(options.role)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--role '", options.role, "': expected read-only, operator or admin"));
  }
  if (options.out.empty()) return absl::InvalidArgumentError("--out FILE is required");
  struct stat info;
  if (!options.force && ::lstat(options.out.c_str(), &info) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(
        options.out, " exists; pass --force to replace it (the token it holds stops working "
        "once its line is removed from controller.yaml)"));
  }
  PGH_ASSIGN_OR_RETURN(std::string token, NewAccessToken());
  PGH_RETURN_IF_ERROR(WriteFileAtomically(options.out, absl::StrCat(token, "\n"), 0600));
  const std::string line =
      absl::StrCat(options.name, " ", options.role, " ", AccessTokenDigest(token));
  if (format == OutputFormat::kJson) {
    return absl::StrCat("{\"name\":\"", JsonEscape(options.name), "\",\"role\":\"",
                        JsonEscape(options.role), "\",\"token_file\":\"", JsonEscape(options.out),
                        "\",\"config_line\":\"", JsonEscape(line), "\"}\n");
  }
  return absl::StrCat("token written to ", options.out,
                      " (0600); give it to its holder, who sets PGHAUL_TOKEN_FILE to it.\n"
                      "Add this line under access.tokens in controller.yaml and restart the "
                      "controller:\n  - \"",
                      line, "\"\n");
}

absl::StatusOr<std::string> RunWhoAmI(ControllerClient& client, OutputFormat format) {
  PGH_ASSIGN_OR_RETURN(v1::WhoAmIResponse who, client.WhoAmI());
  if (format == OutputFormat::kJson) {
    return absl::StrCat("{\"caller\":\"", JsonEscape(who.caller()), "\",\"role\":\"",
                        JsonEscape(who.role()), "\",\"roles_configured\":",
                        who.roles_configured() ? "true" : "false", "}\n");
  }
  std::string text = absl::StrCat(Printable(who.caller()), " (", Printable(who.role()), ")\n");
  if (!who.roles_configured()) {
    absl::StrAppend(&text,
                    "the controller has no access section: every caller is admin "
                    "(docs/security.md)\n");
  }
  return text;
}

absl::StatusOr<std::string> ResolveToken(const std::string& token_file, const char* env_token) {
  if (!token_file.empty()) return ReadAccessTokenFile(token_file);
  if (env_token == nullptr || *env_token == '\0') return std::string();
  if (absl::Status s = ValidateAccessToken(env_token); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("PGHAUL_TOKEN: ", s.message()));
  }
  return std::string(env_token);
}

PluggedTokenCommand AddTokenCommand(CLI::App& app) {
  auto options = std::make_shared<TokenOptions>();
  CLI::App* token = app.add_subcommand(
      "token", "Tokens that name CLI users to the controller, with a role (create)");
  token->require_subcommand(1, 1);
  CLI::App* create = token->add_subcommand(
      "create",
      "Write a new token to a file and print the line that gives it a role in controller.yaml");
  create->add_option("--name", options->name, "Who holds the token (shown in the controller's log)")
      ->required()
      ->type_name("NAME");
  create->add_option("--role", options->role, "read-only, operator or admin")
      ->required()
      ->type_name("ROLE");
  create->add_option("--out", options->out, "The file to write the token to (0600)")
      ->required()
      ->type_name("FILE");
  create->add_flag("--force", options->force, "Replace an existing file");
  create->footer(
      "Example:\n"
      "  pghaul token create --name ci-bot --role read-only --out ~/.pghaul/ci-bot.token\n"
      "  PGHAUL_TOKEN_FILE=~/.pghaul/ci-bot.token pghaul whoami\n\n"
      "The controller keeps only the token's SHA-256. Roles: read-only lists and watches; "
      "operator also applies plans and runs preflight, backup, restore and verify; admin also "
      "cuts over, aborts and submits raw tasks. See docs/security.md.");

  CLI::Option* output = app.get_option("--output");
  return {token, [options, output](std::ostream& out, std::ostream& err) {
            absl::StatusOr<OutputFormat> format = ParseOutputFormat(output->as<std::string>());
            absl::StatusOr<std::string> text =
                format.ok() ? RunTokenCreate(*options, *format) : format.status();
            if (!text.ok()) {
              err << "pghaul: " << Printable(text.status().message()) << "\n";
              return ExitCodeForStatus(text.status());
            }
            out << *text;
            out.flush();
            return out ? kExitOk : kExitSoftware;
          }};
}

}  // namespace pghaul::cli
