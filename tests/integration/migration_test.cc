// Whole migrations driven through the real `pghaul` CLI, controller and agents:
//
//   controller 198.18.0.10:7400    legacy 198.18.0.11 (PG 15, pgbench + a varied schema, archive_mode
//                                                      off as legacy hosts run: prepare-source
//                                                      turns it on with the plan's consent)
//                                  target 198.18.0.12 (PG 15, a fresh cluster the restore replaces)
//
// The repository is a posix directory both agents list in their `roots`. What is checked is
// checked independently of pghaul's own verify: pg_dump --data-only of every database on both
// sides, sequences, large objects and the materialized view read with psql, and pgBackRest's own
// logs for how often each command ran.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cli/demo_data.h"
#include "common/status_macros.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fixture/command.h"
#include "tests/integration/fixture/json_paths.h"
#include "tests/integration/fixture/network_namespaces.h"
#include "tests/integration/fixture/pg_cluster.h"
#include "tests/integration/fixture/pghaul_processes.h"
#include "tests/integration/fixture/s3_server.h"
#include "tests/integration/fixture/temp_dir.h"
#include "tests/integration/fixture/test_support.h"
#include "tests/integration/fixture/wait_for.h"

namespace pghaul::integration {
namespace {

using nlohmann::json;

constexpr int kControllerPort = 7400;
constexpr char kStanza[] = "main";
// The role the agents run application checks as (application_checks.user).
constexpr char kChecksRole[] = "pghaul_checks";
constexpr char kPgBackRest[] = "/usr/bin/pgbackrest";
// CLI exit statuses (docs/cli.md).
constexpr int kExitFailed = 1;
constexpr int kExitDataError = 65;

// The knobs of a plan the tests vary; the rest is fixed.
struct PlanSpec {
  std::string name = "m1";
  std::string source_agent = "legacy";
  std::string target_agent = "target";
  std::string target_data;  // required
  bool allow_overwrite = true;
  std::string stanza = kStanza;
  std::string repository;  // the YAML under `repository:`, indented by 2; required
  std::string compress_type = "lz4";
  int process_max = 2;
  std::vector<std::string> checks;
  std::string extra;  // appended as is
};

std::string PlanYaml(const PlanSpec& spec) {
  std::string yaml = absl::StrCat(
      "# written by migration_test\n", "name: ", spec.name, "\n", "source: {agent: ",
      spec.source_agent, "}\n", "target:\n", "  agent: ", spec.target_agent, "\n",
      "  data_directory: \"", spec.target_data, "\"\n", "  allow_overwrite: ",
      spec.allow_overwrite ? "true" : "false", "\n", "stanza: ", spec.stanza, "\n",
      "repository:\n", spec.repository, "  retention_full: 1\n", "backup: {process_max: ",
      spec.process_max, ", compress_type: ", spec.compress_type, ", type: full}\n",
      "source_restart_allowed: true\n", "fence: read-only\n",
      "cutover: {max_lag: 64MB, max_downtime: 60s, verify_checksums: true}\n");
  if (!spec.checks.empty()) {
    absl::StrAppend(&yaml, "checks:\n");
    for (const std::string& check : spec.checks) absl::StrAppend(&yaml, "  - \"", check, "\"\n");
  }
  absl::StrAppend(&yaml, spec.extra);
  return yaml;
}

// How often pgBackRest logged "<command> command begin" in a log file ("" when absent: 0).
int CommandBegins(const std::string& log_path, absl::string_view command) {
  std::ifstream in(log_path);
  std::string line;
  int count = 0;
  const std::string needle = absl::StrCat(" ", command, " command begin");
  while (std::getline(in, line)) {
    if (absl::StrContains(line, needle)) ++count;
  }
  return count;
}

// "" when equal; else the first line that differs, on both sides, for a failure message.
std::string FirstDifference(const std::string& expected, const std::string& actual) {
  if (expected == actual) return "";
  std::vector<absl::string_view> a = absl::StrSplit(expected, '\n');
  std::vector<absl::string_view> b = absl::StrSplit(actual, '\n');
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    absl::string_view left = i < a.size() ? a[i] : "<end>";
    absl::string_view right = i < b.size() ? b[i] : "<end>";
    if (left != right) {
      return absl::StrCat("line ", i + 1, ": expected '", left.substr(0, 200), "', got '",
                          right.substr(0, 200), "'");
    }
  }
  return "same lines, different bytes";
}

bool Settled(absl::string_view state) {
  return state == "ready" || state == "completed" || state == "failed" || state == "aborted" ||
         state == "planned";
}

const json* Phase(const json& status, absl::string_view name) {
  const json phases = At(status, "phases");
  if (!phases.is_array()) return nullptr;
  for (const json& phase : status["phases"]) {
    if (Str(phase, "name") == name) return &phase;
  }
  return nullptr;
}

std::string PhaseState(const json& status, absl::string_view name) {
  const json* phase = Phase(status, name);
  return phase == nullptr ? "absent" : Str(*phase, "state");
}

class MigrationTest : public ::testing::Test {
 protected:
  struct Host {
    std::unique_ptr<PgCluster> cluster;  // null for an agent beside another host's cluster
    std::unique_ptr<PghaulAgent> agent;  // declared last: destroyed before its cluster
  };

  void SetUp() override {
    RequireRoot();
    if (HasFatalFailure()) return;
    PGH_ASSERT_OK_AND_ASSIGN(dir_, TempDir::Create("pghaul-migration-"));
    PGH_ASSERT_OK_AND_ASSIGN(backups_root_, dir_->MakeSubdir("backups", kPostgresOsUser, 0750));
    PGH_ASSERT_OK_AND_ASSIGN(repo_path_, dir_->MakeSubdir("backups/repo", kPostgresOsUser, 0750));
    PGH_ASSERT_OK_AND_ASSIGN(plans_dir_, dir_->MakeSubdir("plans", "", 0700));
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
        for (const char* command : {"backup", "restore", "stanza-create"}) {
          logs.push_back(PgBackRestLog(name, command));
        }
      }
      if (host.cluster != nullptr) logs.push_back(host.cluster->log_path());
    }
    PrintLogTails(logs);
  }

  std::string ControllerAddress() const {
    return absl::StrCat(network_->Address("controller"), ":", kControllerPort);
  }
  std::string AgentDir(absl::string_view name) const {
    return absl::StrCat(dir_->path(), "/agent-", name);
  }
  // pgBackRest's log of `command` on agent `name`'s host for migration m1.
  std::string PgBackRestLog(absl::string_view name, absl::string_view command,
                            absl::string_view migration = "m1") const {
    return absl::StrCat(AgentDir(name), "/state/pgbackrest/", migration, "/log/", kStanza, "-",
                        command, ".log");
  }

  absl::Status StartAgent(const std::string& name, Host& host, AgentOptions options) {
    options.roots = {backups_root_};
    // Application checks run as a role of their own (created by the tests that use checks).
    absl::StrAppend(&options.extra_yaml, "application_checks: {user: ", kChecksRole, "}\n");
    auto agent = PghaulAgent::Create(AgentDir(name), options);
    if (!agent.ok()) return agent.status();
    host.agent = *std::move(agent);
    if (absl::Status s = host.agent->Start(); !s.ok()) return s;
    return WaitFor(absl::StrCat(name, " to be online"), absl::Seconds(20), [&]() -> absl::Status {
      auto entry = cli_->FindAgent(name);
      if (!entry.ok()) return entry.status();
      if (At(*entry, "online") != true) return absl::UnavailableError(entry->dump());
      return absl::OkStatus();
    });
  }

  // A host namespace with a running PostgreSQL 15 cluster (no WAL archiving) and its agent.
  absl::StatusOr<Host*> AddHost(const std::string& name, int octet) {
    auto netns = network_->AddHost(name, octet);
    if (!netns.ok()) return netns.status();
    Host& host = hosts_[name];
    PgClusterOptions pg;
    pg.name = name;
    pg.netns = *netns;
    pg.listen_address = network_->Address(name);
    auto cluster = PgCluster::Create(dir_->path(), pg);
    if (!cluster.ok()) return cluster.status();
    host.cluster = *std::move(cluster);
    if (absl::Status s = host.cluster->Start(); !s.ok()) return s;
    PGH_RETURN_IF_ERROR(
        StartAgent(name, host, AgentOptions::ForCluster(name, ControllerAddress(), *host.cluster)));
    return &host;
  }

  PgCluster& Cluster(const std::string& name) { return *hosts_.at(name).cluster; }

  // Runs a psql script file on `cluster` as postgres, stopping at the first error.
  absl::Status RunSqlScript(const PgCluster& cluster, absl::string_view sql) {
    const std::string path = absl::StrCat(dir_->path(), "/script-", ++scripts_, ".sql");
    PGH_RETURN_IF_ERROR(WriteFile(path, sql));
    std::filesystem::permissions(path, std::filesystem::perms::owner_read |
                                           std::filesystem::perms::others_read);
    CommandOptions options;
    options.launch.run_as = kPostgresOsUser;
    options.timeout = absl::Seconds(120);
    return RunChecked({absl::StrCat(kPostgresBinDir, "/psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                       "-h", cluster.socket_dir(), "-p", absl::StrCat(cluster.port()), "-U",
                       "postgres", "-d", "postgres", "-f", path},
                      options)
        .status();
  }

  // pgbench -i -s `scale`, then the demo's varied schema (shop.*, database inventory).
  absl::Status LoadSampleData(const PgCluster& cluster, int scale) {
    CommandOptions options;
    options.launch.run_as = kPostgresOsUser;
    options.timeout = absl::Seconds(300);
    const absl::Time start = absl::Now();
    PGH_RETURN_IF_ERROR(RunChecked({absl::StrCat(kPostgresBinDir, "/pgbench"), "-i", "-q", "-s",
                                    absl::StrCat(scale), "-h", cluster.socket_dir(), "-p",
                                    absl::StrCat(cluster.port()), "-U", "postgres", "postgres"},
                                   options)
                            .status());
    PGH_RETURN_IF_ERROR(RunSqlScript(cluster, cli::DemoSampleSql()));
    std::cout << "sample data (pgbench -s " << scale << " + schema shop) loaded in "
              << absl::Now() - start << "\n";
    return absl::OkStatus();
  }

  // pg_dump --data-only of `database`, without the sequence values (a physical copy may be
  // ahead; Sequences() compares them) and without unlogged tables' data (not in the WAL).
  absl::StatusOr<std::string> DumpData(const PgCluster& cluster, absl::string_view database) {
    CommandOptions options;
    options.launch.run_as = kPostgresOsUser;
    options.timeout = absl::Seconds(300);
    // Into a file: the fixture keeps only the start of a long output.
    PGH_ASSIGN_OR_RETURN(std::string dumps, dir_->MakeSubdir("dumps", kPostgresOsUser, 0700));
    const std::string path = absl::StrCat(dumps, "/", ++dumps_, ".sql");
    PGH_RETURN_IF_ERROR(RunChecked({absl::StrCat(kPostgresBinDir, "/pg_dump"), "--data-only",
                                    "--no-unlogged-table-data", "-f", path, "-h",
                                    cluster.socket_dir(), "-p", absl::StrCat(cluster.port()), "-U",
                                    "postgres", std::string(database)},
                                   options)
                            .status());
    auto dump = ReadFile(path);
    std::filesystem::remove(path);
    if (!dump.ok()) return dump.status();
    std::string kept;
    kept.reserve(dump->size());
    for (absl::string_view line : absl::StrSplit(*dump, '\n')) {
      if (absl::StartsWith(line, "SELECT pg_catalog.setval(")) continue;
      // pg_dump 15.14+ brackets its output with a random key (psql's \restrict).
      if (absl::StartsWith(line, "\\restrict ") || absl::StartsWith(line, "\\unrestrict ")) {
        continue;
      }
      kept.append(line.data(), line.size());
      kept.push_back('\n');
    }
    return kept;
  }

  // "schema.name=last_value" for every sequence of `database`, one per line.
  absl::StatusOr<std::map<std::string, int64_t>> Sequences(const PgCluster& cluster,
                                                           absl::string_view database) {
    auto text = cluster.Query(
        "SELECT schemaname || '.' || sequencename || '=' || coalesce(last_value, 0) "
        "FROM pg_sequences ORDER BY 1",
        database);
    if (!text.ok()) return text.status();
    std::map<std::string, int64_t> values;
    for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
      std::pair<std::string, std::string> kv = absl::StrSplit(line, '=');
      int64_t value = 0;
      if (!absl::SimpleAtoi(kv.second, &value)) {
        return absl::InternalError(absl::StrCat("bad sequence line: ", line));
      }
      values[kv.first] = value;
    }
    return values;
  }

  absl::StatusOr<std::string> WritePlan(const PlanSpec& spec) {
    const std::string path = absl::StrCat(plans_dir_, "/", spec.name, ".yaml");
    PGH_RETURN_IF_ERROR(WriteFile(path, PlanYaml(spec)));
    return path;
  }

  PlanSpec PosixPlan(absl::string_view name = "m1") {
    PlanSpec spec;
    spec.name = std::string(name);
    spec.target_data = hosts_.count("target") > 0 ? Cluster("target").data_dir() : "";
    spec.repository = absl::StrCat("  posix: {path: \"", repo_path_, "\"}\n");
    return spec;
  }

  // An S3 server on a host "s3" of its own, keeping its files in the test's directory.
  absl::StatusOr<std::unique_ptr<S3Server>> StartS3(bool allow_mismatched_signatures = false) {
    PGH_ASSIGN_OR_RETURN(std::string netns, network_->AddHost("s3", 13));
    S3ServerOptions options;
    options.netns = netns;
    options.address = network_->Address("s3");
    options.dir = absl::StrCat(dir_->path(), "/s3");
    options.allow_mismatched_signatures = allow_mismatched_signatures;
    return S3Server::Start(options);
  }

  // The plan's `repository:` YAML for `s3`, its key pair read from `secrets_file` (entries
  // s3_key and s3_key_secret).
  static std::string S3Repository(const S3Server& s3, const std::string& secrets_file) {
    return absl::StrCat(
        "  s3:\n", "    endpoint: \"", s3.endpoint(), "\"\n", "    port: ", s3.port(), "\n",
        "    bucket: ", s3.bucket(), "\n", "    region: ", kS3ServerRegion, "\n",
        "    uri_style: path\n", "    path: /pghaul\n",
        // pgBackRest 2.45 does not match IP addresses in certificates.
        "    verify_tls: false\n", "    key_from: {file: \"", secrets_file, "\", key: s3_key}\n",
        "    secret_from: {file: \"", secrets_file, "\", key: s3_key_secret}\n");
  }

  absl::StatusOr<CommandResult> Cli(const std::vector<std::string>& args,
                                    absl::Duration timeout = absl::Seconds(60)) {
    auto result = cli_->Run(args, timeout);
    if (result.ok()) {
      std::cout << "$ pghaul " << absl::StrJoin(args, " ") << "  -> exit " << result->exit_code
                << "\n";
    }
    return result;
  }

  absl::Status ApplyPlan(const PlanSpec& spec) {
    PGH_ASSIGN_OR_RETURN(std::string path, WritePlan(spec));
    PGH_ASSIGN_OR_RETURN(CommandResult applied, Cli({"plan", "apply", path}));
    if (applied.exit_code != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("plan apply exited ", applied.exit_code, ": ", applied.stderr_text));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<json> Status(absl::string_view migration = "m1") {
    return cli_->RunJson({"status", std::string(migration)});
  }

  // Polls `status` until the migration is no longer running or scheduled.
  absl::StatusOr<json> WaitUntilSettled(absl::string_view migration, absl::Duration timeout) {
    json last;
    PGH_RETURN_IF_ERROR(WaitFor(
        absl::StrCat("migration ", migration, " to settle"), timeout,
        [&]() -> absl::Status {
          auto status = Status(migration);
          if (!status.ok()) return status.status();
          last = *std::move(status);
          if (!Settled(Str(last, "state"))) {
            return absl::UnavailableError(absl::StrCat("state ", Str(last, "state"), ", phase ",
                                                       Str(last, "phase")));
          }
          return absl::OkStatus();
        },
        absl::Milliseconds(250)));
    return last;
  }

  absl::Status RestartController() {
    PGH_RETURN_IF_ERROR(controller_->process()->Kill(SIGKILL));
    std::cout << "controller killed with SIGKILL; starting it again\n";
    return controller_->Start();
  }

  std::unique_ptr<TempDir> dir_;
  std::string backups_root_;
  std::string repo_path_;
  std::string plans_dir_;
  int scripts_ = 0;
  int dumps_ = 0;
  std::unique_ptr<NetworkNamespaces> network_;
  std::unique_ptr<PghaulController> controller_;
  std::unique_ptr<PghaulCli> cli_;
  std::map<std::string, Host> hosts_;  // declared after the namespaces: destroyed first
};

// What the source held before the migration, to compare the target against.
struct Snapshot {
  std::map<std::string, std::string> dumps;  // database -> pg_dump --data-only
  std::map<std::string, std::map<std::string, int64_t>> sequences;
  std::string matview;         // the materialized view's rows, in order
  std::string large_object;    // md5 of the large object's content
  std::string system_id;
};

constexpr char kMatviewQuery[] =
    "SELECT md5(string_agg(s::text, ',' ORDER BY s::text)) FROM shop.sales_per_product s";
constexpr char kLargeObjectQuery[] =
    "SELECT md5(lo_get(content)) FROM shop.documents WHERE id = 1";
constexpr char kSystemIdQuery[] = "SELECT system_identifier FROM pg_control_system()";

TEST_F(MigrationTest, FullRunMovesEveryKindOfDataAndPromotesTheTarget) {
  PGH_ASSERT_OK(AddHost("legacy", 11).status());
  PGH_ASSERT_OK(AddHost("target", 12).status());
  PgCluster& legacy = Cluster("legacy");
  PgCluster& target = Cluster("target");
  PGH_ASSERT_OK(LoadSampleData(legacy, 10));
  // The application check's role, on the source: the backup carries it to the target.
  PGH_ASSERT_OK(legacy.Query(absl::StrCat("CREATE ROLE ", kChecksRole,
                                          " LOGIN; GRANT SELECT ON pgbench_accounts TO ",
                                          kChecksRole)));

  Snapshot before;
  for (const char* database : {"postgres", "inventory"}) {
    PGH_ASSERT_OK_AND_ASSIGN(before.dumps[database], DumpData(legacy, database));
    PGH_ASSERT_OK_AND_ASSIGN(before.sequences[database], Sequences(legacy, database));
  }
  ASSERT_GT(before.dumps["postgres"].size(), 50u << 20) << "pgbench data missing from the dump";
  PGH_ASSERT_OK_AND_ASSIGN(before.matview, legacy.Query(kMatviewQuery));
  PGH_ASSERT_OK_AND_ASSIGN(before.large_object, legacy.Query(kLargeObjectQuery));
  PGH_ASSERT_OK_AND_ASSIGN(before.system_id, legacy.Query(kSystemIdQuery));

  // An application check: the plan's SQL runs on both sides and must give the same result.
  const std::string check = absl::StrCat(plans_dir_, "/accounts.sql");
  PGH_ASSERT_OK(WriteFile(check, "SELECT count(*), sum(abalance) FROM pgbench_accounts\n"));
  PlanSpec spec = PosixPlan();
  spec.checks = {check};
  PGH_ASSERT_OK(ApplyPlan(spec));

  const absl::Time start = absl::Now();
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult run, Cli({"run", "m1"}, absl::Seconds(600)));
  std::cout << "pghaul run m1 took " << absl::Now() - start << "\n" << run.stdout_text;
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;

  PGH_ASSERT_OK_AND_ASSIGN(json status, Status());
  EXPECT_EQ(Str(status, "state"), "completed") << status.dump(2);
  for (const char* phase :
       {"preflight", "prepare-source", "backup", "restore", "verify", "cutover", "finish"}) {
    EXPECT_EQ(PhaseState(status, phase), "succeeded") << phase;
  }
  EXPECT_EQ(Str(status, "restore_mode"), "standby");
  EXPECT_GT(Int(status, "backup_bytes"), 100 << 20);
  const double downtime = At(status, "downtime_seconds").is_number()
                              ? At(status, "downtime_seconds").get<double>()
                              : -1;
  EXPECT_GT(downtime, 0.0);
  EXPECT_LT(downtime, 60.0);
  std::cout << "downtime " << downtime << " s\n";
  EXPECT_EQ(At(status, "verify.passed"), true) << At(status, "verify").dump(2);
  // The unlogged table is the one expected difference, and it is not a failure.
  std::set<std::string> differences;
  for (const json& d : At(status, "verify.differences")) {
    differences.insert(absl::StrCat(Str(d, "table"), ":", Str(d, "status")));
  }
  EXPECT_EQ(differences, (std::set<std::string>{"postgres/shop.sessions:expected-empty"}));
  bool check_reported = false;
  for (const json& c : At(status, "verify.application_checks")) {
    if (absl::StrContains(Str(c, "name"), "accounts")) {
      check_reported = true;
      EXPECT_EQ(Str(c, "status"), "pass") << c.dump();
    }
  }
  EXPECT_TRUE(check_reported) << At(status, "verify").dump(2);

  // The target, checked without pghaul: promoted, writable, the same data.
  EXPECT_EQ(target.Query("SELECT pg_is_in_recovery()").value_or("?"), "f");
  EXPECT_EQ(target.Query(kSystemIdQuery).value_or("?"), before.system_id);
  for (const char* database : {"postgres", "inventory"}) {
    PGH_ASSERT_OK_AND_ASSIGN(std::string dump, DumpData(target, database));
    EXPECT_EQ(FirstDifference(before.dumps[database], dump), "")
        << database << ": pg_dump --data-only differs";
    PGH_ASSERT_OK_AND_ASSIGN(auto sequences, Sequences(target, database));
    ASSERT_EQ(sequences.size(), before.sequences[database].size()) << database;
    for (const auto& [name, value] : before.sequences[database]) {
      // A physical copy replays the sequence's WAL record, written up to 32 values ahead.
      EXPECT_GE(sequences[name], value) << name;
      EXPECT_LE(sequences[name], value + 32 * 10) << name;
    }
  }
  EXPECT_EQ(target.Query(kMatviewQuery).value_or("?"), before.matview);
  EXPECT_EQ(target.Query(kLargeObjectQuery).value_or("?"), before.large_object);
  EXPECT_EQ(target.Query("SELECT count(*) FROM shop.sessions").value_or("?"), "0");
  PGH_EXPECT_OK(target.Query("CREATE TABLE after_cutover (id int); "
                             "INSERT INTO after_cutover VALUES (1)")
                    .status());

  // The source is left fenced: read-only by default, so nothing written there would be lost.
  EXPECT_EQ(legacy.Query("SHOW default_transaction_read_only").value_or("?"), "on");
  auto write = legacy.Query("INSERT INTO pgbench_history (tid, bid, aid, delta) VALUES (1,1,1,1)");
  EXPECT_FALSE(write.ok()) << "the fenced source accepted a write";

  // Every pgBackRest command that changes something ran exactly once.
  EXPECT_EQ(CommandBegins(PgBackRestLog("legacy", "stanza-create"), "stanza-create"), 1);
  EXPECT_EQ(CommandBegins(PgBackRestLog("legacy", "backup"), "backup"), 1);
  EXPECT_EQ(CommandBegins(PgBackRestLog("target", "restore"), "restore"), 1);
}

TEST_F(MigrationTest, KilledControllerResumesWithoutRunningAPgBackRestCommandTwice) {
  PGH_ASSERT_OK(AddHost("legacy", 11).status());
  PGH_ASSERT_OK(AddHost("target", 12).status());
  PgCluster& legacy = Cluster("legacy");
  PgCluster& target = Cluster("target");
  PGH_ASSERT_OK(LoadSampleData(legacy, 10));
  PGH_ASSERT_OK_AND_ASSIGN(const std::string accounts,
                           legacy.Query("SELECT count(*), sum(abalance) FROM pgbench_accounts"));
  // gz with one process: a backup of several seconds, so the kill lands in the middle of it.
  PlanSpec spec = PosixPlan();
  spec.compress_type = "gz";
  spec.process_max = 1;
  PGH_ASSERT_OK(ApplyPlan(spec));

  PGH_ASSERT_OK_AND_ASSIGN(CommandResult started,
                           Cli({"run", "m1", "--until", "restore", "--mode", "standby",
                                "--detach"}));
  ASSERT_EQ(started.exit_code, 0) << started.stderr_text;
  PGH_ASSERT_OK(WaitFor("the backup to run", absl::Seconds(120), [&]() -> absl::Status {
    auto status = Status();
    if (!status.ok()) return status.status();
    if (PhaseState(*status, "backup") == "running" &&
        absl::StrContains(Str(*status, "current_task_id"), ".backup.")) {
      return absl::OkStatus();
    }
    return absl::UnavailableError(absl::StrCat("phase ", Str(*status, "phase"), " ",
                                               Str(*status, "current_task_id")));
  }));
  EXPECT_EQ(CommandBegins(PgBackRestLog("legacy", "backup"), "backup"), 1);
  PGH_ASSERT_OK(RestartController());

  PGH_ASSERT_OK_AND_ASSIGN(json status, WaitUntilSettled("m1", absl::Seconds(300)));
  ASSERT_EQ(Str(status, "state"), "ready") << status.dump(2);
  EXPECT_EQ(PhaseState(status, "backup"), "succeeded");
  EXPECT_EQ(PhaseState(status, "restore"), "succeeded");
  EXPECT_EQ(Int(*Phase(status, "backup"), "attempt"), 1) << "the backup phase started again";
  // The restarted controller took the running backup over rather than starting one.
  EXPECT_TRUE(absl::StrContains(ReadFile(controller_->log_path()).value_or(""),
                                "backup resumed after a controller restart"));

  // Killed again between restore and verify: the rest of the run picks up at verify.
  PGH_ASSERT_OK(RestartController());
  PGH_ASSERT_OK_AND_ASSIGN(json reloaded, Status());
  EXPECT_EQ(Str(reloaded, "state"), "ready") << reloaded.dump(2);
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult rest, Cli({"run", "m1"}, absl::Seconds(600)));
  ASSERT_EQ(rest.exit_code, 0) << rest.stdout_text << rest.stderr_text;
  PGH_ASSERT_OK_AND_ASSIGN(json done, Status());
  EXPECT_EQ(Str(done, "state"), "completed") << done.dump(2);

  EXPECT_EQ(CommandBegins(PgBackRestLog("legacy", "stanza-create"), "stanza-create"), 1);
  EXPECT_EQ(CommandBegins(PgBackRestLog("legacy", "backup"), "backup"), 1);
  EXPECT_EQ(CommandBegins(PgBackRestLog("target", "restore"), "restore"), 1);
  EXPECT_EQ(target.Query("SELECT pg_is_in_recovery()").value_or("?"), "f");
  EXPECT_EQ(target.Query("SELECT count(*), sum(abalance) FROM pgbench_accounts").value_or("?"),
            accounts);
}

TEST_F(MigrationTest, AbortAfterRestoreLeavesTheSourceAsItWasAndStopsTheTarget) {
  PGH_ASSERT_OK(AddHost("legacy", 11).status());
  PGH_ASSERT_OK(AddHost("target", 12).status());
  PgCluster& legacy = Cluster("legacy");
  PgCluster& target = Cluster("target");
  PGH_ASSERT_OK(LoadSampleData(legacy, 1));
  const char* kSettings =
      "SELECT string_agg(name || '=' || setting, ',' ORDER BY name) FROM pg_settings "
      "WHERE name IN ('archive_mode', 'archive_command', 'default_transaction_read_only')";
  PGH_ASSERT_OK_AND_ASSIGN(const std::string settings_before, legacy.Query(kSettings));
  PGH_ASSERT_OK_AND_ASSIGN(const std::string dump_before, DumpData(legacy, "postgres"));
  PGH_ASSERT_OK(ApplyPlan(PosixPlan()));

  PGH_ASSERT_OK_AND_ASSIGN(CommandResult restored,
                           Cli({"run", "m1", "--until", "restore"}, absl::Seconds(300)));
  ASSERT_EQ(restored.exit_code, 0) << restored.stdout_text << restored.stderr_text;
  ASSERT_EQ(legacy.Query("SHOW archive_mode").value_or("?"), "on");
  ASSERT_TRUE(target.IsRunning());

  PGH_ASSERT_OK_AND_ASSIGN(CommandResult aborted, Cli({"abort", "m1"}, absl::Seconds(120)));
  EXPECT_EQ(aborted.exit_code, 0) << aborted.stdout_text << aborted.stderr_text;
  PGH_ASSERT_OK_AND_ASSIGN(json status, Status());
  EXPECT_EQ(Str(status, "state"), "aborted") << status.dump(2);

  EXPECT_EQ(legacy.Query(kSettings).value_or("?"), settings_before);
  PGH_ASSERT_OK_AND_ASSIGN(std::string dump_after, DumpData(legacy, "postgres"));
  EXPECT_EQ(FirstDifference(dump_before, dump_after), "") << "the source's data changed";
  PGH_EXPECT_OK(legacy.Query("INSERT INTO pgbench_history (tid, bid, aid, delta) "
                             "VALUES (1, 1, 1, 1)")
                    .status());
  EXPECT_FALSE(target.IsRunning()) << "the aborted migration left the target running";
}

// The same migration through an S3 repository: s3rver over HTTPS in a namespace of its own, the
// "repository host". The key pair comes from a secrets file on the controller host; the source's
// archive_command and the standby target's restore_command find it in the agents' secrets file.
TEST_F(MigrationTest, FullRunThroughAnS3Repository) {
  PGH_ASSERT_OK(AddHost("legacy", 11).status());
  PGH_ASSERT_OK(AddHost("target", 12).status());
  PGH_ASSERT_OK_AND_ASSIGN(std::unique_ptr<S3Server> s3, StartS3());
  PgCluster& legacy = Cluster("legacy");
  PgCluster& target = Cluster("target");
  PGH_ASSERT_OK(LoadSampleData(legacy, 2));
  PGH_ASSERT_OK_AND_ASSIGN(const std::string before, DumpData(legacy, "postgres"));

  const std::string secrets = absl::StrCat(plans_dir_, "/secrets.yaml");
  PGH_ASSERT_OK(WriteFile(secrets, absl::StrCat("s3_key: ", s3->access_key(), "\n",
                                                "s3_key_secret: ", s3->secret_key(), "\n")));
  std::filesystem::permissions(secrets, std::filesystem::perms::owner_read |
                                            std::filesystem::perms::owner_write);
  PlanSpec spec = PosixPlan();
  spec.repository = S3Repository(*s3, secrets);
  PGH_ASSERT_OK(ApplyPlan(spec));

  PGH_ASSERT_OK_AND_ASSIGN(CommandResult run, Cli({"run", "m1"}, absl::Seconds(600)));
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  PGH_ASSERT_OK_AND_ASSIGN(json status, Status());
  EXPECT_EQ(Str(status, "state"), "completed") << status.dump(2);
  EXPECT_TRUE(absl::StartsWith(Str(status, "repository"), "s3")) << Str(status, "repository");
  EXPECT_EQ(At(status, "verify.passed"), true) << At(status, "verify").dump(2);

  EXPECT_EQ(target.Query("SELECT pg_is_in_recovery()").value_or("?"), "f");
  PGH_ASSERT_OK_AND_ASSIGN(std::string after, DumpData(target, "postgres"));
  EXPECT_EQ(FirstDifference(before, after), "");
  // The backup and the WAL really went through the S3 server.
  int objects = 0;
  bool wal = false;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(s3->data_dir())) {
    if (!entry.is_regular_file()) continue;
    ++objects;
    if (absl::StrContains(entry.path().string(), "/archive/")) wal = true;
  }
  EXPECT_GT(objects, 100);
  EXPECT_TRUE(wal) << "no WAL archived in the S3 repository";
  // The secret is nowhere in the controller's journal or logs.
  for (const std::string& path : {controller_->log_path(), hosts_["legacy"].agent->log_path(),
                                  hosts_["target"].agent->log_path()}) {
    EXPECT_FALSE(absl::StrContains(ReadFile(path).value_or(""), s3->secret_key()))
        << "the S3 secret is in " << path;
  }
}

// Every /proc/<pid>/cmdline on the machine that holds one of `needles`, as "<pid>: <cmdline>".
std::vector<std::string> CommandLinesHolding(const std::vector<std::string>& needles) {
  std::vector<std::string> found;
  std::error_code error;
  for (auto it = std::filesystem::directory_iterator("/proc", error);
       !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
    const std::string pid = it->path().filename().string();
    if (pid.empty() || !std::all_of(pid.begin(), pid.end(), ::isdigit)) continue;
    const std::string cmdline = ReadProcFile((it->path() / "cmdline").string());
    for (const std::string& needle : needles) {
      if (absl::StrContains(cmdline, needle)) {
        found.push_back(absl::StrCat(pid, ": ", absl::StrReplaceAll(cmdline, {{std::string(1, '\0'), " "}})));
      }
    }
  }
  return found;
}

// Issue 7's secrets search: a full migration through S3 into an encrypted repository with
// distinctive secrets, /proc/*/cmdline sampled all along, then every file the run left in the
// test's directory (logs, the controller's SQLite journal, configs, PostgreSQL's data and logs,
// pgBackRest's logs and spool, the repository's objects) searched. A secret may only be in the
// plan's own secrets file and in the agents' conf.d/secrets.conf, each 0600.
TEST_F(MigrationTest, SecretsAreOnlyInTheirPrivateFilesDuringAndAfterAnS3Migration) {
  const std::string s3_secret = "pghaul-s3-secret-4c1d9e7a2b";
  const std::string cipher = "pghaul-cipher-pass-8f3e6a0d5c";
  PGH_ASSERT_OK(AddHost("legacy", 11).status());
  PGH_ASSERT_OK(AddHost("target", 12).status());
  // Our own secret key (with S3RVER's access key): any well-formed signature is accepted.
  PGH_ASSERT_OK_AND_ASSIGN(std::unique_ptr<S3Server> s3,
                           StartS3(/*allow_mismatched_signatures=*/true));
  PGH_ASSERT_OK(LoadSampleData(Cluster("legacy"), 1));

  const std::string secrets = absl::StrCat(plans_dir_, "/secrets.yaml");
  PGH_ASSERT_OK(WriteFile(secrets, absl::StrCat("s3_key: ", s3->access_key(), "\n",
                                                "s3_key_secret: ", s3_secret, "\n",
                                                "cipher: ", cipher, "\n")));
  std::filesystem::permissions(secrets, std::filesystem::perms::owner_read |
                                            std::filesystem::perms::owner_write);
  PlanSpec spec = PosixPlan();
  spec.repository = absl::StrCat(
      S3Repository(*s3, secrets),
      "  cipher: {type: aes-256-cbc, passphrase_from: {file: \"", secrets, "\", key: cipher}}\n");
  PGH_ASSERT_OK(ApplyPlan(spec));

  // The sampler sees a secret on a command line: a short-lived shell of the test's own with it as
  // its $0 (waited for by PID).
  {
    std::string arg0 = s3_secret;
    char sh[] = "/bin/sh", dash_c[] = "-c", script[] = "sleep 1";
    char* argv[] = {sh, dash_c, script, arg0.data(), nullptr};
    pid_t pid = 0;
    ASSERT_EQ(posix_spawn(&pid, "/bin/sh", nullptr, nullptr, argv, environ), 0);
    bool seen = false;
    for (int i = 0; i < 50 && !seen; ++i) {
      seen = !CommandLinesHolding({s3_secret}).empty();
      if (!seen) absl::SleepFor(absl::Milliseconds(10));
    }
    int wstatus = 0;
    waitpid(pid, &wstatus, 0);
    ASSERT_TRUE(seen) << "the command-line sampler does not see a secret that is there";
  }
  // Every process's command line, every 20 ms, until the run ends (at most 10 minutes).
  std::atomic<bool> done{false};
  std::vector<std::string> seen_in_cmdlines;
  int samples = 0;
  std::thread sampler([&] {
    const absl::Time until = absl::Now() + absl::Minutes(10);
    while (!done && absl::Now() < until) {
      for (std::string& hit : CommandLinesHolding({s3_secret, cipher})) {
        seen_in_cmdlines.push_back(std::move(hit));
      }
      ++samples;
      absl::SleepFor(absl::Milliseconds(20));
    }
  });
  absl::StatusOr<CommandResult> run = Cli({"run", "m1"}, absl::Seconds(600));
  done = true;
  sampler.join();
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->exit_code, 0) << run->stdout_text << run->stderr_text;
  std::cout << samples << " samples of every /proc/*/cmdline during the run\n";
  EXPECT_GT(samples, 100);
  EXPECT_EQ(seen_in_cmdlines, std::vector<std::string>{});
  for (const std::string& text : {run->stdout_text, run->stderr_text}) {
    EXPECT_FALSE(absl::StrContains(text, s3_secret) || absl::StrContains(text, cipher));
  }
  PGH_ASSERT_OK_AND_ASSIGN(json status, Status());
  EXPECT_EQ(Str(status, "state"), "completed") << status.dump(2);
  EXPECT_FALSE(absl::StrContains(status.dump(), s3_secret) ||
               absl::StrContains(status.dump(), cipher));

  // Every file left behind: only the allowed ones hold a secret, and those are 0600.
  int files = 0;
  std::vector<std::string> holding;
  for (auto it = std::filesystem::recursive_directory_iterator(
           dir_->path(), std::filesystem::directory_options::skip_permission_denied);
       it != std::filesystem::recursive_directory_iterator(); ++it) {
    if (!it->is_regular_file()) continue;
    ++files;
    const std::string path = it->path().string();
    std::ifstream in(path, std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!absl::StrContains(content, s3_secret) && !absl::StrContains(content, cipher)) continue;
    holding.push_back(path);
    const bool allowed = path == secrets || absl::EndsWith(path, "/conf.d/secrets.conf");
    EXPECT_TRUE(allowed) << "a secret is in " << path;
    const auto perms = std::filesystem::status(path).permissions();
    EXPECT_EQ(perms & (std::filesystem::perms::group_all | std::filesystem::perms::others_all),
              std::filesystem::perms::none)
        << path << " holds a secret and others may read it";
  }
  std::cout << files << " files searched; the secrets are in:\n";
  for (const std::string& path : holding) std::cout << "  " << path << "\n";
  EXPECT_GT(files, 1000);
  // The agents need them (PostgreSQL's archive-push and archive-get read them): both have them.
  EXPECT_EQ(std::count_if(holding.begin(), holding.end(),
                          [](const std::string& p) { return absl::EndsWith(p, "/secrets.conf"); }),
            2)
      << absl::StrJoin(holding, "\n");
}

// Each bad input is refused with a message that names the problem, and neither host changes.
class RefusedMigrationTest : public MigrationTest {
 protected:
  void SetUp() override {
    MigrationTest::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    PGH_ASSERT_OK(AddHost("legacy", 11).status());
    PGH_ASSERT_OK(AddHost("target", 12).status());
    PGH_ASSERT_OK(LoadSampleData(Cluster("legacy"), 1));
    PGH_ASSERT_OK_AND_ASSIGN(legacy_started_, Cluster("legacy").Query("SELECT pg_postmaster_start_time()"));
    PGH_ASSERT_OK_AND_ASSIGN(target_id_, Cluster("target").Query(kSystemIdQuery));
  }

  // Runs `pghaul preflight NAME`; expects exit 1 and returns the failing checks as
  // "name: message (fix: ...)" lines.
  std::string FailedPreflight(absl::string_view name) {
    auto result = Cli({"preflight", std::string(name)}, absl::Seconds(120));
    if (!result.ok()) return absl::StrCat("pghaul did not run: ", result.status().ToString());
    EXPECT_EQ(result->exit_code, kExitFailed) << result->stdout_text << result->stderr_text;
    auto status = Status(name);
    if (!status.ok()) return status.status().ToString();
    std::vector<std::string> failed;
    for (const json& check : At(*status, "preflight")) {
      if (Str(check, "status") == "fail") {
        failed.push_back(absl::StrCat(Str(check, "name"), ": ", Str(check, "message"),
                                      " (fix: ", Str(check, "fix"), ")"));
      }
    }
    EXPECT_EQ(Str(*status, "state"), "failed");
    return absl::StrJoin(failed, "\n");
  }

  // Neither host changed: the source was not restarted and does not archive, the target is
  // the same cluster, running; the repository holds what it held.
  void ExpectNothingChanged(const std::set<std::string>& repository_entries = {}) {
    PgCluster& legacy = Cluster("legacy");
    EXPECT_EQ(legacy.Query("SELECT pg_postmaster_start_time()").value_or("?"), legacy_started_)
        << "the source was restarted";
    EXPECT_EQ(legacy.Query("SHOW archive_mode").value_or("?"), "off");
    EXPECT_EQ(legacy.Query("SHOW default_transaction_read_only").value_or("?"), "off");
    EXPECT_EQ(Cluster("target").Query(kSystemIdQuery).value_or("?"), target_id_);
    std::set<std::string> entries;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(repo_path_)) {
      entries.insert(std::filesystem::relative(entry.path(), repo_path_).string());
    }
    EXPECT_EQ(entries, repository_entries);
  }

  std::string legacy_started_;  // the postmaster's start time: changes with a restart
  std::string target_id_;
};

TEST_F(RefusedMigrationTest, UnknownPlanKeyIsNamedAndNothingIsPlanned) {
  PlanSpec spec = PosixPlan();
  spec.extra = "fencing: stop\n";
  PGH_ASSERT_OK_AND_ASSIGN(std::string path, WritePlan(spec));
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult applied, Cli({"plan", "apply", path}));
  EXPECT_EQ(applied.exit_code, kExitDataError);
  EXPECT_TRUE(absl::StrContains(applied.stderr_text, "unknown key 'fencing'"))
      << applied.stderr_text;
  EXPECT_TRUE(absl::StrContains(applied.stderr_text, "fence")) << "no hint at the right key";
  PGH_ASSERT_OK_AND_ASSIGN(json migrations, cli_->RunJson({"migrations"}));
  EXPECT_TRUE(At(migrations, "migrations").is_null() || At(migrations, "migrations").empty())
      << migrations.dump();
  ExpectNothingChanged();
}

TEST_F(RefusedMigrationTest, UnknownAgentIsRefusedWithThePlan) {
  PlanSpec spec = PosixPlan("to-nowhere");
  spec.target_agent = "no-such-agent";
  PGH_ASSERT_OK_AND_ASSIGN(std::string path, WritePlan(spec));
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult applied, Cli({"plan", "apply", path}));
  EXPECT_EQ(applied.exit_code, kExitDataError);
  EXPECT_TRUE(absl::StrContains(applied.stderr_text, "target.agent: no agent 'no-such-agent'"))
      << applied.stderr_text;
  EXPECT_TRUE(absl::StrContains(applied.stderr_text, "known: legacy, target"))
      << applied.stderr_text;
  auto status = Status("to-nowhere");
  EXPECT_FALSE(status.ok()) << "a refused plan was kept: " << status->dump();
  ExpectNothingChanged();
}

TEST_F(RefusedMigrationTest, TargetWithoutAllowOverwriteFailsPreflight) {
  PlanSpec spec = PosixPlan("no-consent");
  spec.allow_overwrite = false;
  PGH_ASSERT_OK(ApplyPlan(spec));
  std::string failed = FailedPreflight("no-consent");
  EXPECT_TRUE(absl::StrContains(failed, "target-overwrite")) << failed;
  EXPECT_TRUE(absl::StrContains(failed, "allow_overwrite")) << failed;
  // A run stops at the same check and goes no further.
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult run, Cli({"run", "no-consent"}, absl::Seconds(120)));
  EXPECT_EQ(run.exit_code, kExitFailed);
  ExpectNothingChanged();
}

TEST_F(RefusedMigrationTest, StanzaHoldingAnotherClustersBackupsFailsPreflight) {
  // Another cluster took the stanza first: its archive.info and backup.info name its system id.
  PgClusterOptions options;
  options.name = "other";
  options.port = 5440;
  PGH_ASSERT_OK_AND_ASSIGN(std::unique_ptr<PgCluster> other,
                           PgCluster::Create(dir_->path(), options));
  PGH_ASSERT_OK(other->Start());
  PGH_ASSERT_OK_AND_ASSIGN(std::string other_id, other->Query(kSystemIdQuery));
  PGH_ASSERT_OK_AND_ASSIGN(std::string other_run,
                           dir_->MakeSubdir("other-pgbackrest", kPostgresOsUser, 0700));
  CommandOptions run;
  run.launch.run_as = kPostgresOsUser;
  PGH_ASSERT_OK(RunChecked({kPgBackRest, absl::StrCat("--stanza=", kStanza),
                            absl::StrCat("--repo1-path=", repo_path_),
                            absl::StrCat("--pg1-path=", other->data_dir()),
                            absl::StrCat("--pg1-socket-path=", other->socket_dir()),
                            absl::StrCat("--pg1-port=", other->port()),
                            absl::StrCat("--log-path=", other_run),
                            absl::StrCat("--lock-path=", other_run), "--log-level-console=warn",
                            "stanza-create"},
                           run)
                    .status());
  std::set<std::string> repository;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(repo_path_)) {
    repository.insert(std::filesystem::relative(entry.path(), repo_path_).string());
  }
  ASSERT_FALSE(repository.empty());

  PGH_ASSERT_OK(ApplyPlan(PosixPlan("taken-stanza")));
  std::string failed = FailedPreflight("taken-stanza");
  EXPECT_TRUE(absl::StrContains(failed, "stanza: ")) << failed;
  EXPECT_TRUE(absl::StrContains(failed, other_id)) << "the message should name the other cluster\n"
                                                   << failed;
  ExpectNothingChanged(repository);
}

TEST_F(RefusedMigrationTest, SourceAndTargetThatAreTheSameClusterFailPreflight) {
  // A second agent beside the legacy cluster, as if the plan named the old host twice.
  Host& twin = hosts_["twin"];
  AgentOptions options =
      AgentOptions::ForCluster("twin", ControllerAddress(), Cluster("legacy"));
  PGH_ASSERT_OK(StartAgent("twin", twin, options));
  PlanSpec spec = PosixPlan("to-itself");
  spec.target_agent = "twin";
  spec.target_data = Cluster("legacy").data_dir();
  PGH_ASSERT_OK(ApplyPlan(spec));
  std::string failed = FailedPreflight("to-itself");
  EXPECT_TRUE(absl::StrContains(failed, "distinct-clusters")) << failed;
  EXPECT_TRUE(absl::StrContains(failed, "same cluster")) << failed;
  ExpectNothingChanged();
}

TEST_F(RefusedMigrationTest, DryRunPrintsWhatEachAgentWouldRunAndChangesNothing) {
  PGH_ASSERT_OK(ApplyPlan(PosixPlan("dry")));
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult dry,
                           Cli({"run", "dry", "--until", "cutover", "--dry-run"}));
  ASSERT_EQ(dry.exit_code, 0) << dry.stderr_text;
  std::cout << dry.stdout_text;
  // Every phase's commands, each with its agent: the archiving change and stanza-create on the
  // source, the backup, and the restore on the target.
  for (const char* expected : {"legacy", "target", "ENABLE_ARCHIVING", "stanza-create", "backup",
                               "restore", "PROMOTE"}) {
    EXPECT_TRUE(absl::StrContains(dry.stdout_text, expected))
        << "no " << expected << " in:\n" << dry.stdout_text;
  }
  PGH_ASSERT_OK_AND_ASSIGN(json status, Status("dry"));
  EXPECT_EQ(Str(status, "state"), "planned") << status.dump(2);
  ExpectNothingChanged();
}

}  // namespace
}  // namespace pghaul::integration
