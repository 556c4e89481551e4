#include "cli/app.h"

#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/types/span.h"
#include "cli/agent_table.h"
#include "cli/commands_access.h"
#include "cli/commands_agents.h"
#include "cli/commands_certs.h"
#include "cli/commands_demo.h"
#include "cli/commands_migrations.h"
#include "cli/commands_tasks.h"
#include "cli/controller_client.h"
#include "cli/exit_codes.h"
#include "cli/json_output.h"
#include "cli/migration_follow.h"
#include "cli/migration_table.h"
#include "cli/task_input.h"
#include "common/status_macros.h"
#include "common/tls_credentials.h"
#include "common/validators.h"
#include "common/version.h"

namespace pghaul::cli {
namespace {

constexpr absl::string_view kHelpHint = "Run 'pghaul --help'.";

constexpr uint32_t kDefaultAgentTaskLimit = 10;  // agents show --tasks
constexpr uint32_t kDefaultTaskListLimit = 20;   // task list
constexpr uint32_t kMaxLimit = 1000;             // the controller answers at most this many

// What the person asked for, once CLI11 has parsed the command line.
struct Invocation {
  std::string controller = std::string(kDefaultControllerAddress);
  std::string output = "table";
  std::string timeout = absl::FormatDuration(kDefaultCallTimeout);
  std::string agent_id;
  bool agent_tasks = false;
  uint32_t limit = 0;  // set per command below
  std::string task_id;
  uint32_t recent_events = kDefaultRecentEvents;
  std::string task_file;
  std::string task_json;
  bool wait = false;
  // Migrations.
  std::string migration_id;
  std::string plan_file;
  bool dry_run = false;
  bool replace = false;
  bool detach = false;
  std::string until;
  std::string backup_type;
  std::string restore_mode;
  std::string set;
  std::string at;
  std::string max_downtime;
  // The link to the controller: mutual TLS with these files, or plaintext with --insecure.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_server_name;
  bool insecure = false;
  std::string token_file;  // --token-file: a token naming the caller (commands_access.h)
};

// A command kept in a file of its own (`demo`): its subcommand in the tree, and what runs it
// once parsed, given stdout and stderr, returning the exit status.
using PluggedCommand =
    std::pair<CLI::App*, std::function<int(std::ostream& out, std::ostream& err)>>;

// Prints the one error line. With `multi_line` (the problems of a plan, one per line), each
// line of the message is printed on its own line, still with control characters escaped.
int ReportError(const absl::Status& status, std::ostream& err, bool multi_line = false) {
  if (!multi_line) {
    err << "pghaul: " << Printable(status.message()) << "\n";
  } else {
    std::vector<std::string> lines;
    for (absl::string_view line : absl::StrSplit(status.message(), '\n')) {
      lines.push_back(Printable(line));
    }
    err << "pghaul: " << absl::StrJoin(lines, "\n") << "\n";
  }
  return ExitCodeForStatus(status);
}

// A CLI11 check that `value` is one of `allowed`; CLI11 puts the flag's name in front.
std::function<std::string(const std::string&)> OneOf(absl::Span<const absl::string_view> allowed) {
  return [allowed](const std::string& value) -> std::string {
    absl::Status status = CheckChoice("", value, allowed);
    return status.ok() ? "" : std::string(status.message());
  };
}

std::string Joined(absl::Span<const absl::string_view> values) {
  return absl::StrJoin(values, "|");
}

// The one of `commands` that was parsed, or null.
CLI::App* ParsedOneOf(std::initializer_list<CLI::App*> commands) {
  for (CLI::App* command : commands) {
    if (command->parsed()) return command;
  }
  return nullptr;
}

// What is wrong with the flags that choose the link to the controller (TLS files, or
// --insecure), or "" when they make sense together.
std::string TransportFlagsProblem(const Invocation& invocation) {
  bool any_tls = !invocation.tls_ca.empty() || !invocation.tls_cert.empty() ||
                 !invocation.tls_key.empty() || !invocation.tls_server_name.empty();
  if (invocation.insecure) {
    if (!any_tls) return "";
    return "--insecure and the --tls-* options (or PGHAUL_TLS_* variables) exclude each other: "
           "drop --insecure to use TLS";
  }
  if (!any_tls) {
    return "the link to the controller needs TLS: pass --tls-ca, --tls-cert and --tls-key (or "
           "set PGHAUL_TLS_CA, PGHAUL_TLS_CERT and PGHAUL_TLS_KEY; `pghaul certs issue --cli NAME` "
           "makes them), or --insecure for a plaintext link to a controller configured with "
           "insecure: true";
  }
  std::vector<std::string> missing;
  if (invocation.tls_ca.empty()) missing.push_back("--tls-ca");
  if (invocation.tls_cert.empty()) missing.push_back("--tls-cert");
  if (invocation.tls_key.empty()) missing.push_back("--tls-key");
  if (missing.empty()) return "";
  return absl::StrCat("TLS needs ", absl::StrJoin(missing, " and "),
                      " too (or the PGHAUL_TLS_* variable)");
}

// The credentials for the link to the controller, once TransportFlagsProblem found none: null
// for --insecure. Errors: those of LoadTlsFiles (files unreadable or not fitting together).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ControllerCredentials(
    const Invocation& invocation) {
  if (invocation.insecure) return std::shared_ptr<grpc::ChannelCredentials>();
  PGH_RETURN_IF_ERROR(RequireTls13ForProcess());
  PGH_ASSIGN_OR_RETURN(TlsMaterial material,
                       LoadTlsFiles({invocation.tls_ca, invocation.tls_cert, invocation.tls_key},
                                    {"--tls-ca", "--tls-cert", "--tls-key"}));
  return MutualTlsChannelCredentials(material);
}

}  // namespace

absl::StatusOr<absl::Duration> ParseTimeout(absl::string_view text) {
  absl::Duration timeout;
  double seconds = 0;
  if (absl::SimpleAtod(text, &seconds)) {
    if (!std::isfinite(seconds)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the timeout must be positive and finite, not '", text, "'"));
    }
    timeout = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &timeout)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "' is not a duration; write e.g. 10s, 1m30s, 500ms, or a number of seconds"));
  }
  if (timeout <= absl::ZeroDuration() || timeout == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the timeout must be positive and finite, not '", text, "'"));
  }
  return timeout;
}

int RunPghaul(int argc, const char* const* argv, std::ostream& out, std::ostream& err,
              const Clock& clock) {
  RunContext context;
  context.clock = &clock;
  return RunPghaul(argc, argv, out, err, context);
}

int RunPghaul(int argc, const char* const* argv, std::ostream& out, std::ostream& err,
              const RunContext& context) {
  Invocation invocation;
  CLI::App app(
      "pghaul moves a PostgreSQL 15 cluster between hosts with pgBackRest. This CLI asks "
      "the pghaul-controller.",
      "pghaul");
  app.set_version_flag("--version", absl::StrCat("pghaul ", kPghaulVersion));
  // Global options may follow the command too: `pghaul agents -o json`.
  app.fallthrough();
  // Not require_subcommand(1): CLI11 would then report a misspelt command as a missing one.
  app.require_subcommand(0, 1);
  app.footer(
      "Exit status: 0 success, 1 a migration or task failed (phase commands, watch, task submit "
      "--wait), 64 bad usage, 65 unknown id or rejected input, 69 controller unreachable or too "
      "slow, 70 internal error (75, 76, 77: see docs/cli.md).");
  app.add_option("--controller", invocation.controller,
                 "Address (host:port) of the controller's gRPC port")
      ->envname("PGHAUL_CONTROLLER")
      ->type_name("ADDR")
      ->capture_default_str();
  app.add_option("-o,--output", invocation.output, "Output format: table (for people) or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->type_name("FORMAT")
      ->capture_default_str();
  app.add_option("--tls-ca", invocation.tls_ca,
                 "CA certificate (PEM) the controller's certificate must be issued by")
      ->envname("PGHAUL_TLS_CA")
      ->type_name("FILE");
  app.add_option("--tls-cert", invocation.tls_cert,
                 "This client's certificate (PEM), naming \"cli:NAME\" (pghaul certs issue --cli)")
      ->envname("PGHAUL_TLS_CERT")
      ->type_name("FILE");
  app.add_option("--tls-key", invocation.tls_key, "The certificate's private key (PEM)")
      ->envname("PGHAUL_TLS_KEY")
      ->type_name("FILE");
  app.add_option("--tls-server-name", invocation.tls_server_name,
                 "The name the controller's certificate must hold (default: the host of "
                 "--controller)")
      ->envname("PGHAUL_TLS_SERVER_NAME")
      ->type_name("NAME");
  app.add_flag("--insecure", invocation.insecure,
               "Talk to the controller in plaintext, unauthenticated (a controller with insecure: "
               "true, on a trusted network)")
      ->envname("PGHAUL_INSECURE");
  app.add_option("--token-file", invocation.token_file,
                 "A file holding a token that names this CLI user to the controller, with the "
                 "token's role (pghaul token create); the variable PGHAUL_TOKEN may hold the token "
                 "itself instead")
      ->envname("PGHAUL_TOKEN_FILE")
      ->type_name("FILE");
  CLI::Option* timeout_option =
      app.add_option("--timeout", invocation.timeout,
                     "Deadline of each call to the controller, e.g. 10s, 500ms, 1m; with "
                     "task submit --wait, of the whole wait (default there: 1h)")
          ->check(
              [](const std::string& text) -> std::string {
                absl::StatusOr<absl::Duration> timeout = ParseTimeout(text);
                return timeout.ok() ? "" : std::string(timeout.status().message());
              },
              "")
          ->type_name("DURATION")
          ->capture_default_str();

  CLI::App* agents = app.add_subcommand(
      "agents", "List the agents registered with the controller, or show one (agents show ID)");
  agents->require_subcommand(0, 1);
  CLI::App* show = agents->add_subcommand("show", "Show every fact one agent reported");
  show->add_option("ID", invocation.agent_id, "The agent's id (its agent_id setting)")->required();
  CLI::Option* agent_tasks_flag =
      show->add_flag("--tasks", invocation.agent_tasks, "Also list the agent's recent tasks");
  CLI::Option* agent_limit_option =
      show->add_option(
              "--limit", invocation.limit,
              absl::StrCat("How many tasks --tasks lists (default ", kDefaultAgentTaskLimit, ")"))
          ->check(CLI::Range(uint32_t{1}, kMaxLimit))
          ->type_name("N")
          ->needs(agent_tasks_flag);

  CLI::App* task = app.add_subcommand(
      "task",
      "Low-level task control, for operators debugging a host and for tests: list, show, "
      "cancel, submit");
  task->alias("tasks");
  task->require_subcommand(0, 1);
  CLI::App* task_list = task->add_subcommand("list", "List recent tasks, newest first");
  task_list->add_option("--agent", invocation.agent_id, "Only this agent's tasks")->type_name("ID");
  CLI::Option* task_limit_option =
      task_list
          ->add_option("--limit", invocation.limit,
                       absl::StrCat("How many tasks to list (default ", kDefaultTaskListLimit, ")"))
          ->check(CLI::Range(uint32_t{1}, kMaxLimit))
          ->type_name("N");
  CLI::App* task_show =
      task->add_subcommand("show", "Show everything about one task, with its recent events");
  task_show->add_option("TASK_ID", invocation.task_id, "The task's id")->required();
  task_show
      ->add_option("--events", invocation.recent_events,
                   "How many of the task's last events (log lines, progress) to show")
      ->check(CLI::Range(uint32_t{1}, kMaxLimit))
      ->type_name("N")
      ->capture_default_str();
  CLI::App* task_cancel = task->add_subcommand("cancel", "Ask the task's agent to cancel it");
  task_cancel->add_option("TASK_ID", invocation.task_id, "The task's id")->required();
  CLI::App* task_submit = task->add_subcommand(
      "submit",
      "Run one typed operation (a pghaul.v1.Task in protobuf JSON) on an agent, e.g. "
      "--json '{\"sql\":{\"query\":\"CURRENT_WAL_LSN\"}}'");
  task_submit->add_option("AGENT", invocation.agent_id, "The agent to run it")->required();
  CLI::Option* file_option =
      task_submit
          ->add_option("--file", invocation.task_file,
                       "Read the task from FILE ('-': standard input); use this for tasks with "
                       "secrets")
          ->type_name("FILE");
  CLI::Option* json_option =
      task_submit->add_option("--json", invocation.task_json, "The task itself, as JSON text")
          ->type_name("TEXT")
          ->excludes(file_option);
  task_submit
      ->add_option("--id", invocation.task_id,
                   "The task id (1-64 of A-Z a-z 0-9 _ . -); default: a random one. "
                   "Submitting the same id again does not run the task twice")
      ->type_name("TASK_ID");
  task_submit->add_flag("--wait", invocation.wait,
                        "Wait for the task to end; exit 0 if it succeeded, 1 if not");

  // Migrations (docs/cli.md). Every phase command follows the migration until it stops, unless
  // --detach; watch's rules decide the exit status.
  CLI::App* plan = app.add_subcommand("plan", "Plans of migrations: plan apply FILE");
  plan->require_subcommand(0, 1);
  CLI::App* plan_apply = plan->add_subcommand(
      "apply",
      "Validate a plan file (docs/plan.md) and store it as a migration named after the plan; the "
      "application check files its `checks` lists are read here and sent along");
  plan_apply->add_option("FILE", invocation.plan_file, "The plan, in YAML")->required();
  plan_apply->add_flag("--dry-run", invocation.dry_run,
                       "Only validate the plan: the controller stores nothing");
  plan_apply->add_flag("--replace", invocation.replace,
                       "Replace the plan of an existing migration that has not started a phase");
  plan_apply->footer(
      "Examples:\n  pghaul plan apply /etc/pghaul/legacy-to-new.yaml --dry-run\n"
      "  pghaul plan apply /etc/pghaul/legacy-to-new.yaml\n\n"
      "A rejected plan lists every problem, one per line (exit status 65).");

  CLI::App* migrations = app.add_subcommand(
      "migrations", "List the migrations: id, state, phase, source -> target, last update");
  migrations->footer(
      "Example:\n  pghaul migrations\n  pghaul migrations -o json | jq -r "
      "'.[] | select(.state == \"failed\") | .migration_id'");

  CLI::App* status_command = app.add_subcommand(
      "status",
      "Show one migration: its phases with timings, progress, preflight checks, verify report, "
      "backup, downtime, last events, and what happens next");
  status_command->add_option("MIG", invocation.migration_id, "The migration's id (its plan's name)")
      ->required();
  status_command->footer("Example:\n  pghaul status legacy-to-new");

  CLI::App* watch = app.add_subcommand(
      "watch",
      "Follow a migration live: its events as they happen, and a progress bar with rate and ETA "
      "during backup and restore; ends when it stops running (exit 0 when it completed or its "
      "goal phase succeeded, 1 when it failed or was aborted)");
  watch->add_option("MIG", invocation.migration_id, "The migration's id")->required();
  watch->footer("Example:\n  pghaul watch legacy-to-new");

  const std::string detach_help =
      "Return once the controller accepted the request, instead of following the migration";
  const std::string dry_run_help =
      "Start nothing; print the tasks each agent would run, with every field";
  auto add_mig = [&invocation](CLI::App* command) {
    command->add_option("MIG", invocation.migration_id, "The migration's id")->required();
  };

  CLI::App* run = app.add_subcommand(
      "run",
      "Run the migration's phases in order, from the first that has not succeeded, through "
      "--until (default: finish), and follow it");
  add_mig(run);
  run->add_option("--until", invocation.until,
                  absl::StrCat("The last phase to run: ", Joined(kPhaseNames)))
      ->check(OneOf(kPhaseNames), "")
      ->type_name("PHASE");
  run->add_option("--mode", invocation.restore_mode,
                  "Restore mode: rehearsal (a promoted copy, default) or standby (follows the "
                  "archive; cutover needs it)")
      ->check(OneOf(kRestoreModes), "")
      ->type_name(Joined(kRestoreModes));
  run->add_flag("--dry-run", invocation.dry_run, dry_run_help);
  run->add_flag("--detach", invocation.detach, detach_help);
  run->footer(
      "Examples:\n  pghaul run legacy-to-new --until backup --dry-run\n"
      "  pghaul run legacy-to-new --until verify --mode standby\n\n"
      "Exit status: 0 when the phases ran succeeded, 1 when the migration failed or was "
      "aborted.");

  CLI::App* preflight = app.add_subcommand(
      "preflight",
      "Check that a physical copy from the source to the target is safe (versions, architecture, "
      "block and WAL sizes, collation, extensions, disk, repository, stanza); changes nothing");
  add_mig(preflight);
  preflight->add_flag("--dry-run", invocation.dry_run, dry_run_help);
  preflight->add_flag("--detach", invocation.detach, detach_help);
  preflight->footer(
      "Example:\n  pghaul preflight legacy-to-new && pghaul status legacy-to-new\n\n"
      "Exit status: 0 when no check failed (warnings allowed), 1 otherwise.");

  CLI::App* backup = app.add_subcommand(
      "backup", "Take the migration's backup of the source (after preflight and prepare-source)");
  add_mig(backup);
  backup
      ->add_option("--type", invocation.backup_type,
                   "full, diff or incr (default: the plan's backup.type)")
      ->check(OneOf(kBackupTypes), "")
      ->type_name(Joined(kBackupTypes));
  backup
      ->add_option("--at", invocation.at,
                   "Do not start before this local time of day (today if still ahead, else "
                   "tomorrow); the plan's window still applies")
      ->check(
          [](const std::string& text) -> std::string {
            absl::StatusOr<int> minutes = ParseTimeOfDay(text);
            return minutes.ok() ? "" : std::string(minutes.status().message());
          },
          "")
      ->type_name("HH:MM");
  backup->add_flag("--dry-run", invocation.dry_run, dry_run_help);
  backup->add_flag("--detach", invocation.detach, detach_help);
  backup->footer(
      "Examples:\n  pghaul backup legacy-to-new --type full --at 02:00 --detach\n"
      "  pghaul backup legacy-to-new --type incr");

  CLI::App* restore = app.add_subcommand(
      "restore",
      "Restore the migration's backup on the target, overwriting its data directory "
      "(only if the plan's target.allow_overwrite says so)");
  add_mig(restore);
  restore
      ->add_option("--mode", invocation.restore_mode,
                   "rehearsal (a promoted copy, default) or standby (follows the archive; "
                   "cutover needs it)")
      ->check(OneOf(kRestoreModes), "")
      ->type_name(Joined(kRestoreModes));
  restore
      ->add_option("--set", invocation.set,
                   "The backup to restore (a pgBackRest label); default: the migration's latest")
      ->check(
          [](const std::string& label) -> std::string {
            absl::Status valid = ValidateBackupLabel(label);
            return valid.ok() ? "" : std::string(valid.message());
          },
          "")
      ->type_name("LABEL");
  restore->add_flag("--dry-run", invocation.dry_run, dry_run_help);
  restore->add_flag("--detach", invocation.detach, detach_help);
  restore->footer(
      "Examples:\n  pghaul restore legacy-to-new --mode rehearsal\n"
      "  pghaul restore legacy-to-new --mode standby --set 20231114-221320F");

  CLI::App* verify = app.add_subcommand(
      "verify",
      "Compare source and target: row counts and a checksum per table, and the plan's "
      "application checks; a mismatch fails the phase and names the tables");
  add_mig(verify);
  verify->add_flag("--dry-run", invocation.dry_run, dry_run_help);
  verify->add_flag("--detach", invocation.detach, detach_help);
  verify->footer("Example:\n  pghaul verify legacy-to-new && pghaul status legacy-to-new");

  CLI::App* cutover = app.add_subcommand(
      "cutover",
      "Fence the source, let the standby target replay its last WAL, compare, and promote the "
      "target; the downtime is recorded");
  add_mig(cutover);
  cutover->add_flag("--dry-run", invocation.dry_run, dry_run_help);
  cutover->add_flag("--detach", invocation.detach, detach_help);
  cutover->add_option("--max-downtime", invocation.max_downtime,
                      "Downtime budget, from the fence to the promoted target (e.g. 30s, 1m30s), "
                      "instead of the plan's cutover.max_downtime: a step that overruns it before "
                      "promotion lifts the fence and fails");
  cutover->footer(
      "Example:\n  pghaul cutover legacy-to-new --dry-run\n"
      "  pghaul cutover legacy-to-new\n"
      "  pghaul cutover legacy-to-new --max-downtime 10s");

  CLI::App* abort_command = app.add_subcommand(
      "abort",
      "Stop what the migration runs and put the source back as it was (archiving settings, "
      "fence); the target is stopped. Not possible once cutover promoted the target");
  add_mig(abort_command);
  abort_command->add_flag("--detach", invocation.detach, detach_help);
  abort_command->footer(
      "Example:\n  pghaul abort legacy-to-new\n\n"
      "Exit status: 0 when the migration ended aborted.");

  CLI::App* whoami = app.add_subcommand(
      "whoami", "Show who the controller takes you for (certificate or token) and your role");
  whoami->footer(
      "Roles: read-only lists and watches; operator also applies plans and runs preflight, "
      "backup, restore and verify; admin also cuts over, aborts and submits raw tasks "
      "(docs/security.md).");

  // Commands kept in files of their own add themselves here, one line each (a PluggedCommand: the
  // subcommand, and the function that runs it once it was parsed).
  std::vector<PluggedCommand> plugged;
  plugged.push_back(AddDemoCommand(app));
  plugged.push_back(AddCertsCommand(app));
  plugged.push_back(AddTokenCommand(app));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive as "errors" with exit code 0.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) {
      return app.exit(e, out, err);
    }
    err << "pghaul: " << e.what() << "\n" << kHelpHint << "\n";
    return kExitUsage;
  }

  if (app.get_subcommands().empty()) {
    err << "pghaul: a command is required, e.g. 'pghaul agents'\n" << kHelpHint << "\n";
    return kExitUsage;
  }
  if (task->parsed() && task->get_subcommands().empty()) {
    err << "pghaul: task needs a subcommand: list, show, cancel or submit\n"
        << "Run 'pghaul task --help'.\n";
    return kExitUsage;
  }
  if (plan->parsed() && plan->get_subcommands().empty()) {
    err << "pghaul: plan needs a subcommand: apply\n"
        << "Run 'pghaul plan --help'.\n";
    return kExitUsage;
  }
  for (const PluggedCommand& command : plugged) {
    if (!command.first->parsed()) continue;
    try {
      return command.second(out, err);
    } catch (const std::exception& e) {
      return ReportError(absl::InternalError(absl::StrCat("unexpected error: ", e.what())), err);
    }
  }
  if (task_submit->parsed() && file_option->count() == 0 && json_option->count() == 0) {
    err << "pghaul: task submit needs the task: --file FILE or --json TEXT\n"
        << "Run 'pghaul task submit --help'.\n";
    return kExitUsage;
  }

  // The checks above already accepted both values, so these cannot fail.
  absl::StatusOr<OutputFormat> format = ParseOutputFormat(invocation.output);
  absl::StatusOr<absl::Duration> timeout = ParseTimeout(invocation.timeout);
  if (!format.ok()) return ReportError(format.status(), err);
  if (!timeout.ok()) return ReportError(timeout.status(), err);
  // For --wait, --timeout bounds the whole wait, and each call keeps the usual deadline.
  bool waiting = task_submit->parsed() && invocation.wait;
  absl::Duration wait_timeout = timeout_option->count() > 0 ? *timeout : kDefaultWaitTimeout;
  absl::Duration call_timeout = waiting ? kDefaultCallTimeout : *timeout;
  const absl::Time now = context.clock->Now();

  absl::StatusOr<CommandOutput> result;
  auto printed = [](absl::StatusOr<std::string> text) -> absl::StatusOr<CommandOutput> {
    if (!text.ok()) return text.status();
    return CommandOutput::Success(*std::move(text));
  };
  // Following a migration (watch, phase commands) prints events as they arrive.
  FollowEnvironment follow;
  follow.clock = context.clock;
  follow.sleep = context.sleep;
  follow.zone = absl::LocalTimeZone();
  follow.out = &out;
  follow.err = &err;
  if (context.err_terminal_columns > 0) {
    follow.terminal = &err;
    follow.terminal_columns = context.err_terminal_columns;
  }
  if (std::string problem = TransportFlagsProblem(invocation); !problem.empty()) {
    err << "pghaul: " << problem << "\n" << kHelpHint << "\n";
    return kExitUsage;
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      ControllerCredentials(invocation);
  if (!credentials.ok()) return ReportError(credentials.status(), err);
  if (*credentials == nullptr && context.err_terminal_columns > 0) {
    // Only on a terminal: scripts and logs get results and errors only (cli/README.md).
    err << "pghaul: warning: --insecure: the link to the controller at " << invocation.controller
        << " is plaintext and unauthenticated\n";
  }
  absl::StatusOr<std::string> token = ResolveToken(invocation.token_file, std::getenv("PGHAUL_TOKEN"));
  if (!token.ok()) return ReportError(token.status(), err);
  try {
    ControllerClient client(invocation.controller, call_timeout, *credentials,
                            invocation.tls_server_name);
    client.set_token(*std::move(token));
    if (whoami->parsed()) {
      result = printed(RunWhoAmI(client, *format));
    } else if (show->parsed()) {
      std::optional<uint32_t> task_limit;
      if (invocation.agent_tasks) {
        task_limit = agent_limit_option->count() > 0 ? invocation.limit : kDefaultAgentTaskLimit;
      }
      result = printed(RunShowAgent(client, invocation.agent_id, *format, now, task_limit));
    } else if (agents->parsed()) {
      result = printed(RunListAgents(client, *format, now));
    } else if (task_list->parsed()) {
      uint32_t limit = task_limit_option->count() > 0 ? invocation.limit : kDefaultTaskListLimit;
      result = printed(RunListTasks(client, invocation.agent_id, limit, *format, now));
    } else if (task_show->parsed()) {
      result =
          printed(RunShowTask(client, invocation.task_id, invocation.recent_events, *format, now));
    } else if (task_cancel->parsed()) {
      result = printed(RunCancelTask(client, invocation.task_id, *format, now));
    } else if (task_submit->parsed()) {
      std::optional<std::string> file;
      std::optional<std::string> json;
      if (file_option->count() > 0) file = invocation.task_file;
      if (json_option->count() > 0) json = invocation.task_json;
      absl::StatusOr<v1::Task> loaded = LoadTask(file, json, context.in);
      if (!loaded.ok()) {
        result = loaded.status();
      } else {
        TaskSubmission submission;
        submission.agent_id = invocation.agent_id;
        submission.task = *std::move(loaded);
        submission.task_id = invocation.task_id;
        submission.wait = invocation.wait;
        submission.wait_timeout = wait_timeout;
        WaitEnvironment wait_environment;
        wait_environment.clock = context.clock;
        wait_environment.sleep =
            context.sleep ? context.sleep : [](absl::Duration d) { absl::SleepFor(d); };
        if (context.err_terminal_columns > 0) {
          wait_environment.status_line = &err;
          wait_environment.status_columns = context.err_terminal_columns;
        }
        result = RunSubmitTask(client, submission, *format, wait_environment);
      }
    } else if (plan_apply->parsed()) {
      PlanApplication application;
      application.path = invocation.plan_file;
      application.dry_run = invocation.dry_run;
      application.replace = invocation.replace;
      result = printed(RunApplyPlan(client, application, *format));
    } else if (migrations->parsed()) {
      result = printed(RunListMigrations(client, *format, now));
    } else if (status_command->parsed()) {
      result =
          printed(RunMigrationStatus(client, invocation.migration_id, *format, now, follow.zone));
    } else if (watch->parsed()) {
      result = RunWatch(client, invocation.migration_id, *format, follow);
    } else if (abort_command->parsed()) {
      result =
          RunAbortMigration(client, invocation.migration_id, invocation.detach, *format, follow);
    } else if (CLI::App* phase = ParsedOneOf({run, preflight, backup, restore, verify, cutover})) {
      PhaseCommand command;
      command.migration_id = invocation.migration_id;
      command.command = phase->get_name();
      command.until = invocation.until;
      command.backup_type = invocation.backup_type;
      command.restore_mode = invocation.restore_mode;
      command.set = invocation.set;
      command.dry_run = invocation.dry_run;
      command.detach = invocation.detach;
      command.max_downtime = invocation.max_downtime;
      if (!invocation.at.empty()) {
        absl::StatusOr<absl::Time> at = NextOccurrence(invocation.at, now, follow.zone);
        if (!at.ok()) return ReportError(at.status(), err);
        command.not_before = *at;
      }
      result = RunPhaseCommand(client, command, *format, follow);
    } else {
      result = absl::InternalError("no command ran; this is a bug in pghaul's command table");
    }
  } catch (const std::exception& e) {
    // Nothing here is meant to throw; std::bad_alloc and friends still must not escape main.
    result = absl::InternalError(absl::StrCat("unexpected error: ", e.what()));
  }
  if (!result.ok()) {
    // A rejected plan lists its problems one per line.
    bool plan_problems = plan_apply->parsed() && absl::IsInvalidArgument(result.status());
    return ReportError(result.status(), err, plan_problems);
  }
  out << result->out;
  out.flush();
  if (!out) return kExitSoftware;
  if (!result->error.empty()) err << "pghaul: " << Printable(result->error) << "\n";
  return result->exit_code;
}

}  // namespace pghaul::cli
