// The cutover's safety pieces against real servers, driven through the real `pghaul` CLI,
// controller and agent:
//
//   controller 198.18.0.10:7400    legacy 198.18.0.11 (PG 15; its agent runs as postgres and logs
//                                                      in as the postgres role; an application
//                                                      role `app` logs in too)
//
// The hard fence: FENCE_READ_ONLY must refuse every new login but the agent's own, end the
// sessions that are there (including one that turned read-only off for itself), leave the agent
// working, and UNFENCE must put pg_hba.conf back byte for byte.
#include <signal.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fixture/child_process.h"
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

class CutoverTest : public ::testing::Test {
 protected:
  struct Host {
    std::unique_ptr<PgCluster> cluster;
    std::unique_ptr<PghaulAgent> agent;  // declared last: destroyed before its cluster
  };

  void SetUp() override {
    RequireRoot();
    if (HasFatalFailure()) return;
    PGH_ASSERT_OK_AND_ASSIGN(dir_, TempDir::Create("pghaul-cutover-"));
    PGH_ASSERT_OK_AND_ASSIGN(scripts_dir_, dir_->MakeSubdir("scripts", kPostgresOsUser, 0750));
    PGH_ASSERT_OK_AND_ASSIGN(backups_root_, dir_->MakeSubdir("backups", kPostgresOsUser, 0750));
    PGH_ASSERT_OK_AND_ASSIGN(repo_path_, dir_->MakeSubdir("backups/repo", kPostgresOsUser, 0750));
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
    for (auto& child : children_) {
      if (child->IsRunning()) (void)child->Kill(SIGKILL);
    }
    if (!HasFailure()) return;
    std::vector<std::string> logs;
    if (controller_ != nullptr) logs.push_back(controller_->log_path());
    for (const auto& [name, host] : hosts_) {
      if (host.agent != nullptr) logs.push_back(host.agent->log_path());
      if (host.cluster != nullptr) logs.push_back(host.cluster->log_path());
    }
    for (const auto& child : children_) logs.push_back(child->log_path());
    PrintLogTails(logs);
  }

  std::string ControllerAddress() const {
    return absl::StrCat(network_->Address("controller"), ":", kControllerPort);
  }

  // A host namespace with a running PostgreSQL 15 cluster and its agent, online.
  absl::StatusOr<Host*> AddHost(const std::string& name, int octet) {
    PGH_ASSIGN_OR_RETURN(std::string netns, network_->AddHost(name, octet));
    Host& host = hosts_[name];
    PgClusterOptions pg;
    pg.name = name;
    pg.netns = netns;
    pg.listen_address = network_->Address(name);
    PGH_ASSIGN_OR_RETURN(host.cluster, PgCluster::Create(dir_->path(), pg));
    PGH_RETURN_IF_ERROR(host.cluster->Start());
    AgentOptions agent = AgentOptions::ForCluster(name, ControllerAddress(), *host.cluster);
    agent.roots = {backups_root_};
    PGH_ASSIGN_OR_RETURN(host.agent,
                         PghaulAgent::Create(absl::StrCat(dir_->path(), "/agent-", name), agent));
    PGH_RETURN_IF_ERROR(host.agent->Start());
    PGH_RETURN_IF_ERROR(
        WaitFor(absl::StrCat(name, " to be online"), absl::Seconds(20), [&]() -> absl::Status {
          PGH_ASSIGN_OR_RETURN(json entry, cli_->FindAgent(name));
          if (At(entry, "online") != true) return absl::UnavailableError(entry.dump());
          return absl::OkStatus();
        }));
    return &host;
  }

  PgCluster& Cluster(const std::string& name) { return *hosts_.at(name).cluster; }

  // `task submit AGENT --json TASK --wait -o json`: the TaskInfo of the finished task.
  absl::StatusOr<json> RunTask(absl::string_view agent, const json& task) {
    const std::string path = absl::StrCat(dir_->path(), "/task-", ++tasks_, ".json");
    PGH_RETURN_IF_ERROR(WriteFileAtomically(path, task.dump(), 0600));
    PGH_ASSIGN_OR_RETURN(CommandResult result, cli_->Run({"task", "submit", std::string(agent),
                                                          "--file", path, "-o", "json", "--wait"},
                                                         absl::Seconds(90)));
    std::filesystem::remove(path);
    json info = json::parse(result.stdout_text, nullptr, /*allow_exceptions=*/false);
    if (info.is_discarded()) {
      return absl::DataLossError(absl::StrCat("task submit exited ", result.exit_code,
                                              " without JSON: ", result.stderr_text));
    }
    std::cout << "task " << task.dump() << " -> " << Str(info, "state") << " "
              << At(info, "result").dump() << "\n";
    return info;
  }

  absl::StatusOr<json> Fence(absl::string_view agent) {
    return RunTask(agent, {{"sql", {{"query", "FENCE_READ_ONLY"}, {"migration_id", kMigration}}}});
  }
  absl::StatusOr<json> Unfence(absl::string_view agent) {
    return RunTask(agent, {{"sql", {{"query", "UNFENCE"}, {"migration_id", kMigration}}}});
  }

  // psql as `role` with `args` after the connection options; over TCP from inside the host's
  // namespace when `tcp`, else on the cluster's Unix socket.
  absl::StatusOr<CommandResult> Psql(const PgCluster& cluster, const std::string& role,
                                     std::vector<std::string> args, bool tcp = false) {
    std::vector<std::string> argv = {absl::StrCat(kPostgresBinDir, "/psql"),
                                     "-X",
                                     "-At",
                                     "-v",
                                     "ON_ERROR_STOP=1",
                                     "-h",
                                     tcp ? cluster.options().listen_address : cluster.socket_dir(),
                                     "-p",
                                     absl::StrCat(cluster.port()),
                                     "-U",
                                     role,
                                     "-d",
                                     "postgres"};  // a later -d in `args` wins
    argv.insert(argv.end(), args.begin(), args.end());
    CommandOptions options;
    options.launch.run_as = kPostgresOsUser;
    if (tcp) options.launch.netns = cluster.netns();
    options.timeout = absl::Seconds(30);
    return RunCommand(argv, options);
  }

  // A psql session of `role` running `sql` (a script file) in the background.
  absl::StatusOr<ChildProcess*> StartSession(const PgCluster& cluster, const std::string& role,
                                             absl::string_view sql) {
    const std::string script = absl::StrCat(scripts_dir_, "/session-", ++tasks_, ".sql");
    PGH_RETURN_IF_ERROR(WriteFileAtomically(script, sql, 0644));
    ChildProcessOptions options;
    options.argv = {absl::StrCat(kPostgresBinDir, "/psql"),
                    "-X",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    cluster.socket_dir(),
                    "-p",
                    absl::StrCat(cluster.port()),
                    "-U",
                    role,
                    "-d",
                    "postgres",
                    "-f",
                    script};
    options.launch.run_as = kPostgresOsUser;
    options.log_path = absl::StrCat(dir_->path(), "/session-", tasks_, ".log");
    PGH_ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> child, ChildProcess::Start(options));
    children_.push_back(std::move(child));
    return children_.back().get();
  }

  std::unique_ptr<TempDir> dir_;
  std::string scripts_dir_;
  std::string backups_root_;
  std::string repo_path_;
  int tasks_ = 0;
  std::unique_ptr<NetworkNamespaces> network_;
  std::unique_ptr<PghaulController> controller_;
  std::unique_ptr<PghaulCli> cli_;
  std::map<std::string, Host> hosts_;  // declared after the namespaces: destroyed first
  std::vector<std::unique_ptr<ChildProcess>> children_;
};

int Count(absl::string_view text, absl::string_view needle) {
  int count = 0;
  for (size_t at = text.find(needle); at != absl::string_view::npos;
       at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

TEST_F(CutoverTest, HardFenceRefusesOtherLoginsEndsWritersAndUnfenceRestoresTheHbaFileExactly) {
  PGH_ASSERT_OK_AND_ASSIGN(Host * host, AddHost("legacy", 11));
  PgCluster& legacy = *host->cluster;
  PGH_ASSERT_OK(
      legacy.Query("CREATE ROLE app LOGIN; CREATE ROLE repl LOGIN REPLICATION; "
                   "CREATE TABLE t (v text); GRANT ALL ON t TO app"));
  PGH_ASSERT_OK_AND_ASSIGN(const std::string hba_file, legacy.Query("SHOW hba_file"));
  PGH_ASSERT_OK_AND_ASSIGN(const std::string hba_before, ReadFile(hba_file));
  // Before the fence, app logs in both ways.
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult app_socket, Psql(legacy, "app", {"-c", "SELECT 1"}));
  ASSERT_EQ(app_socket.exit_code, 0) << app_socket.stderr_text;
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult app_tcp,
                           Psql(legacy, "app", {"-c", "SELECT 1"}, /*tcp=*/true));
  ASSERT_EQ(app_tcp.exit_code, 0) << app_tcp.stderr_text;
  const std::vector<std::string> physical = {"-d", "dbname=postgres replication=true", "-c",
                                             "IDENTIFY_SYSTEM"};
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult replication, Psql(legacy, "repl", physical));
  ASSERT_EQ(replication.exit_code, 0) << replication.stderr_text;

  // A writer that turned the read-only default off for itself, mid-session when the fence comes.
  PGH_ASSERT_OK_AND_ASSIGN(ChildProcess * writer,
                           StartSession(legacy, "app",
                                        "SET default_transaction_read_only = off;\n"
                                        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE;\n"
                                        "INSERT INTO t VALUES ('before');\n"
                                        "SELECT pg_sleep(120);\n"
                                        "INSERT INTO t VALUES ('after');\n"));
  PGH_ASSERT_OK(WaitFor("the writer's first row", absl::Seconds(20), [&]() -> absl::Status {
    PGH_ASSIGN_OR_RETURN(std::string rows, legacy.Query("SELECT count(*) FROM t"));
    return rows == "1" ? absl::OkStatus() : absl::UnavailableError(rows);
  }));

  PGH_ASSERT_OK_AND_ASSIGN(json fenced, Fence("legacy"));
  ASSERT_EQ(Str(fenced, "state"), "succeeded") << fenced.dump(2);
  EXPECT_EQ(Str(fenced, "result.values.hba_block"), "added");
  EXPECT_EQ(Str(fenced, "result.values.allowed_role"), "postgres");
  EXPECT_EQ(Str(fenced, "result.values.hba_file"), hba_file);
  int terminated = 0;
  ASSERT_TRUE(absl::SimpleAtoi(Str(fenced, "result.values.terminated"), &terminated));
  EXPECT_GE(terminated, 1);

  // The writer's session is gone before its second insert, long before its sleep ends.
  PGH_ASSERT_OK_AND_ASSIGN(int exit_status, writer->WaitForExit(absl::Seconds(15)));
  EXPECT_NE(exit_status, 0);
  EXPECT_EQ(legacy.Query("SELECT string_agg(v, ',') FROM t").value_or("?"), "before");

  // New logins of any other role are refused on the socket, over TCP and for replication.
  PGH_ASSERT_OK_AND_ASSIGN(app_socket, Psql(legacy, "app", {"-c", "SELECT 1"}));
  EXPECT_NE(app_socket.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(app_socket.stderr_text, "pg_hba.conf rejects connection"))
      << app_socket.stderr_text;
  PGH_ASSERT_OK_AND_ASSIGN(app_tcp, Psql(legacy, "app", {"-c", "SELECT 1"}, /*tcp=*/true));
  EXPECT_NE(app_tcp.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(app_tcp.stderr_text, "pg_hba.conf rejects connection"))
      << app_tcp.stderr_text;
  PGH_ASSERT_OK_AND_ASSIGN(replication, Psql(legacy, "repl", physical));
  EXPECT_NE(replication.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(replication.stderr_text, "replication connection"))
      << replication.stderr_text;
  // A write through the agent's own role meets the read-only default.
  auto write = legacy.Query("INSERT INTO t VALUES ('fenced')");
  EXPECT_FALSE(write.ok());
  EXPECT_TRUE(absl::StrContains(write.status().message(), "read-only transaction"))
      << write.status();

  // The agent still runs its tasks; fencing again changes nothing and keeps one block.
  PGH_ASSERT_OK_AND_ASSIGN(json lsn, RunTask("legacy", {{"sql", {{"query", "CURRENT_WAL_LSN"}}}}));
  EXPECT_EQ(Str(lsn, "state"), "succeeded") << lsn.dump(2);
  EXPECT_FALSE(Str(lsn, "result.values.lsn").empty());
  PGH_ASSERT_OK_AND_ASSIGN(json again, Fence("legacy"));
  ASSERT_EQ(Str(again, "state"), "succeeded") << again.dump(2);
  EXPECT_EQ(Str(again, "result.values.hba_block"), "unchanged");
  PGH_ASSERT_OK_AND_ASSIGN(std::string hba_fenced, ReadFile(hba_file));
  EXPECT_EQ(Count(hba_fenced, "# BEGIN pghaul fence m1:"), 1) << hba_fenced;
  EXPECT_TRUE(absl::EndsWith(hba_fenced, hba_before));

  PGH_ASSERT_OK_AND_ASSIGN(json unfenced, Unfence("legacy"));
  ASSERT_EQ(Str(unfenced, "state"), "succeeded") << unfenced.dump(2);
  EXPECT_EQ(Str(unfenced, "result.values.hba_block_removed"), "true");
  PGH_ASSERT_OK_AND_ASSIGN(std::string hba_after, ReadFile(hba_file));
  EXPECT_EQ(hba_after, hba_before) << "pg_hba.conf is not byte-identical after unfence";

  // Both work again: app logs in and writes, and so does the agent's role.
  PGH_ASSERT_OK_AND_ASSIGN(
      app_socket, Psql(legacy, "app", {"-c", "INSERT INTO t VALUES ('app after unfence')"}));
  EXPECT_EQ(app_socket.exit_code, 0) << app_socket.stderr_text;
  PGH_ASSERT_OK_AND_ASSIGN(app_tcp, Psql(legacy, "app", {"-c", "SELECT 1"}, /*tcp=*/true));
  EXPECT_EQ(app_tcp.exit_code, 0) << app_tcp.stderr_text;
  PGH_EXPECT_OK(legacy.Query("INSERT INTO t VALUES ('postgres after unfence')"));

  // Unfencing a server without a block is fine and changes nothing.
  PGH_ASSERT_OK_AND_ASSIGN(json twice, Unfence("legacy"));
  ASSERT_EQ(Str(twice, "state"), "succeeded") << twice.dump(2);
  EXPECT_EQ(Str(twice, "result.values.hba_block_removed"), "false");
  EXPECT_EQ(ReadFile(hba_file).value_or("?"), hba_before);
}

TEST_F(CutoverTest, StandbyCutoverRecordsTheLagFencesHardAndPromotesWithinTheBudget) {
  PGH_ASSERT_OK_AND_ASSIGN(Host * source, AddHost("legacy", 11));
  PGH_ASSERT_OK_AND_ASSIGN(Host * target, AddHost("target", 12));
  PgCluster& legacy = *source->cluster;
  PGH_ASSERT_OK(
      legacy.Query("CREATE ROLE app LOGIN; CREATE TABLE counter (n int); "
                   "INSERT INTO counter SELECT generate_series(1, 1000)"));
  const std::string plan = absl::StrCat(dir_->path(), "/m1.yaml");
  PGH_ASSERT_OK(WriteFileAtomically(
      plan,
      absl::StrCat("name: m1\nsource: {agent: legacy}\ntarget:\n  agent: target\n"
                   "  data_directory: \"",
                   target->cluster->data_dir(),
                   "\"\n"
                   "  allow_overwrite: true\nstanza: main\nrepository:\n  posix: {path: \"",
                   repo_path_,
                   "\"}\n  retention_full: 1\nsource_restart_allowed: true\n"
                   "fence: read-only\ncutover: {max_lag: 64MB, max_downtime: 5m}\n"),
      0644));
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult applied, cli_->Run({"plan", "apply", plan}));
  ASSERT_EQ(applied.exit_code, 0) << applied.stderr_text;
  PGH_ASSERT_OK_AND_ASSIGN(
      CommandResult restored,
      cli_->Run({"run", "m1", "--until", "restore", "--mode", "standby"}, absl::Seconds(300)));
  ASSERT_EQ(restored.exit_code, 0) << restored.stderr_text << restored.stdout_text;
  // Written after the backup: it reaches the target only through the archive.
  PGH_ASSERT_OK(legacy.Query("INSERT INTO counter SELECT generate_series(1001, 2000)"));

  PGH_ASSERT_OK_AND_ASSIGN(
      CommandResult cutover,
      cli_->Run({"cutover", "m1", "--max-downtime", "45s"}, absl::Seconds(300)));
  std::cout << cutover.stdout_text << cutover.stderr_text;
  ASSERT_EQ(cutover.exit_code, 0) << cutover.stderr_text;

  PGH_ASSERT_OK_AND_ASSIGN(json status, cli_->RunJson({"status", "m1"}));
  EXPECT_FALSE(Str(status, "lag.source_lsn").empty()) << status.dump(2);
  EXPECT_FALSE(Str(status, "lag.target_replay_lsn").empty()) << status.dump(2);
  EXPECT_FALSE(Str(status, "lag.measured_at").empty()) << status.dump(2);
  EXPECT_FALSE(Str(status, "lag.source_last_archived_wal").empty()) << status.dump(2);
  const double downtime = At(status, "downtime_seconds").is_number()
                              ? At(status, "downtime_seconds").get<double>()
                              : -1;
  EXPECT_GT(downtime, 0.0);
  EXPECT_LT(downtime, 45.0);
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult table, cli_->Run({"status", "m1"}));
  EXPECT_TRUE(absl::StrContains(table.stdout_text, "Target replay LSN")) << table.stdout_text;
  bool budget_said = false;
  for (const json& event : At(status, "events")) {
    if (absl::StrContains(Str(event, "text"), "downtime budget 45.0 s (--max-downtime)")) {
      budget_said = true;
    }
  }
  EXPECT_TRUE(budget_said) << At(status, "events").dump(2);

  // Every row is on the promoted target; the source refuses app's logins and stays fenced.
  EXPECT_EQ(target->cluster->Query("SELECT count(*) FROM counter").value_or("?"), "2000");
  EXPECT_EQ(target->cluster->Query("SELECT pg_is_in_recovery()").value_or("?"), "f");
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult app, Psql(legacy, "app", {"-c", "SELECT 1"}));
  EXPECT_NE(app.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(app.stderr_text, "pg_hba.conf rejects connection"))
      << app.stderr_text;
}

TEST_F(CutoverTest, FenceWithoutAMigrationIdIsRefusedBeforeAnythingChanges) {
  PGH_ASSERT_OK_AND_ASSIGN(Host * host, AddHost("legacy", 11));
  PGH_ASSERT_OK_AND_ASSIGN(const std::string hba_file, host->cluster->Query("SHOW hba_file"));
  PGH_ASSERT_OK_AND_ASSIGN(const std::string hba_before, ReadFile(hba_file));
  PGH_ASSERT_OK_AND_ASSIGN(json refused,
                           RunTask("legacy", {{"sql", {{"query", "FENCE_READ_ONLY"}}}}));
  EXPECT_EQ(Str(refused, "state"), "refused") << refused.dump(2);
  EXPECT_EQ(ReadFile(hba_file).value_or("?"), hba_before);
  EXPECT_EQ(host->cluster->Query("SHOW default_transaction_read_only").value_or("?"), "off");
}

}  // namespace
}  // namespace pghaul::integration
