#include "cli/app.h"

#include <cmath>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli/agent_table.h"
#include "cli/commands_agents.h"
#include "cli/commands_tasks.h"
#include "cli/controller_client.h"
#include "cli/exit_codes.h"
#include "cli/json_output.h"
#include "cli/task_input.h"
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
};

int ReportError(const absl::Status& status, std::ostream& err) {
  err << "pghaul: " << Printable(status.message()) << "\n";
  return ExitCodeForStatus(status);
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
      "Exit status: 0 success, 1 a task failed (task submit --wait), 64 bad usage, 65 unknown id "
      "or rejected input, 69 controller unreachable or too slow, 70 internal error (75, 76, 77: "
      "see docs/cli.md).");
  app.add_option("--controller", invocation.controller,
                 "Address (host:port) of the controller's gRPC port")
      ->envname("PGHAUL_CONTROLLER")
      ->type_name("ADDR")
      ->capture_default_str();
  app.add_option("-o,--output", invocation.output, "Output format: table (for people) or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->type_name("FORMAT")
      ->capture_default_str();
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
  try {
    ControllerClient client(invocation.controller, call_timeout);
    if (show->parsed()) {
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
    } else {
      result = absl::InternalError("no command ran; this is a bug in pghaul's command table");
    }
  } catch (const std::exception& e) {
    // Nothing here is meant to throw; std::bad_alloc and friends still must not escape main.
    result = absl::InternalError(absl::StrCat("unexpected error: ", e.what()));
  }
  if (!result.ok()) return ReportError(result.status(), err);
  out << result->out;
  out.flush();
  if (!out) return kExitSoftware;
  if (!result->error.empty()) err << "pghaul: " << Printable(result->error) << "\n";
  return result->exit_code;
}

}  // namespace pghaul::cli
