#include "cli/demo_runner.h"

#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/agent_table.h"
#include "cli/controller_client.h"
#include "cli/demo_data.h"
#include "cli/demo_process.h"
#include "cli/demo_setup.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace pghaul::cli {
namespace {

constexpr char kPostgresOsUser[] = "postgres";
constexpr absl::Duration kControllerStartTimeout = absl::Seconds(20);
constexpr absl::Duration kAgentsOnlineTimeout = absl::Seconds(30);
constexpr absl::Duration kDaemonStopGrace = absl::Seconds(10);
constexpr int kLogTailLines = 15;
constexpr int kExitStepFailed = 1;
constexpr int kExitBadDirectory = 64;

bool IsExecutable(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && access(path.c_str(), X_OK) == 0;
}

absl::StatusOr<std::string> SelfExecutable() {
  std::error_code error;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot read /proc/self/exe to find pghaul's own binary: ", error.message()));
  }
  return self.string();
}

std::string PostgresBinary(absl::string_view name) {
  return absl::StrCat(kDemoPostgresBinDir, "/", name);
}

// One line of a shell command for people to copy (the demo's paths need no quoting).
std::string CommandLine(const std::vector<std::string>& argv) { return absl::StrJoin(argv, " "); }

class DemoRunner {
 public:
  DemoRunner(DemoOptions options, std::ostream& out, std::ostream& err)
      : options_(std::move(options)), out_(out), err_(err) {}

  ~DemoRunner() = default;
  DemoRunner(const DemoRunner&) = delete;
  DemoRunner& operator=(const DemoRunner&) = delete;

  int Run();

 private:
  struct Step {
    std::string title;
    std::function<absl::Status()> body;
    // The logs whose end explains a failure of this step.
    std::function<std::vector<std::string>()> logs;
  };

  // The steps (see demo_runner.h).
  absl::Status CheckEnvironment();
  absl::Status CreateDirectory();
  absl::Status CreateClusters();
  absl::Status LoadSampleData();
  absl::Status StartController();
  absl::Status StartAgents();
  absl::Status ApplyPlan();
  absl::Status RunMigration();
  absl::Status Summarize();
  absl::Status CheckTarget();

  // Runs `step`; on failure prints which step failed, why, and the end of its logs.
  absl::Status RunStep(int number, int count, const Step& step);

  // A PostgreSQL tool or other short command, run as the database user; `log_path` also gets
  // its output. Errors: those of RunCapturedCommand.
  absl::StatusOr<CommandRun> RunAsDatabaseUser(std::vector<std::string> argv,
                                               const std::string& log_path = "");
  // The same, failing with the command's output unless it exits 0.
  absl::StatusOr<std::string> RunAsDatabaseUserOrFail(std::vector<std::string> argv,
                                                      absl::string_view what,
                                                      const std::string& log_path = "");
  // psql -XAt -c `sql` on `host`'s socket as role postgres; stdout without its last newline.
  absl::StatusOr<std::string> Query(const DemoHost& host, absl::string_view sql,
                                    absl::string_view database = "postgres");
  // `pghaul --insecure --controller ADDR args...` with our stdout and stderr; returns its exit
  // code.
  absl::StatusOr<int> RunPghaulForeground(const std::vector<std::string>& args);

  // A directory for the database user (owned by it when we are root).
  absl::Status MakeOwnedDirectory(const std::string& path, unsigned mode);
  absl::Status ChownToDatabaseUser(const std::string& path);

  // Whether the daemons get SIGKILL when the demo dies (crash, SIGKILL): not with --keep, and only
  // where setpriv can arrange it.
  bool DaemonsDieWithUs() const { return !options_.keep && IsExecutable(kSetprivBinary); }
  void Say(absl::string_view text);  // a line on `out_`, flushed
  void StopEverything();             // daemons, then clusters
  void RemoveFiles();
  void PrintKeepInstructions();

  DemoOptions options_;
  std::ostream& out_;
  std::ostream& err_;
  std::unique_ptr<DemoInterrupts> interrupts_;

  std::string run_as_;  // "postgres" when we are root, else "" (ourselves)
  uid_t database_uid_ = 0;
  gid_t database_gid_ = 0;
  DemoBinaries binaries_;
  std::string pgbackrest_;
  DemoLayout layout_;
  bool directory_created_ = false;         // we made layout_.dir, so cleanup removes it whole
  bool directory_claimed_ = false;         // layout_.dir is ours to fill (and to clean up)
  std::vector<const DemoHost*> clusters_;  // initdb ran for these
  pid_t controller_pid_ = -1;
  std::vector<std::pair<std::string, pid_t>> agent_pids_;
  std::string controller_address_;
  std::string legacy_fingerprint_;  // DemoFingerprintQuery on legacy before the migration
  bool migrated_ = false;           // `pghaul run demo` succeeded: legacy is fenced
};

void DemoRunner::Say(absl::string_view text) { out_ << text << "\n" << std::flush; }

int DemoRunner::Run() {
  absl::StatusOr<std::unique_ptr<DemoInterrupts>> interrupts = DemoInterrupts::Install();
  if (!interrupts.ok()) {
    err_ << "pghaul demo: " << interrupts.status().message() << "\n";
    return kExitStepFailed;
  }
  interrupts_ = *std::move(interrupts);

  absl::Time started = absl::Now();
  std::vector<Step> steps = {
      {"check the environment", [this] { return CheckEnvironment(); },
       [] { return std::vector<std::string>{}; }},
      {"create the demo directory", [this] { return CreateDirectory(); },
       [] { return std::vector<std::string>{}; }},
      {"create the legacy and target PostgreSQL 15 clusters", [this] { return CreateClusters(); },
       [this] {
         return std::vector<std::string>{
             layout_.legacy.dir + "/initdb.log", layout_.legacy.postgres_log,
             layout_.target.dir + "/initdb.log", layout_.target.postgres_log};
       }},
      {absl::StrCat("load the sample data (pgbench scale ", options_.scale,
                    " and a varied schema)"),
       [this] { return LoadSampleData(); },
       [this] {
         return std::vector<std::string>{layout_.sample_log, layout_.legacy.postgres_log};
       }},
      {"start the controller", [this] { return StartController(); },
       [this] { return std::vector<std::string>{layout_.controller_log}; }},
      {"start the agents", [this] { return StartAgents(); },
       [this] {
         return std::vector<std::string>{layout_.legacy.agent_log, layout_.target.agent_log,
                                         layout_.controller_log};
       }},
      {"apply the plan", [this] { return ApplyPlan(); },
       [this] { return std::vector<std::string>{layout_.controller_log}; }},
      {"run the migration", [this] { return RunMigration(); },
       [this] {
         return std::vector<std::string>{layout_.controller_log, layout_.legacy.agent_log,
                                         layout_.target.agent_log, layout_.legacy.postgres_log,
                                         layout_.target.postgres_log};
       }},
      {"summary", [this] { return Summarize(); },
       [this] { return std::vector<std::string>{layout_.controller_log}; }},
      {"check the target", [this] { return CheckTarget(); },
       [this] { return std::vector<std::string>{layout_.target.postgres_log}; }},
  };

  absl::Status status;
  for (size_t i = 0; i < steps.size() && status.ok(); ++i) {
    status = RunStep(static_cast<int>(i + 1), static_cast<int>(steps.size()), steps[i]);
  }

  int exit_code = 0;
  if (interrupts_->interrupted()) {
    exit_code = 128 + interrupts_->signal_number();
    err_ << "pghaul demo: interrupted (signal " << interrupts_->signal_number()
         << "): stopping everything the demo started\n";
  } else if (!status.ok()) {
    exit_code = absl::IsInvalidArgument(status) && !directory_claimed_ ? kExitBadDirectory
                                                                       : kExitStepFailed;
  } else {
    Say(absl::StrCat("\nThe demo migrated the legacy cluster to the target in ",
                     FormatDemoDuration(absl::Now() - started), " (setup included)."));
  }

  if (options_.keep && exit_code != 0 && !interrupts_->interrupted() && directory_claimed_) {
    Say("\n--keep: everything is left as it was when the step failed, to look into.");
    PrintKeepInstructions();
  } else if (options_.keep && exit_code == 0) {
    PrintKeepInstructions();
  } else {
    if (directory_claimed_) Say("\n== cleaning up");
    StopEverything();
    RemoveFiles();
  }
  return exit_code;
}

absl::Status DemoRunner::RunStep(int number, int count, const Step& step) {
  Say(absl::StrCat("\n== [", number, "/", count, "] ", step.title));
  absl::Time started = absl::Now();
  absl::Status status = step.body();
  if (status.ok() && interrupts_->interrupted()) status = absl::CancelledError("interrupted");
  if (status.ok()) {
    Say(absl::StrCat("   (", FormatDemoDuration(absl::Now() - started), ")"));
    return status;
  }
  if (interrupts_->interrupted()) return status;
  err_ << "\npghaul demo: step " << number << " (" << step.title << ") failed: " << status.message()
       << "\n";
  for (const std::string& log : step.logs()) {
    std::string tail = TailOfFile(log, kLogTailLines);
    if (tail.empty()) continue;
    err_ << "--- the end of " << log << " ---\n" << tail;
  }
  err_ << std::flush;
  return status;
}

absl::Status DemoRunner::CheckEnvironment() {
  PGH_ASSIGN_OR_RETURN(std::string self, SelfExecutable());
  PGH_ASSIGN_OR_RETURN(binaries_, FindDemoBinaries(self, IsExecutable));
  for (const char* tool : {"initdb", "pg_ctl", "psql", "pgbench"}) {
    if (!IsExecutable(PostgresBinary(tool))) {
      return absl::NotFoundError(
          absl::StrCat(PostgresBinary(tool),
                       " is missing: install PostgreSQL 15 (apt-get install "
                       "postgresql-15 postgresql-client-15, or run scripts/install-deps.sh)"));
    }
  }
  const char* path = getenv("PATH");
  absl::StatusOr<std::string> pgbackrest =
      FindInPath("pgbackrest", path == nullptr ? "" : path, IsExecutable);
  if (!pgbackrest.ok()) {
    if (!IsExecutable(kDemoDefaultPgBackRest)) {
      return absl::NotFoundError(absl::StrCat(pgbackrest.status().message(), " nor at ",
                                              kDemoDefaultPgBackRest,
                                              ": install it (apt-get install pgbackrest)"));
    }
    pgbackrest = std::string(kDemoDefaultPgBackRest);
  }
  pgbackrest_ = *pgbackrest;

  if (geteuid() == 0) {
    struct passwd* user = getpwnam(kPostgresOsUser);
    if (user == nullptr) {
      return absl::NotFoundError(
          "running as root, the demo runs PostgreSQL as the postgres OS user, which does not "
          "exist: install postgresql-15 (it creates the user), or run the demo as an ordinary "
          "user");
    }
    if (!IsExecutable(kSetprivBinary)) {
      return absl::NotFoundError(absl::StrCat(kSetprivBinary, " is missing (util-linux)"));
    }
    run_as_ = kPostgresOsUser;
    database_uid_ = user->pw_uid;
    database_gid_ = user->pw_gid;
  } else {
    database_uid_ = geteuid();
    database_gid_ = getegid();
  }
  Say(absl::StrCat("   pghaul-controller: ", binaries_.controller));
  Say(absl::StrCat("   pghaul-agent:      ", binaries_.agent));
  Say(absl::StrCat("   pgbackrest:        ", pgbackrest_));
  Say(absl::StrCat("   PostgreSQL:        ", kDemoPostgresBinDir));
  Say(absl::StrCat("   runs as:           ",
                   run_as_.empty() ? "this user" : "postgres (PostgreSQL, pgBackRest, agents)"));
  return absl::OkStatus();
}

absl::Status DemoRunner::ChownToDatabaseUser(const std::string& path) {
  if (run_as_.empty()) return absl::OkStatus();
  if (chown(path.c_str(), database_uid_, database_gid_) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot give ", path, " to the postgres user: ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status DemoRunner::MakeOwnedDirectory(const std::string& path, unsigned mode) {
  PGH_RETURN_IF_ERROR(MakeDirectories(path, mode));
  if (chmod(path.c_str(), mode) != 0) {
    return absl::InternalError(absl::StrCat("cannot chmod ", path, ": ", strerror(errno)));
  }
  return ChownToDatabaseUser(path);
}

absl::Status DemoRunner::CreateDirectory() {
  std::string dir;
  if (options_.dir.empty()) {
    char pattern[] = "/tmp/pghaul-demo-XXXXXX";
    if (mkdtemp(pattern) == nullptr) {
      return absl::InternalError(
          absl::StrCat("cannot create a directory in /tmp: ", strerror(errno)));
    }
    dir = pattern;
    directory_created_ = true;
  } else {
    std::error_code error;
    std::filesystem::path cwd = std::filesystem::current_path(error);
    PGH_ASSIGN_OR_RETURN(dir, NormalizeDemoDirectory(options_.dir, error ? "/" : cwd.string()));
    if (std::filesystem::exists(dir, error)) {
      if (!std::filesystem::is_directory(dir, error)) {
        return absl::InvalidArgumentError(absl::StrCat("--dir ", dir, " is not a directory"));
      }
      if (!std::filesystem::is_empty(dir, error)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--dir ", dir,
                         " is not empty: the demo removes what it creates there, so it "
                         "needs a new or empty directory"));
      }
    } else {
      PGH_RETURN_IF_ERROR(MakeDirectories(dir, 0755));
      directory_created_ = true;
    }
  }
  layout_ = MakeDemoLayout(dir);
  directory_claimed_ = true;
  // The postgres user must get through it; nothing secret lives here.
  if (!run_as_.empty() && chmod(dir.c_str(), 0755) != 0) {
    return absl::InternalError(absl::StrCat("cannot chmod ", dir, ": ", strerror(errno)));
  }
  for (const DemoHost* host : {&layout_.legacy, &layout_.target}) {
    PGH_RETURN_IF_ERROR(MakeOwnedDirectory(host->dir, 0750));
    PGH_RETURN_IF_ERROR(MakeOwnedDirectory(host->socket_dir, 0750));
    PGH_RETURN_IF_ERROR(MakeOwnedDirectory(host->agent_state_dir, 0700));
  }
  PGH_RETURN_IF_ERROR(MakeOwnedDirectory(layout_.repository, 0750));
  PGH_RETURN_IF_ERROR(MakeDirectories(layout_.controller_state_dir, 0750));

  if (!run_as_.empty()) {
    // Everything the postgres user will need, tried as that user, so that a checkout under
    // /root (mode 0700) is reported here and not as an agent that dies at start.
    for (const std::string& program : {binaries_.agent, pgbackrest_}) {
      PGH_RETURN_IF_ERROR(
          RunAsDatabaseUserOrFail({program, program == pgbackrest_ ? "version" : "--version"},
                                  absl::StrCat("the postgres user running ", program))
              .status());
    }
    PGH_RETURN_IF_ERROR(
        RunAsDatabaseUserOrFail({"/usr/bin/test", "-w", layout_.legacy.dir},
                                absl::StrCat("the postgres user writing in ", layout_.legacy.dir,
                                             " (every parent directory must let it through)"))
            .status());
  }
  Say(absl::StrCat("   ", layout_.dir));
  return absl::OkStatus();
}

absl::StatusOr<CommandRun> DemoRunner::RunAsDatabaseUser(std::vector<std::string> argv,
                                                         const std::string& log_path) {
  SubprocessSpec spec;
  spec.argv = WrapForUser(argv, run_as_, /*die_with_parent=*/false);
  PGH_ASSIGN_OR_RETURN(spec.env, DemoEnvironment(run_as_));
  spec.working_directory = "/";  // the postgres user may not enter our working directory
  return RunCapturedCommand(spec, *interrupts_, log_path);
}

absl::StatusOr<std::string> DemoRunner::RunAsDatabaseUserOrFail(std::vector<std::string> argv,
                                                                absl::string_view what,
                                                                const std::string& log_path) {
  std::string command = CommandLine(argv);
  PGH_ASSIGN_OR_RETURN(CommandRun run, RunAsDatabaseUser(std::move(argv), log_path));
  if (!run.result.Succeeded()) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " failed: `", command, "` ", run.Describe()));
  }
  return run.stdout_text;
}

absl::StatusOr<std::string> DemoRunner::Query(const DemoHost& host, absl::string_view sql,
                                              absl::string_view database) {
  PGH_ASSIGN_OR_RETURN(std::string output,
                       RunAsDatabaseUserOrFail(
                           {PostgresBinary("psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                            "-h", host.socket_dir, "-p", absl::StrCat(host.port), "-U", "postgres",
                            "-d", std::string(database), "-c", std::string(sql)},
                           absl::StrCat("a query on ", host.agent_id)));
  return std::string(absl::StripTrailingAsciiWhitespace(output));
}

absl::Status DemoRunner::CreateClusters() {
  for (const DemoHost* host : {&layout_.legacy, &layout_.target}) {
    clusters_.push_back(host);
    std::string initdb_log = host->dir + "/initdb.log";
    PGH_RETURN_IF_ERROR(RunAsDatabaseUserOrFail(
                            {PostgresBinary("initdb"), "-D", host->data_dir, "-U", "postgres",
                             "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"},
                            absl::StrCat("initdb of ", host->agent_id), initdb_log)
                            .status());
    std::string conf = host->data_dir + "/postgresql.conf";
    std::ofstream file(conf, std::ios::app);
    file << "\n# pghaul demo\n" << absl::StrJoin(DemoPostgresSettings(*host), "\n") << "\n";
    file.close();
    if (!file) return absl::InternalError(absl::StrCat("cannot append to ", conf));
    PGH_RETURN_IF_ERROR(
        RunAsDatabaseUserOrFail({PostgresBinary("pg_ctl"), "-D", host->data_dir, "-l",
                                 host->postgres_log, "-w", "-t", "60", "start"},
                                absl::StrCat("starting ", host->agent_id))
            .status());
    Say(absl::StrCat("   ", host->agent_id, ": ", host->data_dir, ", socket ", host->socket_dir,
                     "/.s.PGSQL.", host->port));
  }
  return absl::OkStatus();
}

absl::Status DemoRunner::LoadSampleData() {
  const DemoHost& legacy = layout_.legacy;
  absl::Time started = absl::Now();
  PGH_RETURN_IF_ERROR(
      RunAsDatabaseUserOrFail(
          {PostgresBinary("pgbench"), "-i", "-q", "-s", absl::StrCat(options_.scale), "-h",
           legacy.socket_dir, "-p", absl::StrCat(legacy.port), "-U", "postgres", "postgres"},
          "pgbench -i", layout_.sample_log)
          .status());
  Say(absl::StrCat("   pgbench -i -s ", options_.scale, ": ", options_.scale * 100000,
                   " accounts (", FormatDemoDuration(absl::Now() - started), ")"));

  PGH_RETURN_IF_ERROR(WriteFileAtomically(layout_.sample_sql, DemoSampleSql(), 0644));
  PGH_RETURN_IF_ERROR(
      RunAsDatabaseUserOrFail({PostgresBinary("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h",
                               legacy.socket_dir, "-p", absl::StrCat(legacy.port), "-U", "postgres",
                               "-d", "postgres", "-f", layout_.sample_sql},
                              "loading the sample schema", layout_.sample_log)
          .status());
  Say(
      absl::StrCat("   schema shop (numeric, jsonb, arrays, bytea, a large object, a partitioned "
                   "table, a materialized view, sequences, an unlogged table) and database ",
                   kDemoSecondDatabase, ": ", layout_.sample_sql));

  PGH_ASSIGN_OR_RETURN(legacy_fingerprint_, Query(legacy, DemoFingerprintQuery()));
  PGH_ASSIGN_OR_RETURN(std::string size,
                       Query(legacy, "SELECT sum(pg_database_size(datname)) FROM pg_database"));
  uint64_t bytes = 0;
  if (absl::SimpleAtoi(size, &bytes)) {
    Say(absl::StrCat("   legacy now holds ", HumanBytes(bytes), " in its databases"));
  }
  return absl::OkStatus();
}

absl::Status DemoRunner::StartController() {
  PGH_RETURN_IF_ERROR(
      WriteFileAtomically(layout_.controller_config, DemoControllerConfig(layout_), 0644));
  PGH_ASSIGN_OR_RETURN(std::vector<std::string> env, DemoEnvironment(""));
  PGH_ASSIGN_OR_RETURN(
      controller_pid_,
      SpawnDaemon(WrapForUser({binaries_.controller, "--config", layout_.controller_config}, "",
                              DaemonsDieWithUs()),
                  env, layout_.controller_log));
  std::string address_file = layout_.controller_state_dir + "/listen-address";
  absl::Time deadline = absl::Now() + kControllerStartTimeout;
  while (true) {
    absl::StatusOr<std::string> address = ReadFile(address_file);
    if (address.ok() && !absl::StripAsciiWhitespace(*address).empty()) {
      controller_address_ = std::string(absl::StripAsciiWhitespace(*address));
      break;
    }
    int status = 0;
    if (ChildExited(controller_pid_, &status)) {
      controller_pid_ = -1;
      return absl::FailedPreconditionError(
          absl::StrCat("pghaul-controller exited (wait status ", status, ") before it listened"));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("pghaul-controller did not write ", address_file, " within ",
                       absl::FormatDuration(kControllerStartTimeout)));
    }
    if (!interrupts_->Sleep(absl::Milliseconds(100))) return absl::CancelledError("interrupted");
  }
  Say(absl::StrCat("   listening on ", controller_address_, " (pid ", controller_pid_, ", log ",
                   layout_.controller_log, ")"));
  return absl::OkStatus();
}

absl::Status DemoRunner::StartAgents() {
  PGH_ASSIGN_OR_RETURN(std::vector<std::string> env, DemoEnvironment(run_as_));
  for (const DemoHost* host : {&layout_.legacy, &layout_.target}) {
    PGH_RETURN_IF_ERROR(WriteFileAtomically(
        host->agent_config, DemoAgentConfig(layout_, *host, controller_address_, pgbackrest_),
        0644));
    PGH_RETURN_IF_ERROR(ChownToDatabaseUser(host->agent_config));
    PGH_ASSIGN_OR_RETURN(pid_t pid,
                         SpawnDaemon(WrapForUser({binaries_.agent, "--config", host->agent_config},
                                                 run_as_, DaemonsDieWithUs()),
                                     env, host->agent_log));
    agent_pids_.emplace_back(host->agent_id, pid);
    Say(absl::StrCat("   ", host->agent_id, ": pid ", pid, ", log ", host->agent_log));
  }

  ControllerClient client(controller_address_, absl::Seconds(5));
  absl::Time deadline = absl::Now() + kAgentsOnlineTimeout;
  std::string last_problem = "no answer from the controller yet";
  while (true) {
    for (auto& [agent_id, pid] : agent_pids_) {
      int status = 0;
      if (pid > 0 && ChildExited(pid, &status)) {
        pid = -1;
        return absl::FailedPreconditionError(
            absl::StrCat("pghaul-agent ", agent_id, " exited (wait status ", status, ")"));
      }
    }
    absl::StatusOr<v1::ListAgentsResponse> agents = client.ListAgents();
    if (agents.ok()) {
      std::vector<std::string> offline = {kDemoLegacyAgent, kDemoTargetAgent};
      for (const v1::AgentInfo& agent : agents->agents()) {
        if (agent.online()) std::erase(offline, agent.agent_id());
      }
      if (offline.empty()) break;
      last_problem = absl::StrCat("not online yet: ", absl::StrJoin(offline, ", "));
    } else {
      last_problem = std::string(agents.status().message());
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("the agents did not come online within ",
                                                      absl::FormatDuration(kAgentsOnlineTimeout),
                                                      " (", last_problem, ")"));
    }
    if (!interrupts_->Sleep(absl::Milliseconds(250))) return absl::CancelledError("interrupted");
  }
  Say("");
  Say(absl::StrCat("$ pghaul --insecure --controller ", controller_address_, " agents"));
  PGH_ASSIGN_OR_RETURN(int exit_code, RunPghaulForeground({"agents"}));
  if (exit_code != 0) {
    return absl::FailedPreconditionError(absl::StrCat("`pghaul agents` exited ", exit_code));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> DemoRunner::RunPghaulForeground(const std::vector<std::string>& args) {
  // The demo's controller listens on loopback in plaintext (insecure: true), so its CLI says so.
  std::vector<std::string> argv = {binaries_.pghaul, "--insecure", "--controller",
                                   controller_address_};
  argv.insert(argv.end(), args.begin(), args.end());
  out_.flush();
  err_.flush();
  PGH_ASSIGN_OR_RETURN(pid_t pid, SpawnForeground(argv, InheritedEnvironment()));
  return WaitForChild(pid, *interrupts_);
}

absl::Status DemoRunner::ApplyPlan() {
  PGH_RETURN_IF_ERROR(WriteFileAtomically(layout_.plan, DemoPlan(layout_), 0644));
  Say(absl::StrCat("$ pghaul --insecure --controller ", controller_address_, " plan apply ",
                   layout_.plan));
  PGH_ASSIGN_OR_RETURN(int exit_code, RunPghaulForeground({"plan", "apply", layout_.plan}));
  if (exit_code != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "`pghaul plan apply ", layout_.plan, "` exited ", exit_code, " (its message is above)"));
  }
  return absl::OkStatus();
}

absl::Status DemoRunner::RunMigration() {
  Say(absl::StrCat("$ pghaul --insecure --controller ", controller_address_, " run ",
                   kDemoMigrationId));
  PGH_ASSIGN_OR_RETURN(int exit_code, RunPghaulForeground({"run", kDemoMigrationId}));
  if (exit_code == 1) {
    return absl::FailedPreconditionError(absl::StrCat("the migration failed (`pghaul run ",
                                                      kDemoMigrationId,
                                                      "` exited 1; its message is above)"));
  }
  if (exit_code != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("`pghaul run ", kDemoMigrationId, "` exited ", exit_code));
  }
  migrated_ = true;
  return absl::OkStatus();
}

absl::Status DemoRunner::Summarize() {
  SubprocessSpec spec;
  spec.argv = {binaries_.pghaul, "--insecure", "--controller",  controller_address_, "-o",
               "json",           "status",     kDemoMigrationId};
  spec.env = InheritedEnvironment();
  PGH_ASSIGN_OR_RETURN(CommandRun run, RunCapturedCommand(spec, *interrupts_));
  if (!run.result.Succeeded()) {
    return absl::FailedPreconditionError(
        absl::StrCat("`pghaul -o json status ", kDemoMigrationId, "` ", run.Describe()));
  }
  PGH_ASSIGN_OR_RETURN(v1::MigrationInfo migration, ParseMigrationJson(run.stdout_text));
  out_ << FormatDemoSummary(migration) << std::flush;
  return absl::OkStatus();
}

absl::Status DemoRunner::CheckTarget() {
  const DemoHost& target = layout_.target;
  PGH_ASSIGN_OR_RETURN(std::string in_recovery, Query(target, "SELECT pg_is_in_recovery()"));
  if (in_recovery != "f") {
    return absl::FailedPreconditionError(
        "the target is still in recovery: the migration did not promote it");
  }
  // A write that leaves nothing behind: proves the target is a writable primary now.
  PGH_RETURN_IF_ERROR(
      Query(target,
            "CREATE TABLE pghaul_demo_write_check (id int); DROP TABLE pghaul_demo_write_check")
          .status());
  PGH_ASSIGN_OR_RETURN(std::string fingerprint, Query(target, DemoFingerprintQuery()));
  if (fingerprint != legacy_fingerprint_) {
    return absl::DataLossError(
        absl::StrCat("pgbench_accounts on the target (rows|balance sum ", fingerprint,
                     ") differs from legacy's before the migration (", legacy_fingerprint_, ")"));
  }
  std::vector<std::string> parts = absl::StrSplit(fingerprint, '|');
  Say(absl::StrCat("   target: promoted (not in recovery) and accepts writes"));
  Say(absl::StrCat("   pgbench_accounts: ", parts.empty() ? fingerprint : parts[0],
                   " rows and the same balance sum as legacy before the migration"));
  return absl::OkStatus();
}

void DemoRunner::StopEverything() {
  if (controller_pid_ > 0) {
    StopChild(controller_pid_, kDaemonStopGrace);
    controller_pid_ = -1;
  }
  for (auto& [agent_id, pid] : agent_pids_) {
    if (pid > 0) StopChild(pid, kDaemonStopGrace);
    pid = -1;
  }
  for (const DemoHost* host : clusters_) {
    std::string pid_file = host->data_dir + "/postmaster.pid";
    absl::StatusOr<std::string> contents = ReadFile(pid_file);
    if (!contents.ok()) continue;  // not running
    // Immediate: everything is deleted next, so a clean shutdown (which may wait on WAL
    // archiving) buys nothing. RunAndCapture, not RunCapturedCommand: a second Ctrl-C must not
    // cut the cleanup short.
    SubprocessSpec spec;
    spec.argv = WrapForUser({PostgresBinary("pg_ctl"), "-D", host->data_dir, "-m", "immediate",
                             "-w", "-t", "30", "stop"},
                            run_as_, false);
    absl::StatusOr<std::vector<std::string>> env = DemoEnvironment(run_as_);
    if (env.ok()) spec.env = *env;
    spec.working_directory = "/";
    spec.timeout = absl::Seconds(40);
    absl::StatusOr<CapturedOutput> stopped = RunAndCapture(spec);
    if (stopped.ok() && stopped->result.Succeeded()) continue;
    // pg_ctl could not stop it: end the postmaster by its PID (first line of postmaster.pid).
    pid_t postmaster = 0;
    std::vector<std::string> lines = absl::StrSplit(*contents, '\n');
    if (!lines.empty() && absl::SimpleAtoi(lines[0], &postmaster) && postmaster > 0) {
      kill(postmaster, SIGKILL);
    }
    err_ << "pghaul demo: pg_ctl could not stop " << host->agent_id
         << "; its postmaster got SIGKILL\n";
  }
  clusters_.clear();
}

void DemoRunner::RemoveFiles() {
  if (!directory_claimed_) return;
  std::vector<std::string> created = {layout_.dir};
  if (!directory_created_) {
    created = {layout_.legacy.dir, layout_.target.dir, layout_.repository, layout_.controller_dir,
               layout_.plan,       layout_.sample_sql, layout_.sample_log};
  }
  bool removed_all = true;
  for (const std::string& path : created) {
    std::error_code error;
    std::filesystem::remove_all(path, error);
    if (error) {
      // A process that was still ending may have written one last file: try once more.
      absl::SleepFor(absl::Milliseconds(500));
      error.clear();
      std::filesystem::remove_all(path, error);
    }
    if (error) {
      removed_all = false;
      err_ << "pghaul demo: cannot remove " << path << ": " << error.message() << "\n";
    }
  }
  if (removed_all) Say(absl::StrCat("   removed ", layout_.dir));
  directory_claimed_ = false;
}

void DemoRunner::PrintKeepInstructions() {
  std::string pg_ctl_prefix = run_as_.empty() ? "" : "runuser -u postgres -- ";
  Say("\n== left running (--keep)");
  for (const DemoHost* host : {&layout_.legacy, &layout_.target}) {
    Say(absl::StrCat("   ", host->agent_id, ": psql -h ", host->socket_dir, " -p ", host->port,
                     " -U postgres postgres   (data ", host->data_dir, ", log ", host->postgres_log,
                     ")"));
  }
  if (migrated_) {
    Say("   (legacy is fenced since the cutover: it refuses new connections; the target is the "
        "primary now)");
  }
  if (!controller_address_.empty()) {
    Say(absl::StrCat("   controller: pghaul --insecure --controller ", controller_address_,
                     " status ", kDemoMigrationId,
                     "   (or export PGHAUL_CONTROLLER=", controller_address_, ")"));
  }
  std::vector<std::string> pids;
  if (controller_pid_ > 0) pids.push_back(absl::StrCat(controller_pid_));
  for (const auto& [agent_id, pid] : agent_pids_) {
    if (pid > 0) pids.push_back(absl::StrCat(pid));
  }
  Say("   to stop everything and remove it:");
  if (!pids.empty()) {
    Say(absl::StrCat("     kill ", absl::StrJoin(pids, " "), "   # the controller and the agents"));
  }
  for (const DemoHost* host : clusters_) {
    Say(absl::StrCat("     ", pg_ctl_prefix, PostgresBinary("pg_ctl"), " -D ", host->data_dir,
                     " -m fast stop"));
  }
  Say(absl::StrCat("     rm -rf ", layout_.dir));
}

}  // namespace

int RunDemo(const DemoOptions& options, std::ostream& out, std::ostream& err) {
  DemoRunner runner(options, out, err);
  return runner.Run();
}

}  // namespace pghaul::cli
