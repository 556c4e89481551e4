// The agent's typed tasks end to end, submitted through the real `pghaul` CLI: pgBackRest
// configuration, stanza-create, check, backup (progress, cancel, a controller killed mid-way),
// info, restore into a second host, service control, secrets, and a refused task.
//
//   controller 198.18.0.10:7400    legacy 198.18.0.11 (PG 15, archive_mode on, archive_command
//                                                      through legacy's agent-written config)
//                                  target 198.18.0.12 (PG 15, restored from legacy's backup)
//
// Both agents run as postgres, like PostgreSQL, and share one posix repository in a directory
// listed in both agents' `roots`. PostgreSQL's archive_command uses the config file the agent
// writes, <state_dir>/pgbackrest/<migration>/pgbackrest.conf, and its include path conf.d (where
// the repository secrets are), as ENABLE_ARCHIVING sets it, so archive-push and the agent's
// commands see the same repository, secrets, lock and log paths.
#include <dirent.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fixture/command.h"
#include "tests/integration/fixture/json_paths.h"
#include "tests/integration/fixture/network_namespaces.h"
#include "tests/integration/fixture/pg_cluster.h"
#include "tests/integration/fixture/pghaul_processes.h"
#include "tests/integration/fixture/temp_dir.h"
#include "tests/integration/fixture/test_support.h"
#include "tests/integration/fixture/wait_for.h"

namespace pghaul::integration {
namespace {

using nlohmann::json;

constexpr int kControllerPort = 7400;
constexpr char kMigration[] = "m1";
constexpr char kStanza[] = "main";
// CLI exit codes of `task submit --wait` (docs/cli.md).
constexpr int kExitTaskNotSucceeded = 1;

bool IsFinal(absl::string_view state) {
  return state == "succeeded" || state == "failed" || state == "cancelled" || state == "refused";
}

// The JSON text of a task, for --json or a --file.
std::string TaskJson(const json& task) { return task.dump(); }

// "pgbackrest backup", "configure_pgbackrest", "service STOP": what a task does, for messages.
std::string Operation(const json& task) {
  if (!task.is_object() || task.empty()) return "?";
  const std::string op = task.begin().key();
  if (op == "pgbackrest") {
    for (const auto& [key, value] : task.begin().value().items()) {
      if (key != "migration_id") return absl::StrCat(op, " ", key);
    }
  }
  if (op == "service") return absl::StrCat(op, " ", Str(task, "service.action"));
  return op;
}

json PgBackRest(const json& command) {
  json task = {{"pgbackrest", {{"migration_id", kMigration}}}};
  task["pgbackrest"].update(command);
  return task;
}

json Service(absl::string_view action) {
  return {{"service", {{"action", std::string(action)}, {"wait_seconds", 60}}}};
}

// One process, from /proc.
struct ProcessInfo {
  pid_t pid = 0;
  pid_t ppid = 0;
  pid_t pgid = 0;
  char state = '?';
  std::string raw_cmdline;  // the arguments, each ended by NUL
  std::vector<std::string> argv;

  std::string CommandLine() const { return absl::StrJoin(argv, " "); }
  bool HasArgument(absl::string_view argument) const {
    return std::find(argv.begin(), argv.end(), argument) != argv.end();
  }
  bool IsPgBackRest() const {
    return !argv.empty() && std::filesystem::path(argv[0]).filename() == "pgbackrest";
  }
};

// Every process visible now; ones that vanish while being read are skipped.
std::vector<ProcessInfo> ListProcesses() {
  std::vector<ProcessInfo> processes;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return processes;
  while (dirent* entry = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    std::ifstream stat_file(absl::StrCat("/proc/", pid, "/stat"));
    std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 1));
    ProcessInfo info;
    info.pid = pid;
    if (!(rest >> info.state >> info.ppid >> info.pgid)) continue;
    std::ifstream cmdline_file(absl::StrCat("/proc/", pid, "/cmdline"));
    info.raw_cmdline.assign(std::istreambuf_iterator<char>(cmdline_file),
                            std::istreambuf_iterator<char>());
    info.argv = absl::StrSplit(info.raw_cmdline, '\0', absl::SkipEmpty());
    processes.push_back(std::move(info));
  }
  closedir(proc);
  return processes;
}

// Whether `pid`'s chain of parents in `processes` reaches `ancestor`.
bool DescendsFrom(const std::vector<ProcessInfo>& processes, pid_t pid, pid_t ancestor) {
  std::map<pid_t, pid_t> parent;
  for (const ProcessInfo& p : processes) parent[p.pid] = p.ppid;
  for (int depth = 0; depth < 64 && pid > 1; ++depth) {
    auto it = parent.find(pid);
    if (it == parent.end()) return false;
    pid = it->second;
    if (pid == ancestor) return true;
  }
  return false;
}

class AgentTasksTest : public ::testing::Test {
 protected:
  struct Host {
    std::unique_ptr<PgCluster> cluster;
    std::unique_ptr<PghaulAgent> agent;  // declared last: destroyed before its cluster
  };

  // What `task submit` did.
  struct Submitted {
    int exit_code = -1;
    json task;  // the TaskInfo it printed (null when it printed none)
    std::string stderr_text;
  };

  void SetUp() override {
    RequireRoot();
    if (HasFatalFailure()) return;
    PGH_ASSERT_OK_AND_ASSIGN(dir_, TempDir::Create("pghaul-tasks-"));
    // The repository lives under a root both agents list; postgres owns it (the agents and
    // PostgreSQL's archive-push run as postgres).
    PGH_ASSERT_OK_AND_ASSIGN(backups_root_, dir_->MakeSubdir("backups", kPostgresOsUser, 0750));
    PGH_ASSERT_OK_AND_ASSIGN(repo_path_, dir_->MakeSubdir("backups/repo", kPostgresOsUser, 0750));
    PGH_ASSERT_OK_AND_ASSIGN(task_files_, dir_->MakeSubdir("task-files", "", 0700));
    PGH_ASSERT_OK_AND_ASSIGN(network_, NetworkNamespaces::Create());
    PGH_ASSERT_OK(network_->AddHost("controller", 10));
    ControllerOptions options;
    options.listen = absl::StrCat(network_->Address("controller"), ":", kControllerPort);
    options.netns = network_->Namespace("controller");
    PGH_ASSERT_OK_AND_ASSIGN(controller_,
                             PghaulController::Create(dir_->path() + "/controller", options));
    PGH_ASSERT_OK(controller_->Start());
    cli_ = std::make_unique<PghaulCli>(controller_->address(), network_->Namespace("controller"));
  }

  void TearDown() override {
    if (!HasFailure()) return;
    std::vector<std::string> logs;
    if (controller_ != nullptr) logs.push_back(controller_->log_path());
    for (const auto& [name, host] : hosts_) {
      if (host.agent != nullptr) {
        logs.push_back(host.agent->log_path());
        logs.push_back(absl::StrCat(host.agent->state_dir(), "/pgbackrest/", kMigration, "/log/",
                                    kStanza, "-backup.log"));
      }
      if (host.cluster != nullptr) logs.push_back(host.cluster->log_path());
    }
    PrintLogTails(logs);
  }

  std::string AgentDir(absl::string_view name) const {
    return absl::StrCat(dir_->path(), "/agent-", name);
  }
  // The config the agent writes for kMigration (AgentDir + the fixture's "/state").
  std::string AgentPgBackRestConfig(absl::string_view name) const {
    return absl::StrCat(AgentDir(name), "/state/pgbackrest/", kMigration, "/pgbackrest.conf");
  }
  // Its include path, holding secrets.conf when the migration has secrets.
  std::string AgentPgBackRestIncludePath(absl::string_view name) const {
    return absl::StrCat(AgentDir(name), "/state/pgbackrest/", kMigration, "/conf.d");
  }

  // A host namespace with a running PostgreSQL 15 cluster and its agent, online. A source
  // archives its WAL with pgBackRest through the config its agent writes for kMigration.
  absl::StatusOr<Host*> AddHost(const std::string& name, int octet, bool archives) {
    auto netns = network_->AddHost(name, octet);
    if (!netns.ok()) return netns.status();
    Host& host = hosts_[name];
    PgClusterOptions pg;
    pg.name = name;
    pg.netns = *netns;
    pg.listen_address = network_->Address(name);
    if (archives) {
      pg.conf_lines = {
          "archive_mode = on",
          absl::StrCat(
              "archive_command = '/usr/bin/pgbackrest --config=", AgentPgBackRestConfig(name),
              " --config-include-path=", AgentPgBackRestIncludePath(name), " --stanza=", kStanza,
              " archive-push %p'"),
      };
    }
    auto cluster = PgCluster::Create(dir_->path(), pg);
    if (!cluster.ok()) return cluster.status();
    host.cluster = *std::move(cluster);
    if (absl::Status s = host.cluster->Start(); !s.ok()) return s;
    AgentOptions options = AgentOptions::ForCluster(
        name, absl::StrCat(network_->Address("controller"), ":", kControllerPort), *host.cluster);
    options.roots = {backups_root_};
    options.reconnect_initial = absl::Milliseconds(200);
    options.reconnect_max = absl::Seconds(2);
    auto agent = PghaulAgent::Create(AgentDir(name), options);
    if (!agent.ok()) return agent.status();
    host.agent = *std::move(agent);
    if (absl::Status s = host.agent->Start(); !s.ok()) return s;
    absl::Status online = WaitFor(absl::StrCat(name, " to be online"), absl::Seconds(15), [&]() {
      auto entry = cli_->FindAgent(name);
      if (!entry.ok()) return entry.status();
      if (At(*entry, "online") != true) return absl::UnavailableError(entry->dump());
      return absl::OkStatus();
    });
    if (!online.ok()) return online;
    return &host;
  }

  // pgbench -i -s `scale` into the cluster's postgres database.
  absl::Status LoadPgbench(const PgCluster& cluster, int scale) {
    CommandOptions options;
    options.launch.run_as = kPostgresOsUser;
    options.timeout = absl::Seconds(180);
    const absl::Time start = absl::Now();
    auto output = RunChecked(
        {absl::StrCat(kPostgresBinDir, "/pgbench"), "-i", "-q", "-s", absl::StrCat(scale), "-h",
         cluster.socket_dir(), "-p", absl::StrCat(cluster.port()), "-U", "postgres", "postgres"},
        options);
    std::cout << "pgbench -i -s " << scale << " took " << absl::Now() - start << "\n";
    return output.status();
  }

  // `task submit AGENT --file F [--id ID] [--wait] -o json`; the task goes through a file (the
  // way tasks with secrets must), which is removed again right after.
  absl::StatusOr<Submitted> Submit(absl::string_view agent, const json& task,
                                   absl::string_view id = "", bool wait = true,
                                   absl::Duration timeout = absl::Seconds(60)) {
    const std::string path = absl::StrCat(task_files_, "/task-", ++task_files_written_, ".json");
    if (absl::Status s = WriteFile(path, TaskJson(task)); !s.ok()) return s;
    std::vector<std::string> args = {"task", "submit", std::string(agent), "--file", path,
                                     "-o",   "json"};
    if (!id.empty()) args.insert(args.end(), {"--id", std::string(id)});
    if (wait) args.push_back("--wait");
    auto result = cli_->Run(args, timeout + absl::Seconds(10));
    std::filesystem::remove(path);
    if (!result.ok()) return result.status();
    cli_outputs_ += result->stdout_text + result->stderr_text;
    Submitted submitted;
    submitted.exit_code = result->exit_code;
    submitted.stderr_text = result->stderr_text;
    submitted.task = json::parse(result->stdout_text, nullptr, /*allow_exceptions=*/false);
    if (submitted.task.is_discarded()) submitted.task = nullptr;
    return submitted;
  }

  // Submits and waits; OK only when the task succeeded (exit 0). The TaskInfo on success.
  absl::StatusOr<json> Run(absl::string_view agent, const json& task, absl::string_view id = "",
                           absl::Duration timeout = absl::Seconds(60)) {
    auto submitted = Submit(agent, task, id, /*wait=*/true, timeout);
    if (!submitted.ok()) return submitted.status();
    if (submitted->exit_code != 0 || Str(submitted->task, "state") != "succeeded") {
      // The task itself is not quoted: it may hold secrets.
      return absl::FailedPreconditionError(absl::StrCat(
          "task ", id.empty() ? "(no id)" : id, " (", Operation(task), ") on ", agent, " exited ",
          submitted->exit_code, ": ", submitted->stderr_text, " ", submitted->task.dump()));
    }
    return submitted->task;
  }

  // `task show ID --events N -o json`.
  absl::StatusOr<json> ShowTask(absl::string_view id, int events = 20) {
    auto shown = cli_->RunJson({"task", "show", std::string(id), "--events", absl::StrCat(events)});
    if (shown.ok()) cli_outputs_ += shown->dump();
    return shown;
  }

  // Polls `task show` until the task has ended; returns its TaskInfo.
  absl::StatusOr<json> WaitForEnd(absl::string_view id, absl::Duration timeout) {
    json last;
    absl::Status status = WaitFor(
        absl::StrCat("task ", id, " to end"), timeout,
        [&]() {
          auto shown = ShowTask(id);
          if (!shown.ok()) return shown.status();
          last = *std::move(shown);
          if (!IsFinal(Str(last, "state"))) {
            return absl::UnavailableError(absl::StrCat("state ", Str(last, "state")));
          }
          return absl::OkStatus();
        },
        absl::Milliseconds(200));
    if (!status.ok()) return status;
    return last;
  }

  // Waits until task `id` runs at the controller (the agent reported on it) and the agent's
  // pgBackRest backup has a copying process ("backup:local"): the backup is mid-way, with
  // seconds of copying ahead for a big relation (pgBackRest copies the largest files first and
  // reports progress per finished file). Returns the backup's pgBackRest processes.
  absl::StatusOr<std::vector<ProcessInfo>> WaitForCopying(absl::string_view id, pid_t agent_pid,
                                                          absl::Duration timeout) {
    std::vector<ProcessInfo> backup;
    absl::Status status = WaitFor(
        absl::StrCat("task ", id, " to copy files"), timeout,
        [&]() {
          backup.clear();
          bool copying = false;
          std::vector<ProcessInfo> processes = ListProcesses();
          for (const ProcessInfo& p : processes) {
            if (p.IsPgBackRest() && DescendsFrom(processes, p.pid, agent_pid)) {
              backup.push_back(p);
              copying |= absl::StrContains(p.CommandLine(), "backup:local");
            }
          }
          auto shown = ShowTask(id);
          if (!shown.ok()) return shown.status();
          const std::string state = Str(*shown, "state");
          if (IsFinal(state)) {
            return absl::FailedPreconditionError(
                absl::StrCat("it ended before it was seen copying: ", shown->dump()));
          }
          if (state != "running" || !copying) {
            return absl::UnavailableError(
                absl::StrCat("state ", state, ", ", backup.size(), " pgbackrest processes"));
          }
          return absl::OkStatus();
        },
        absl::Milliseconds(20));
    if (!status.ok()) return status;
    return backup;
  }

  // configure_pgbackrest (task id "configure-<agent>") for kMigration on `agent` with the shared
  // repository, then, for a source, stanza-create and check.
  void Configure(absl::string_view agent, bool source, json extra = json::object()) {
    json configure = {{"migration_id", kMigration},
                      {"stanza", kStanza},
                      {"repository", {{"posix", {{"path", repo_path_}}}}},
                      {"compress_type", "lz4"},
                      {"process_max", 2}};
    configure.update(extra);
    PGH_ASSERT_OK_AND_ASSIGN(json configured, Run(agent, {{"configure_pgbackrest", configure}},
                                                  absl::StrCat("configure-", agent)));
    EXPECT_EQ(Str(configured, "result.values.config_path"), AgentPgBackRestConfig(agent));
    if (!source) return;
    PGH_ASSERT_OK(Run(agent, PgBackRest({{"stanza_create", json::object()}})));
    PGH_ASSERT_OK(Run(agent, PgBackRest({{"check", json::object()}}), "", absl::Seconds(120)));
  }

  // The pgbench row counts of a cluster, e.g. "pgbench_accounts=1000000 ...".
  std::string PgbenchCounts(const PgCluster& cluster) {
    std::vector<std::string> counts;
    for (const char* table :
         {"pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"}) {
      counts.push_back(absl::StrCat(
          table, "=",
          cluster.Query(absl::StrCat("SELECT count(*) FROM ", table)).value_or("<psql failed>")));
    }
    return absl::StrJoin(counts, " ");
  }

  // Declaration order is destruction order reversed: processes go before the network and the
  // directory they live in.
  std::unique_ptr<TempDir> dir_;
  std::string backups_root_;
  std::string repo_path_;
  std::string task_files_;
  int task_files_written_ = 0;
  std::unique_ptr<NetworkNamespaces> network_;
  std::map<std::string, Host> hosts_;
  std::unique_ptr<PghaulController> controller_;
  std::unique_ptr<PghaulCli> cli_;
  std::string cli_outputs_;  // everything the CLI printed, for the secrets test
};

TEST_F(AgentTasksTest, FullBackupWithProgressIsValidAndRestoresIntoTheTargetWithTheSameRows) {
  PGH_ASSERT_OK_AND_ASSIGN(Host * legacy, AddHost("legacy", 11, /*archives=*/true));
  PGH_ASSERT_OK_AND_ASSIGN(Host * target, AddHost("target", 12, /*archives=*/false));
  PGH_ASSERT_OK(LoadPgbench(*legacy->cluster, 10));

  Configure("legacy", /*source=*/true);
  if (HasFatalFailure()) return;
  // The config is the agent's, where PostgreSQL's archive_command looks for it.
  EXPECT_TRUE(std::filesystem::exists(AgentPgBackRestConfig("legacy")));

  const absl::Time backup_start = absl::Now();
  PGH_ASSERT_OK_AND_ASSIGN(json backup, Run("legacy", PgBackRest({{"backup", {{"type", "full"}}}}),
                                            "full-1", absl::Seconds(180)));
  std::cout << "full backup of pgbench -s 10 took " << absl::Now() - backup_start << "\n";
  const std::string label = Str(backup, "result.values.backup_label");
  EXPECT_TRUE(std::regex_match(label, std::regex(R"(\d{8}-\d{6}F)"))) << backup.dump(2);
  EXPECT_TRUE(absl::StrContains(Str(backup, "result.message"), label)) << backup.dump(2);

  // Progress events, in order, rise to 100.
  PGH_ASSERT_OK_AND_ASSIGN(json shown, ShowTask("full-1", 1000));
  std::vector<double> percents;
  uint64_t previous_seq = 0;
  for (const json& event : At(shown, "recent_events")) {
    const uint64_t seq = static_cast<uint64_t>(Int(event, "seq"));
    EXPECT_GT(seq, previous_seq) << "events in order";
    previous_seq = seq;
    json percent = At(event, "progress.percent");
    if (percent.is_number()) percents.push_back(percent.get<double>());
  }
  std::cout << "progress events: " << percents.size() << ", of " << Int(shown, "last_seq")
            << " events\n";
  ASSERT_GE(percents.size(), 2u) << shown.dump(2);
  for (size_t i = 1; i < percents.size(); ++i) {
    EXPECT_GE(percents[i], percents[i - 1]) << "progress event " << i << " went back";
  }
  EXPECT_LT(percents.front(), 100.0);
  EXPECT_DOUBLE_EQ(percents.back(), 100.0);
  EXPECT_EQ(Str(shown, "state"), "succeeded");
  EXPECT_EQ(Str(shown, "result.state"), "SUCCEEDED");
  EXPECT_EQ(Int(shown, "events_received"), Int(shown, "last_seq"));
  EXPECT_EQ(Int(shown, "events_lost"), 0);

  // The agent's recent tasks list it.
  PGH_ASSERT_OK_AND_ASSIGN(json agent_tasks,
                           cli_->RunJson({"agents", "show", "legacy", "--tasks", "--limit", "10"}));
  EXPECT_EQ(Str(agent_tasks, "agent.agent_id"), "legacy");
  bool listed = false;
  for (const json& task : At(agent_tasks, "tasks")) {
    if (Str(task, "task_id") == "full-1") {
      listed = true;
      EXPECT_EQ(Str(task, "op"), "pgbackrest backup");
      EXPECT_EQ(Str(task, "state"), "succeeded");
    }
  }
  EXPECT_TRUE(listed) << agent_tasks.dump(2);

  // info: the stanza is OK with the one backup.
  PGH_ASSERT_OK_AND_ASSIGN(json info, Run("legacy", PgBackRest({{"info", json::object()}})));
  EXPECT_EQ(Int(info, "result.repository_status_code"), 0) << info.dump(2);
  EXPECT_EQ(Str(info, "result.values.valid_backups"), "1") << info.dump(2);
  EXPECT_EQ(Str(info, "result.values.latest_backup"), label);
  json info_json = json::parse(Str(info, "result.info_json"), nullptr, false);
  ASSERT_TRUE(info_json.is_array() && info_json.size() == 1) << info.dump(2);
  EXPECT_EQ(Str(info_json[0], "name"), kStanza);
  EXPECT_EQ(Int(info_json[0], "status.code"), 0);
  ASSERT_EQ(At(info_json[0], "backup").size(), 1u) << info_json.dump(2);
  EXPECT_EQ(Str(info_json[0]["backup"][0], "label"), label);

  // Restore into the target: stop it by a service task, restore, start it by a service task.
  Configure("target", /*source=*/false);
  if (HasFatalFailure()) return;
  PGH_ASSERT_OK_AND_ASSIGN(json stopped, Run("target", Service("STOP")));
  EXPECT_EQ(Str(stopped, "result.values.running"), "false") << stopped.dump(2);
  EXPECT_FALSE(target->cluster->IsRunning());
  PGH_ASSERT_OK_AND_ASSIGN(
      json restored,
      Run("target",
          PgBackRest({{"restore",
                       {{"delta", true}, {"type", "immediate"}, {"target_action", "promote"}}}}),
          "restore-1", absl::Seconds(180)));
  PGH_ASSERT_OK_AND_ASSIGN(json started, Run("target", Service("START")));
  EXPECT_EQ(Str(started, "result.values.running"), "true") << started.dump(2);
  PGH_ASSERT_OK(WaitFor("the target to finish recovery and promote", absl::Seconds(60), [&]() {
    return target->cluster->Query("SELECT pg_is_in_recovery()").value_or("?") == "f";
  }));
  PGH_ASSERT_OK_AND_ASSIGN(json status, Run("target", Service("STATUS")));
  EXPECT_EQ(Str(status, "result.values.running"), "true") << status.dump(2);

  const std::string source_counts = PgbenchCounts(*legacy->cluster);
  EXPECT_TRUE(absl::StrContains(source_counts, "pgbench_accounts=1000000")) << source_counts;
  EXPECT_EQ(PgbenchCounts(*target->cluster), source_counts);
  // The same cluster now, and a writable one.
  EXPECT_EQ(target->cluster->Query("SELECT system_identifier FROM pg_control_system()")
                .value_or("target?"),
            legacy->cluster->Query("SELECT system_identifier FROM pg_control_system()")
                .value_or("legacy?"));
  PGH_EXPECT_OK(target->cluster->Query("CREATE TABLE written_after_restore (x int)"));
}

TEST_F(AgentTasksTest, CancelledBackupEndsCancelledLeavesNoProcessAndKeepsTheEarlierSet) {
  PGH_ASSERT_OK_AND_ASSIGN(Host * legacy, AddHost("legacy", 11, /*archives=*/true));
  Configure("legacy", /*source=*/true);
  if (HasFatalFailure()) return;
  // The earlier set: the cluster as initdb left it.
  PGH_ASSERT_OK_AND_ASSIGN(json first, Run("legacy", PgBackRest({{"backup", {{"type", "full"}}}}),
                                           "full-1", absl::Seconds(120)));
  const std::string first_label = Str(first, "result.values.backup_label");
  ASSERT_FALSE(first_label.empty()) << first.dump(2);

  // A slow one: more data, gzip, one process.
  PGH_ASSERT_OK(LoadPgbench(*legacy->cluster, 40));
  PGH_ASSERT_OK_AND_ASSIGN(
      Submitted submitted,
      Submit(
          "legacy",
          PgBackRest({{"backup", {{"type", "full"}, {"compress_type", "gz"}, {"process_max", 1}}}}),
          "full-2", /*wait=*/false));
  ASSERT_EQ(submitted.exit_code, 0) << submitted.stderr_text;
  const pid_t agent_pid = legacy->agent->process()->pid();
  PGH_ASSERT_OK_AND_ASSIGN(std::vector<ProcessInfo> backup,
                           WaitForCopying("full-2", agent_pid, absl::Seconds(60)));
  // The backup's processes and their process groups.
  std::set<pid_t> backup_pids;
  std::set<pid_t> backup_groups;
  for (const ProcessInfo& p : backup) {
    backup_pids.insert(p.pid);
    backup_groups.insert(p.pgid);
    std::cout << "backup process " << p.pid << " (group " << p.pgid << "): " << p.CommandLine()
              << "\n";
  }
  ASSERT_FALSE(backup_pids.empty()) << "no pgbackrest backup process below agent " << agent_pid;
  EXPECT_EQ(backup_groups.count(agent_pid), 0u) << "pgBackRest runs in a group of its own";

  const absl::Time cancel_at = absl::Now();
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult cancel, cli_->Run({"task", "cancel", "full-2"}));
  EXPECT_EQ(cancel.exit_code, 0) << cancel.stderr_text;
  PGH_ASSERT_OK_AND_ASSIGN(json ended, WaitForEnd("full-2", absl::Seconds(30)));
  std::cout << "cancelled after " << absl::Now() - cancel_at << "\n";
  EXPECT_EQ(Str(ended, "state"), "cancelled") << ended.dump(2);
  EXPECT_EQ(Str(ended, "result.state"), "CANCELLED") << ended.dump(2);

  // Nothing of it is left: no process of its groups, no backup of the stanza (PostgreSQL's own
  // archive-push processes may come and go).
  const std::string stanza_option = absl::StrCat("--stanza=", kStanza);
  for (const ProcessInfo& p : ListProcesses()) {
    if (p.state == 'Z') continue;  // dead, waiting for a reaper
    EXPECT_EQ(backup_groups.count(p.pgid), 0u)
        << "process " << p.pid << " of the backup's group remains: " << p.CommandLine();
    EXPECT_FALSE(p.IsPgBackRest() && p.HasArgument(stanza_option) &&
                 (p.HasArgument("backup") || p.HasArgument("backup:local")))
        << "process " << p.pid << " remains: " << p.CommandLine();
  }

  PGH_ASSERT_OK_AND_ASSIGN(json info, Run("legacy", PgBackRest({{"info", json::object()}})));
  EXPECT_EQ(Int(info, "result.repository_status_code"), 0) << info.dump(2);
  EXPECT_EQ(Str(info, "result.values.valid_backups"), "1") << info.dump(2);
  EXPECT_EQ(Str(info, "result.values.latest_backup"), first_label) << info.dump(2);
}

TEST_F(AgentTasksTest, BackupCompletesAcrossAControllerKillWithEveryEventJournaledOnce) {
  PGH_ASSERT_OK_AND_ASSIGN(Host * legacy, AddHost("legacy", 11, /*archives=*/true));
  PGH_ASSERT_OK(LoadPgbench(*legacy->cluster, 10));
  Configure("legacy", /*source=*/true);
  if (HasFatalFailure()) return;

  PGH_ASSERT_OK_AND_ASSIGN(
      Submitted submitted,
      Submit(
          "legacy",
          PgBackRest({{"backup", {{"type", "full"}, {"compress_type", "gz"}, {"process_max", 1}}}}),
          "full-1", /*wait=*/false));
  ASSERT_EQ(submitted.exit_code, 0) << submitted.stderr_text;
  PGH_ASSERT_OK(WaitForCopying("full-1", legacy->agent->process()->pid(), absl::Seconds(60)));
  PGH_ASSERT_OK_AND_ASSIGN(json running, ShowTask("full-1"));
  const uint64_t seen_before_kill = static_cast<uint64_t>(Int(running, "last_seq"));

  const absl::Time killed_at = absl::Now();
  PGH_ASSERT_OK(controller_->process()->Kill(SIGKILL));
  PGH_ASSERT_OK(controller_->Start());
  std::cout << "controller killed after " << seen_before_kill << " events (progress "
            << At(running, "progress").dump() << ") and started again\n";

  PGH_ASSERT_OK_AND_ASSIGN(json ended, WaitForEnd("full-1", absl::Seconds(180)));
  EXPECT_EQ(Str(ended, "state"), "succeeded") << ended.dump(2);
  EXPECT_FALSE(Str(ended, "result.values.backup_label").empty()) << ended.dump(2);
  // It was still running when the controller died.
  EXPECT_GT(Timestamp(ended, "finished_at"), killed_at) << ended.dump(2);
  EXPECT_GT(static_cast<uint64_t>(Int(ended, "last_seq")), seen_before_kill);
  // Every event exactly once: as many received as the last sequence number, no gap.
  EXPECT_EQ(Int(ended, "events_received"), Int(ended, "last_seq")) << ended.dump(2);
  EXPECT_EQ(Int(ended, "events_lost"), 0) << ended.dump(2);
  // The last events are consecutive, ending with the result.
  PGH_ASSERT_OK_AND_ASSIGN(json shown, ShowTask("full-1", 1000));
  const json& events = At(shown, "recent_events");
  ASSERT_FALSE(events.empty()) << shown.dump(2);
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_EQ(Int(events[i], "seq"), Int(events[i - 1], "seq") + 1) << "event " << i;
  }
  EXPECT_EQ(Int(events.back(), "seq"), Int(shown, "last_seq"));
  EXPECT_TRUE(At(events.back(), "result").is_object()) << events.back().dump();

  PGH_ASSERT_OK_AND_ASSIGN(json info, Run("legacy", PgBackRest({{"info", json::object()}})));
  EXPECT_EQ(Str(info, "result.values.valid_backups"), "1") << info.dump(2);
}

// The secrets live in exactly one file, <state>/pgbackrest/m1/conf.d/secrets.conf (0600, owned by
// postgres), because PostgreSQL's archiver runs archive-push without the agent: the repository is
// encrypted, so Configure's `check` (which waits for PostgreSQL to archive a segment) passes only
// when archive_command finds the cipher passphrase there.
TEST_F(AgentTasksTest, SecretsLiveOnlyInThePrivateSecretsFileNeverInCommandLinesOrLogs) {
  PGH_ASSERT_OK_AND_ASSIGN(Host * legacy, AddHost("legacy", 11, /*archives=*/true));
  PGH_ASSERT_OK(LoadPgbench(*legacy->cluster, 2));
  // Distinctive, and different in every run.
  const std::string nonce = absl::StrCat(getpid(), absl::ToUnixMicros(absl::Now()));
  const std::string key = absl::StrCat("AKIAPGHAULKEY", nonce);
  const std::string secret = absl::StrCat("pghaul-s3-secret-", nonce, "-x7Qz");
  const std::string cipher_pass = absl::StrCat("pghaul-cipher-", nonce, "-Pq9w");
  const std::vector<std::string> secrets = {key, secret, cipher_pass};
  auto holds_a_secret = [&secrets](absl::string_view text) {
    return std::any_of(secrets.begin(), secrets.end(),
                       [text](const std::string& s) { return absl::StrContains(text, s); });
  };
  Configure(
      "legacy", /*source=*/true,
      {{"repository", {{"posix", {{"path", repo_path_}}}, {"cipher_type", "aes-256-cbc"}}},
       {"secrets", {{"s3_key", key}, {"s3_key_secret", secret}, {"cipher_pass", cipher_pass}}}});
  if (HasFatalFailure()) return;
  const std::string secrets_file =
      absl::StrCat(AgentPgBackRestIncludePath("legacy"), "/secrets.conf");

  PGH_ASSERT_OK_AND_ASSIGN(
      Submitted submitted,
      Submit("legacy", PgBackRest({{"backup", {{"type", "full"}, {"compress_type", "gz"}}}}),
             "full-1", /*wait=*/false));
  ASSERT_EQ(submitted.exit_code, 0) << submitted.stderr_text;
  // Every process's command line, again and again while the backup runs. The backup's own
  // environment must hold them (else this test proves nothing): that is where pgBackRest gets
  // them, and /proc/PID/environ is readable by its user and root only.
  int scans = 0;
  int scans_with_backup = 0;
  int environments_with_secrets = 0;
  std::vector<std::string> leaks;
  const pid_t agent_pid = legacy->agent->process()->pid();
  json ended;
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (absl::Now() < deadline) {
    bool backup_seen = false;
    std::vector<ProcessInfo> processes = ListProcesses();
    for (const ProcessInfo& p : processes) {
      if (holds_a_secret(p.raw_cmdline)) {
        leaks.push_back(absl::StrCat("pid ", p.pid, ": ", p.CommandLine()));
      }
      if (p.IsPgBackRest() && p.HasArgument("backup") &&
          DescendsFrom(processes, p.pid, agent_pid)) {
        backup_seen = true;
        std::ifstream file(absl::StrCat("/proc/", p.pid, "/environ"));
        std::string environ((std::istreambuf_iterator<char>(file)),
                            std::istreambuf_iterator<char>());
        if (absl::StrContains(environ, absl::StrCat("PGBACKREST_REPO1_S3_KEY=", key)) &&
            absl::StrContains(environ, absl::StrCat("PGBACKREST_REPO1_S3_KEY_SECRET=", secret))) {
          ++environments_with_secrets;
        }
      }
    }
    ++scans;
    if (backup_seen) ++scans_with_backup;
    if (scans % 10 == 0) {
      PGH_ASSERT_OK_AND_ASSIGN(ended, ShowTask("full-1"));
      if (IsFinal(Str(ended, "state"))) break;
    }
  }
  std::cout << scans << " scans of /proc/*/cmdline, " << scans_with_backup
            << " while pgbackrest backup ran\n";
  ASSERT_EQ(Str(ended, "state"), "succeeded") << ended.dump(2);
  EXPECT_TRUE(leaks.empty()) << leaks.size() << " command lines with a secret, e.g. "
                             << (leaks.empty() ? "" : leaks.front());
  EXPECT_GT(scans_with_backup, 0) << "the scans never saw the backup running";
  EXPECT_GT(environments_with_secrets, 0) << "the backup ran without the secrets";

  // Nor in anything the CLI printed (TaskInfos, the task list).
  PGH_ASSERT_OK(ShowTask("configure-legacy", 1000));
  PGH_ASSERT_OK_AND_ASSIGN(json listed, cli_->RunJson({"task", "list"}));
  cli_outputs_ += listed.dump();
  EXPECT_FALSE(holds_a_secret(cli_outputs_));

  // In one file only below the test directory: not in agent and controller logs, the
  // controller's journal, pgBackRest's config and logs (archive-push's too), the repository,
  // PostgreSQL's files and log. Everything is stopped first, so that logs are complete and no
  // file changes or vanishes during the scan.
  PGH_ASSERT_OK(legacy->agent->process()->Stop());
  PGH_ASSERT_OK(controller_->process()->Stop());
  PGH_ASSERT_OK(legacy->cluster->Stop("fast"));
  int files = 0;
  std::vector<std::string> holders;
  for (const std::filesystem::directory_entry& entry :
       std::filesystem::recursive_directory_iterator(dir_->path())) {
    if (!entry.is_regular_file()) continue;
    ++files;
    auto contents = ReadFile(entry.path().string());
    ASSERT_TRUE(contents.ok()) << entry.path() << ": " << contents.status();
    if (holds_a_secret(*contents)) holders.push_back(entry.path().string());
  }
  std::cout << files << " files scanned under " << dir_->path() << "\n";
  EXPECT_EQ(holders, std::vector<std::string>{secrets_file});
  auto secrets_text = ReadFile(secrets_file);
  ASSERT_TRUE(secrets_text.ok()) << secrets_text.status();
  for (const std::string& s : secrets) EXPECT_TRUE(absl::StrContains(*secrets_text, s));
  struct stat st;
  ASSERT_EQ(stat(secrets_file.c_str(), &st), 0) << secrets_file;
  EXPECT_EQ(st.st_mode & 07777, 0600u) << secrets_file;
  const passwd* postgres = getpwnam(kPostgresOsUser);
  ASSERT_NE(postgres, nullptr);
  EXPECT_EQ(st.st_uid, postgres->pw_uid) << secrets_file;
  ASSERT_EQ(stat(AgentPgBackRestIncludePath("legacy").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, postgres->pw_uid);
  for (const std::string& path : {controller_->state_dir() + "/state.db", controller_->log_path(),
                                  legacy->agent->log_path(), AgentPgBackRestConfig("legacy"),
                                  absl::StrCat(AgentDir("legacy"), "/state/pgbackrest/", kMigration,
                                               "/log/", kStanza, "-backup.log")}) {
    EXPECT_TRUE(std::filesystem::exists(path)) << path << " was not among the scanned files";
  }
  // Segments PostgreSQL's own archive-push put into the encrypted repository were scanned too.
  const std::string archive =
      absl::StrCat(repo_path_, "/archive/", kStanza, "/15-1/0000000100000000");
  ASSERT_TRUE(std::filesystem::is_directory(archive)) << archive;
  EXPECT_FALSE(std::filesystem::is_empty(archive)) << archive;
}

TEST_F(AgentTasksTest, ConfigureWithAStanzaHoldingShellSyntaxIsRefusedAndCreatesNothing) {
  PGH_ASSERT_OK_AND_ASSIGN(Host * legacy, AddHost("legacy", 11, /*archives=*/false));
  const std::string migration_dir = absl::StrCat(legacy->agent->state_dir(), "/pgbackrest/evil");
  json task = {{"configure_pgbackrest",
                {{"migration_id", "evil"},
                 {"stanza", "a;rm -rf /"},
                 {"repository", {{"posix", {{"path", repo_path_}}}}}}}};
  PGH_ASSERT_OK_AND_ASSIGN(Submitted submitted, Submit("legacy", task, "refuse-1"));
  EXPECT_EQ(submitted.exit_code, kExitTaskNotSucceeded) << submitted.stderr_text;
  EXPECT_EQ(Str(submitted.task, "state"), "refused") << submitted.task.dump(2);
  EXPECT_EQ(Str(submitted.task, "result.state"), "REFUSED");
  EXPECT_TRUE(absl::StrContains(Str(submitted.task, "result.message"), "stanza"))
      << submitted.task.dump(2);
  EXPECT_TRUE(absl::StrContains(submitted.stderr_text, "refuse-1")) << submitted.stderr_text;

  EXPECT_FALSE(std::filesystem::exists(migration_dir)) << migration_dir;
  EXPECT_TRUE(std::filesystem::is_empty(repo_path_)) << "the repository was touched";
  // A pgBackRest command for that migration has no config to use: refused too.
  PGH_ASSERT_OK_AND_ASSIGN(
      Submitted info,
      Submit("legacy", {{"pgbackrest", {{"migration_id", "evil"}, {"info", json::object()}}}}));
  EXPECT_EQ(info.exit_code, kExitTaskNotSucceeded) << info.stderr_text;
  EXPECT_EQ(Str(info.task, "state"), "refused") << info.task.dump(2);
  EXPECT_FALSE(std::filesystem::exists(migration_dir)) << migration_dir;
  // The agent is still there and well.
  PGH_ASSERT_OK_AND_ASSIGN(json agent, cli_->FindAgent("legacy"));
  EXPECT_EQ(At(agent, "online"), true) << agent.dump(2);
}

// A controller that sends crafted tasks (path traversal, option injection, shell syntax, oversize
// and unknown fields) gets each one REFUSED by the agent, and nothing runs: the controller relays
// what `task submit` gives it without judging it, so every refusal here is the agent's.
// ENSURE_ROLES creates only missing roles, with the verifier as their password and pghaul's
// mark; DROP_ROLES drops only marked roles, never one it did not create.
TEST_F(AgentTasksTest, EnsureRolesCreatesMarkedRolesAndDropRolesDropsOnlyThose) {
  PGH_ASSERT_OK_AND_ASSIGN(Host * legacy, AddHost("legacy", 11, /*archives=*/false));
  PgCluster& cluster = *legacy->cluster;
  PGH_ASSERT_OK(cluster.Query("CREATE ROLE app_owner LOGIN").status());
  // The verifier of the password "op-secret" with salt "0123456789abcdef" (scram_verifier_test).
  const std::string verifier =
      "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$yo+pGFkJdIEXWoJ/MxRNMz8OfcgAYVtfKJfnN1Z/"
      "g+g=:xaD7BlOINxC18ateBqh9JM2FUWO/U9nx8b+tHym6zzo=";
  const json roles =
      json::array({{{"name", "operator"}, {"superuser", true}, {"scram_verifier", verifier}},
                   {{"name", "app_owner"}, {"scram_verifier", verifier}}});
  PGH_ASSERT_OK_AND_ASSIGN(json checked,
                           Run("legacy", {{"sql", {{"query", "ENSURE_ROLES"}, {"roles", roles}}}}));
  EXPECT_EQ(Str(checked, "result.values.missing"), "operator") << checked.dump(2);
  EXPECT_EQ(Str(checked, "result.values.existing"), "app_owner");
  EXPECT_EQ(cluster.Query("SELECT count(*) FROM pg_roles WHERE rolname = 'operator'").value_or("?"),
            "0");
  PGH_ASSERT_OK_AND_ASSIGN(
      json created,
      Run("legacy",
          {{"sql", {{"query", "ENSURE_ROLES"}, {"roles", roles}, {"create_roles", true}}}}));
  EXPECT_EQ(Str(created, "result.values.created"), "operator") << created.dump(2);
  EXPECT_EQ(cluster
                .Query("SELECT rolsuper::text || ' ' || rolcanlogin::text || ' ' || "
                       "(rolpassword = '" +
                       verifier +
                       "')::text FROM pg_authid "
                       "WHERE rolname = 'operator'")
                .value_or("?"),
            "true true true");
  EXPECT_EQ(cluster.Query("SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'app_owner'")
                .value_or("?"),
            "t");

  PGH_ASSERT_OK_AND_ASSIGN(json dropped,
                           Run("legacy", {{"sql",
                                           {{"query", "DROP_ROLES"},
                                            {"roles", json::array({{{"name", "operator"}},
                                                                   {{"name", "app_owner"}},
                                                                   {{"name", "postgres"}}})}}}}));
  EXPECT_EQ(Str(dropped, "result.values.dropped"), "operator") << dropped.dump(2);
  EXPECT_EQ(Str(dropped, "result.values.not_created_by_pghaul"), "app_owner, postgres");
  EXPECT_EQ(cluster
                .Query("SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE "
                       "rolname IN ('operator', 'app_owner', 'postgres')")
                .value_or("?"),
            "app_owner,postgres");
}

TEST_F(AgentTasksTest, CraftedTasksFromTheControllerAreRefusedAndNothingRuns) {
  PGH_ASSERT_OK_AND_ASSIGN(Host * legacy, AddHost("legacy", 11, /*archives=*/false));
  // A valid migration, so that the pgBackRest tasks below are judged on their own fields.
  PGH_ASSERT_OK(Run("legacy", {{"configure_pgbackrest",
                                {{"migration_id", "m1"},
                                 {"stanza", "main"},
                                 {"repository", {{"posix", {{"path", repo_path_}}}}}}}})
                    .status());
  const std::string state_dir = legacy->agent->state_dir();
  auto backup = [](json fields) {
    return json{{"pgbackrest", {{"migration_id", "m1"}, {"backup", std::move(fields)}}}};
  };
  auto restore = [](json fields) {
    return json{{"pgbackrest", {{"migration_id", "m1"}, {"restore", std::move(fields)}}}};
  };
  auto sql = [](json fields) { return json{{"sql", std::move(fields)}}; };
  const std::string oversize(100000, 'a');
  const std::vector<std::pair<std::string, json>> crafted = {
      {"configure with a migration id that climbs out of the state dir",
       {{"configure_pgbackrest",
         {{"migration_id", "../../etc"},
          {"stanza", "main"},
          {"repository", {{"posix", {{"path", repo_path_}}}}}}}}},
      {"configure with a relative repository path",
       {{"configure_pgbackrest",
         {{"migration_id", "m2"},
          {"stanza", "main"},
          {"repository", {{"posix", {{"path", "repo/../../etc"}}}}}}}}},
      {"configure with an oversize stanza",
       {{"configure_pgbackrest",
         {{"migration_id", "m3"},
          {"stanza", oversize},
          {"repository", {{"posix", {{"path", repo_path_}}}}}}}}},
      {"backup type carrying an option", backup({{"type", "full --repo1-path=/tmp/elsewhere"}})},
      {"backup compress type carrying shell", backup({{"type", "full"}, {"compress_type", "lz4;id"}})},
      {"restore of a backup set that is a path", restore({{"set", "../../../etc/passwd"}})},
      {"restore timeline with shell syntax", restore({{"target_timeline", "latest; touch /tmp/x"}})},
      {"restore target LSN with shell syntax",
       restore({{"type", "lsn"}, {"target", "0/0'; DROP TABLE t; --"}})},
      {"pgbackrest for a migration this agent never configured",
       {{"pgbackrest", {{"migration_id", "other"}, {"stanza_create", json::object()}}}}},
      {"an unknown sql query", sql({{"query", 999}})},
      {"a WAL wait for a file name that is a path",
       sql({{"query", "WAIT_ARCHIVED"}, {"walfile", "../../../../etc/passwd"}})},
      {"a replay wait for an LSN with SQL in it",
       sql({{"query", "WAIT_REPLAYED"}, {"lsn", "0/0'); SELECT pg_sleep(60); --"}})},
      {"a retry interval out of range", sql({{"query", "SET_WAL_RETRIEVE_RETRY"}, {"retry_ms", 1}})},
      {"a fence whose migration id is shell",
       sql({{"query", "FENCE_READ_ONLY"}, {"migration_id", "$(reboot)"}})},
      {"a promote waiting for days", sql({{"query", "PROMOTE"}, {"wait_seconds", 999999}})},
      {"a service stop mode with shell", {{"service", {{"action", "STOP"}, {"stop_mode", "fast; id"}}}}},
      {"a task naming no operation", json::object()},
  };
  int n = 0;
  for (const auto& [what, task] : crafted) {
    PGH_ASSERT_OK_AND_ASSIGN(Submitted submitted,
                             Submit("legacy", task, absl::StrCat("crafted-", ++n)));
    EXPECT_NE(submitted.exit_code, 0) << what;
    const std::string state = Str(submitted.task, "state");
    // "refused": the agent judged it invalid before anything ran. (The CLI itself refuses a few,
    // such as the task without an operation, before the controller sees them.)
    if (!submitted.task.is_null()) {
      EXPECT_EQ(state, "refused") << what << ": " << submitted.task.dump(2);
      EXPECT_EQ(Str(submitted.task, "result.state"), "REFUSED") << what;
    } else {
      EXPECT_EQ(submitted.exit_code, 65) << what << ": " << submitted.stderr_text;
    }
    std::cout << what << ": " << (submitted.task.is_null() ? submitted.stderr_text
                                                           : Str(submitted.task, "result.message"))
              << "\n";
  }
  // Nothing ran: the repository is as it was (no stanza-create, backup or restore reached
  // pgBackRest), no migration directory but m1's, the server still up and writable.
  EXPECT_TRUE(std::filesystem::is_empty(repo_path_)) << "the repository was touched";
  std::vector<std::string> migrations;
  for (const auto& entry : std::filesystem::directory_iterator(state_dir + "/pgbackrest")) {
    migrations.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(migrations, std::vector<std::string>{"m1"});
  EXPECT_TRUE(legacy->cluster->Query("CREATE TABLE still_here (i int)").ok());
  PGH_ASSERT_OK_AND_ASSIGN(json agent, cli_->FindAgent("legacy"));
  EXPECT_EQ(At(agent, "online"), true) << agent.dump(2);
}

}  // namespace
}  // namespace pghaul::integration
