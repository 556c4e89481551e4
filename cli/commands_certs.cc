#include "cli/commands_certs.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "cli/agent_table.h"
#include "cli/exit_codes.h"
#include "common/json_escape.h"

namespace pghaul::cli {
namespace {

constexpr int kCaDays = 3650;
constexpr int kLeafDays = 825;

}  // namespace

absl::StatusOr<std::string> RunCerts(const CertsOptions& options, OutputFormat format) {
  if (options.dir.empty()) return absl::InvalidArgumentError("--dir is required");
  absl::StatusOr<WrittenFiles> written;
  if (options.init) {
    written = CreateCertificateAuthority(options.dir, options.days > 0 ? options.days : kCaDays,
                                         options.force);
  } else {
    CertificateRequest request;
    request.validity_days = options.days > 0 ? options.days : kLeafDays;
    int kinds = 0;
    if (!options.agent_id.empty()) {
      ++kinds;
      request.kind = CertificateKind::kAgent;
      request.name = options.agent_id;
    }
    if (!options.cli_name.empty()) {
      ++kinds;
      request.kind = CertificateKind::kCli;
      request.name = options.cli_name;
    }
    if (options.controller) {
      ++kinds;
      request.kind = CertificateKind::kController;
      request.hosts = options.hosts.empty() ? DefaultControllerHosts() : options.hosts;
    }
    if (kinds != 1) {
      return absl::InvalidArgumentError(
          "say what the certificate is for: exactly one of --agent ID, --controller or --cli NAME");
    }
    if (!options.hosts.empty() && !options.controller) {
      return absl::InvalidArgumentError("--name is for --controller certificates only");
    }
    written = IssueCertificate(options.dir, request, options.force);
  }
  if (!written.ok()) return written.status();
  if (format == OutputFormat::kJson) {
    return absl::StrCat("{\"certificate\":\"", JsonEscape(written->certificate), "\",\"key\":\"",
                        JsonEscape(written->key), "\",\"ca\":\"",
                        JsonEscape(written->ca_certificate), "\"}\n");
  }
  std::string text = absl::StrCat("certificate  ", written->certificate, "\nkey          ",
                                  written->key, " (0600: only its owner may read it)\n");
  if (!options.init) absl::StrAppend(&text, "ca           ", written->ca_certificate, "\n");
  return text;
}

PluggedCertsCommand AddCertsCommand(CLI::App& app) {
  auto options = std::make_shared<CertsOptions>();
  CLI::App* certs = app.add_subcommand(
      "certs",
      "Make a small certificate authority and the certificates for mutual TLS between agents, "
      "controller and CLI (init, issue); for users without a PKI of their own");
  certs->require_subcommand(1, 1);
  certs->footer(
      "Example:\n"
      "  pghaul certs init --dir /etc/pghaul/ca\n"
      "  pghaul certs issue --dir /etc/pghaul/ca --controller --name controller.example.internal\n"
      "  pghaul certs issue --dir /etc/pghaul/ca --agent legacy-db1\n"
      "  pghaul certs issue --dir /etc/pghaul/ca --cli alice\n\n"
      "Keys are EC P-256 and written 0600. Copy each certificate and key, with ca.crt, to the "
      "host that uses it; keep ca.key on this machine only. See docs/security.md.");

  CLI::App* init = certs->add_subcommand(
      "init", "Create a new CA: DIR/ca.crt (give it to every host) and DIR/ca.key (keep it here)");
  init->add_option("--dir", options->dir, "The directory of the CA (created 0700 if missing)")
      ->required()
      ->type_name("DIR");
  init->add_option("--days", options->days,
                   absl::StrCat("How long the CA is valid (default ", kCaDays, ")"))
      ->check(CLI::Range(1, 36500))
      ->type_name("N");
  init->add_flag("--force", options->force,
                 "Replace an existing CA (its certificates stop working)");

  CLI::App* issue = certs->add_subcommand(
      "issue",
      "Issue a certificate signed by the CA in DIR: for an agent (its id), the controller (the "
      "names agents and the CLI dial) or a CLI user");
  issue->add_option("--dir", options->dir, "The directory of the CA (from certs init)")
      ->required()
      ->type_name("DIR");
  CLI::Option* agent = issue
                           ->add_option("--agent", options->agent_id,
                                        "For the agent with this id (its agent_id setting): "
                                        "DIR/agent-ID.crt and .key")
                           ->type_name("ID");
  CLI::Option* controller = issue
                                ->add_flag("--controller", options->controller,
                                           "For the controller: DIR/controller.crt and .key")
                                ->excludes(agent);
  issue
      ->add_option("--cli", options->cli_name,
                   "For a person or script using the pghaul CLI: "
                   "DIR/cli-NAME.crt and .key (the certificate names "
                   "\"cli:NAME\")")
      ->type_name("NAME")
      ->excludes(agent)
      ->excludes(controller);
  issue
      ->add_option("--name", options->hosts,
                   "With --controller: a DNS name or IP address agents and the CLI use to reach "
                   "it; repeat for several (default: this host's name, localhost, 127.0.0.1, ::1)")
      ->needs(controller)
      ->type_name("HOST");
  issue
      ->add_option("--days", options->days,
                   absl::StrCat("How long the certificate is valid (default ", kLeafDays, ")"))
      ->check(CLI::Range(1, 36500))
      ->type_name("N");
  issue->add_flag("--force", options->force, "Replace existing files of the same name");

  CLI::Option* output = app.get_option("--output");
  return {certs, [options, init, output](std::ostream& out, std::ostream& err) {
            options->init = init->parsed();
            absl::StatusOr<OutputFormat> format = ParseOutputFormat(output->as<std::string>());
            absl::StatusOr<std::string> text =
                format.ok() ? RunCerts(*options, *format) : format.status();
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
