// Targets managed by Patroni (docs/patroni.md), with real processes: the agent in Patroni mode
// reports and controls Patroni; preflight names what a Patroni target needs; a rehearsal restore
// hands the source's copy to Patroni (and survives Patroni killed mid-way); a standby under
// Patroni follows the source's archive and is cut over under a write load.
//
//   controller 198.18.0.10:7400   legacy 198.18.0.11   target 198.18.0.12 (PatroniTarget):
//                                 (plain PG 15, when     etcd 3.4 (:2379, v3 API only)
//                                 a test adds it)        Patroni 3.0.2 (REST :8008) managing
//                                                        PostgreSQL 15 (:5432)
//                                                        pghaul-agent (patroni: section,
//                                                        control method command)
//
// Patroni is first started by the fixture (PatroniNode); after the agent's STOP, the agent's
// START runs the same argv detached. PatroniNode's destructor ends whichever Patroni runs.
#include <signal.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fixture/acked_writer.h"
#include "tests/integration/fixture/etcd_server.h"
#include "tests/integration/fixture/json_paths.h"
#include "tests/integration/fixture/migration_fixture.h"
#include "tests/integration/fixture/patroni_node.h"
#include "tests/integration/fixture/patroni_target.h"
#include "tests/integration/fixture/test_support.h"
#include "tests/integration/fixture/wait_for.h"

namespace pghaul::integration {
namespace {

using nlohmann::json;

constexpr int kTargetOctet = 12;
constexpr char kPatroniSuperuser[] = "operator";
constexpr int kExitFailed = 1;  // docs/cli.md: the migration (here its preflight) failed

bool True(const json& document, absl::string_view path) { return At(document, path) == true; }

class PatroniTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RequireRoot();
    if (HasFatalFailure()) return;
    started_ = absl::Now();
    PGH_ASSERT_OK_AND_ASSIGN(rig_, MigrationRig::Create("pghaul-patroni-"));
    PatroniTargetOptions options;
    options.name = "target";
    options.octet = kTargetOctet;
    options.scope = "targetdb";
    options.superuser = kPatroniSuperuser;
    PGH_ASSERT_OK_AND_ASSIGN(target_, PatroniTarget::Start(*rig_, options));
    patroni_ = &target_->patroni();
    etcd_ = &target_->etcd();
  }

  void TearDown() override {
    if (HasFailure() && rig_ != nullptr) {
      std::vector<std::string> logs = rig_->LogPaths();
      if (target_ != nullptr) {
        for (const std::string& path : target_->LogPaths()) logs.push_back(path);
      }
      PrintLogTails(logs);
    }
    target_.reset();
    rig_.reset();
    std::cout << "patroni test wall time: " << absl::Now() - started_ << "\n";
  }

  // facts.patroni of the target agent, once `predicate` holds for it (facts arrive every 1 s).
  absl::StatusOr<json> WaitForPatroniFacts(absl::string_view what,
                                           const std::function<bool(const json&)>& predicate,
                                           absl::Duration timeout = absl::Seconds(20)) {
    json last;
    absl::Status waited = WaitFor(
        what, timeout,
        [&]() -> absl::Status {
          absl::StatusOr<json> agent = rig_->cli().ShowAgent("target");
          if (!agent.ok()) return agent.status();
          last = At(*agent, "facts.patroni");
          if (!last.is_object()) return absl::UnavailableError("no facts.patroni yet");
          if (!predicate(last)) return absl::UnavailableError(last.dump());
          return absl::OkStatus();
        },
        absl::Milliseconds(200));
    if (!waited.ok()) return waited;
    return last;
  }

  // `pghaul task submit target --json {"patroni": {...}} --wait -o json`: the TaskInfo of a
  // task that succeeded.
  absl::StatusOr<json> RunPatroniTask(absl::string_view action) {
    const json task = {{"patroni", {{"action", std::string(action)}, {"wait_seconds", 60}}}};
    absl::StatusOr<CommandResult> result =
        rig_->Cli({"task", "submit", "target", "--json", task.dump(), "--wait", "-o", "json"},
                  absl::Seconds(90));
    if (!result.ok()) return result.status();
    json info = json::parse(result->stdout_text, nullptr, /*allow_exceptions=*/false);
    if (result->exit_code != 0 || info.is_discarded() || Str(info, "state") != "succeeded") {
      return absl::FailedPreconditionError(
          absl::StrCat("patroni ", action, " exited ", result->exit_code, ": ", result->stderr_text,
                       " ", result->stdout_text));
    }
    return info;
  }

  // The source "legacy" (198.18.0.11), a plain PostgreSQL with the same encoding and locale as
  // Patroni's initdb, and its agent.
  absl::Status AddPlainSource() {
    RigHostOptions legacy;
    legacy.octet = 11;
    legacy.initdb_args = {"--encoding=UTF8", "--locale=C.UTF-8"};
    return rig_->AddHost("legacy", legacy).status();
  }

  absl::Time started_;
  std::unique_ptr<MigrationRig> rig_;
  std::unique_ptr<PatroniTarget> target_;
  PatroniNode* patroni_ = nullptr;  // target_'s
  EtcdServer* etcd_ = nullptr;      // target_'s
};

TEST_F(PatroniTest, AgentReportsAndControlsPatroni) {
  PGH_ASSERT_OK_AND_ASSIGN(const std::string system_id, patroni_->Query(kSystemIdentifierQuery));
  ASSERT_FALSE(system_id.empty());

  // The facts show Patroni's own view: Leader of a running PostgreSQL on timeline 1, with the
  // cluster's system identifier, plus what the agent's configuration says.
  PGH_ASSERT_OK_AND_ASSIGN(
      json facts, WaitForPatroniFacts("facts show a running Leader", [](const json& patroni) {
        return True(patroni, "reachable") && True(patroni, "leader") &&
               Str(patroni, "state") == "running";
      }));
  EXPECT_EQ(Str(facts, "role"), "master") << facts.dump(2);
  EXPECT_EQ(Int(facts, "timeline"), 1) << facts.dump(2);
  EXPECT_EQ(Str(facts, "system_identifier"), system_id) << facts.dump(2);
  EXPECT_EQ(Str(facts, "version"), "3.0.2");
  EXPECT_EQ(Str(facts, "scope"), "targetdb");
  EXPECT_EQ(Str(facts, "dcs"), "etcd3");
  EXPECT_EQ(Str(facts, "rest_api"), patroni_->rest_address());
  EXPECT_EQ(Str(facts, "config_file"), patroni_->config_path());
  EXPECT_FALSE(True(facts, "paused"));
  // The DCS holds the same identifier (Patroni's `initialize` key).
  PGH_ASSERT_OK_AND_ASSIGN(auto keys, etcd_->Range("/service/targetdb/"));
  EXPECT_EQ(keys["/service/targetdb/initialize"], system_id);

  // Pause: the task waits until Patroni reports it, and so do the facts; Patroni's own API
  // agrees. Then resume.
  PGH_ASSERT_OK_AND_ASSIGN(json paused, RunPatroniTask("PAUSE"));
  EXPECT_EQ(Str(paused, "result.values.paused"), "true") << paused.dump(2);
  PGH_ASSERT_OK_AND_ASSIGN(json direct, patroni_->GetJson("/patroni"));
  EXPECT_EQ(direct.value("pause", false), true) << direct.dump();
  PGH_ASSERT_OK(WaitForPatroniFacts("facts show paused",
                                    [](const json& patroni) { return True(patroni, "paused"); }));
  PGH_ASSERT_OK_AND_ASSIGN(json resumed, RunPatroniTask("RESUME"));
  EXPECT_EQ(Str(resumed, "result.values.paused"), "false") << resumed.dump(2);
  PGH_ASSERT_OK(WaitForPatroniFacts("facts show resumed", [](const json& patroni) {
    return True(patroni, "reachable") && !True(patroni, "paused");
  }));

  // Stop: Patroni exits and takes PostgreSQL down with it.
  PGH_ASSERT_OK_AND_ASSIGN(json stopped, RunPatroniTask("STOP"));
  EXPECT_EQ(Str(stopped, "result.values.detail"), "stopped") << stopped.dump(2);
  EXPECT_EQ(Str(stopped, "result.values.postgres_stopped"), "true") << stopped.dump(2);
  EXPECT_TRUE(patroni_->PatroniPids().empty());
  EXPECT_EQ(patroni_->PostmasterPid(), 0);
  PGH_ASSERT_OK(WaitForPatroniFacts("facts show Patroni unreachable", [](const json& patroni) {
    return !True(patroni, "reachable");
  }));

  // Start: the agent runs Patroni's command detached; Patroni takes the leader lock again for
  // the same cluster (a single node's restart moves it to a new timeline).
  PGH_ASSERT_OK_AND_ASSIGN(json started, RunPatroniTask("START"));
  EXPECT_EQ(Str(started, "result.values.detail"), "started") << started.dump(2);
  EXPECT_EQ(patroni_->PatroniPids().size(), 1u);
  PGH_ASSERT_OK(patroni_->WaitUntilLeader(absl::Seconds(30)));
  PGH_ASSERT_OK_AND_ASSIGN(
      facts, WaitForPatroniFacts("facts show a Leader again", [](const json& patroni) {
        return True(patroni, "reachable") && True(patroni, "leader") &&
               Str(patroni, "role") == "master";
      }));
  EXPECT_EQ(Str(facts, "system_identifier"), system_id) << facts.dump(2);
  EXPECT_GE(Int(facts, "timeline"), 1);
  EXPECT_NE(patroni_->PostmasterPid(), 0);

  // A second START and STOP are idempotent: nothing to do is not an error.
  PGH_ASSERT_OK_AND_ASSIGN(json again, RunPatroniTask("START"));
  EXPECT_EQ(Str(again, "result.values.detail"), "already running") << again.dump(2);
  PGH_ASSERT_OK_AND_ASSIGN(json status, RunPatroniTask("STATUS"));
  EXPECT_EQ(Str(status, "result.values.leader"), "true") << status.dump(2);
}

// What `pghaul preflight` reported: its exit code and the checks `pghaul status` stores.
struct Preflighted {
  int exit_code = -1;
  std::string state;
  std::map<std::string, json> checks;  // name -> check

  std::map<std::string, std::string> NotPassing() const {
    std::map<std::string, std::string> result;
    for (const auto& [name, check] : checks) {
      if (Str(check, "status") != "pass") result[name] = Str(check, "status");
    }
    return result;
  }
  std::string Describe() const {
    std::string text = absl::StrCat("exit ", exit_code, ", state ", state, "\n");
    for (const auto& [name, check] : checks) {
      if (Str(check, "status") != "pass") absl::StrAppend(&text, "  ", check.dump(), "\n");
    }
    return text;
  }
};

// Preflight of a plain source against the Patroni target (issue 9, part 4): Patroni's roles
// missing on the source are named (the restored catalogue is the source's; the restore creates
// them), md5 passwords fail under Patroni's scram-sha-256 lines, and a DCS Patroni cannot read
// is a failure.
TEST_F(PatroniTest, PreflightNamesWhatAPatroniTargetNeedsFromTheSource) {
  PGH_ASSERT_OK(AddPlainSource());
  PgCluster& source = rig_->Cluster("legacy");

  int plans = 0;
  auto preflight = [&]() -> absl::StatusOr<Preflighted> {
    PlanSpec spec = rig_->PosixPlan(absl::StrCat("p", ++plans), "target");
    spec.target_data = patroni_->data_dir();
    PGH_RETURN_IF_ERROR(rig_->ApplyPlan(spec));
    PGH_ASSIGN_OR_RETURN(CommandResult run,
                         rig_->Cli({"preflight", spec.name}, absl::Seconds(120)));
    Preflighted result;
    result.exit_code = run.exit_code;
    PGH_ASSIGN_OR_RETURN(json status, rig_->Status(spec.name));
    result.state = Str(status, "state");
    for (const json& check : At(status, "preflight")) result.checks[Str(check, "name")] = check;
    std::cout << result.Describe();
    return result;
  };

  // 1. The source has none of Patroni's roles: operator, replicator, rewind. The rehearsal
  // restore creates them on the target, so preflight warns and passes.
  PGH_ASSERT_OK_AND_ASSIGN(Preflighted first, preflight());
  EXPECT_EQ(first.exit_code, 0) << first.Describe();
  EXPECT_EQ(first.state, "ready");
  EXPECT_EQ(first.checks.size(), 29u);
  EXPECT_EQ(first.NotPassing(), (std::map<std::string, std::string>{{"patroni-roles", "warn"},
                                                                    {"source-archiving", "warn"}}))
      << first.Describe();
  const json& patroni = first.checks["patroni"];
  EXPECT_EQ(Str(patroni, "target"), "Patroni 3.0.2, DCS (etcd3) reachable, master")
      << patroni.dump(2);
  const json& roles = first.checks["patroni-roles"];
  EXPECT_THAT(Str(roles, "message"),
              ::testing::HasSubstr("role 'operator' (Patroni's superuser) does not exist on the "
                                   "source"));
  EXPECT_THAT(Str(roles, "message"), ::testing::HasSubstr("'replicator'"));
  EXPECT_THAT(Str(roles, "message"), ::testing::HasSubstr("the restore creates them"));
  EXPECT_THAT(Str(roles, "fix"), ::testing::HasSubstr("CREATE ROLE operator SUPERUSER LOGIN"));
  EXPECT_THAT(Str(roles, "fix"), ::testing::HasSubstr("CREATE ROLE replicator REPLICATION LOGIN"));
  EXPECT_THAT(Str(roles, "fix"), ::testing::HasSubstr("CREATE ROLE rewind LOGIN"));
  EXPECT_EQ(Str(roles, "target"), "superuser operator, replication replicator, rewind rewind");

  // 2. The roles made as the fix says, plus an application role whose password is an md5 hash:
  // the roles pass, and that role is named, since Patroni's pg_hba says scram-sha-256.
  PGH_ASSERT_OK(rig_->RunSqlScript(source,
                                   "CREATE ROLE operator SUPERUSER LOGIN;\n"
                                   "CREATE ROLE replicator REPLICATION LOGIN;\n"
                                   "CREATE ROLE rewind LOGIN;\n"
                                   "SET password_encryption = 'md5';\n"
                                   "CREATE ROLE app_md5 LOGIN PASSWORD 'app-secret';\n"
                                   "CREATE ROLE app_md5_nologin NOLOGIN PASSWORD 'x';\n"));
  PGH_ASSERT_OK_AND_ASSIGN(Preflighted second, preflight());
  EXPECT_EQ(second.NotPassing(),
            (std::map<std::string, std::string>{{"password-encryption", "fail"},
                                                {"source-archiving", "warn"}}))
      << second.Describe();
  const json& encryption = second.checks["password-encryption"];
  EXPECT_EQ(Str(encryption, "source"), "1 login role with md5: 'app_md5'") << encryption.dump(2);
  EXPECT_EQ(Str(encryption, "target"),
            "password_encryption=scram-sha-256, Patroni's pg_hba: scram-sha-256");
  EXPECT_THAT(Str(encryption, "fix"), ::testing::HasSubstr("ALTER ROLE app_md5 PASSWORD"));
  PGH_ASSERT_OK_AND_ASSIGN(const std::string hash, source.Query("SELECT rolpassword FROM pg_authid "
                                                                "WHERE rolname = 'app_md5'"));
  ASSERT_TRUE(absl::StartsWith(hash, "md5")) << hash;
  EXPECT_THAT(encryption.dump(), ::testing::Not(::testing::HasSubstr(hash))) << "never a hash";
  PGH_ASSERT_OK_AND_ASSIGN(json agent, rig_->cli().ShowAgent("legacy"));
  EXPECT_THAT(agent.dump(), ::testing::Not(::testing::HasSubstr(hash))) << "never a hash";

  // 3. The password set again as SCRAM: preflight passes.
  PGH_ASSERT_OK(rig_->RunSqlScript(source,
                                   "SET password_encryption = 'scram-sha-256';\n"
                                   "ALTER ROLE app_md5 PASSWORD 'app-secret';\n"));
  PGH_ASSERT_OK_AND_ASSIGN(Preflighted third, preflight());
  EXPECT_EQ(third.exit_code, 0) << third.Describe();
  EXPECT_EQ(third.state, "ready");
  EXPECT_EQ(third.NotPassing(), (std::map<std::string, std::string>{{"source-archiving", "warn"}}))
      << third.Describe();

  // 4. etcd stopped: Patroni's REST API still answers, but GET /cluster does not, and
  // preflight fails the patroni check.
  PGH_ASSERT_OK(etcd_->Stop());
  PGH_ASSERT_OK_AND_ASSIGN(Preflighted fourth, preflight());
  EXPECT_EQ(fourth.exit_code, kExitFailed) << fourth.Describe();
  const json& down = fourth.checks["patroni"];
  EXPECT_EQ(Str(down, "status"), "fail") << down.dump(2);
  EXPECT_THAT(Str(down, "message"), ::testing::HasSubstr("cannot read its DCS (etcd3)"));
  EXPECT_THAT(Str(down, "target"), ::testing::HasSubstr("DCS (etcd3) not reachable"));
  EXPECT_THAT(Str(down, "fix"), ::testing::HasSubstr("etcd3.hosts"));
}

// Issue 9, part 2: a rehearsal restore into the Patroni target. The source has none of
// Patroni's roles (operator, replicator, rewind). Patroni is killed while it takes the restored
// copy over: the restore reports it, the source is untouched, and running the restore again
// hands the copy to Patroni, which leads it with the source's system identifier, its own
// configuration files and roles, and no archive_mode='off' left behind. Verify passes on it,
// Patroni survives a restart, and abort stops it.
TEST_F(PatroniTest, RehearsalRestoreHandsTheSourcesCopyToPatroni) {
  PGH_ASSERT_OK(AddPlainSource());
  PgCluster& source = rig_->Cluster("legacy");
  PGH_ASSERT_OK(rig_->RunSqlScript(source,
                                   "CREATE TABLE moved (id int PRIMARY KEY, note text);\n"
                                   "INSERT INTO moved SELECT g, md5(g::text) "
                                   "FROM generate_series(1, 5000) g;\n"));
  PGH_ASSERT_OK_AND_ASSIGN(const std::string source_id, source.Query(kSystemIdentifierQuery));
  PGH_ASSERT_OK_AND_ASSIGN(const std::string target_id, patroni_->Query(kSystemIdentifierQuery));
  ASSERT_NE(source_id, target_id);
  const std::string base_conf_path = patroni_->data_dir() + "/postgresql.base.conf";
  PGH_ASSERT_OK_AND_ASSIGN(const std::string base_conf_before, ReadFile(base_conf_path));

  PlanSpec spec = rig_->PosixPlan("m1", "target");
  spec.target_data = patroni_->data_dir();
  PGH_ASSERT_OK(rig_->ApplyPlan(spec));
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult backup,
                           rig_->Cli({"run", "m1", "--until", "backup"}, absl::Seconds(300)));
  ASSERT_EQ(backup.exit_code, 0) << backup.stdout_text << backup.stderr_text;
  PGH_ASSERT_OK_AND_ASSIGN(json ready, rig_->Status("m1"));
  for (const json& check : At(ready, "preflight")) {
    // The missing roles are what the restore will create, not a reason to stop.
    if (Str(check, "name") == "patroni-roles") {
      EXPECT_EQ(Str(check, "status"), "warn") << check.dump(2);
    }
  }

  // 1. Kill Patroni (SIGKILL, by PID) as soon as the restore has started it and it has started
  // PostgreSQL on the copy (before it takes the leader lock, which needs a promotion), so that
  // PostgreSQL is left running with nothing managing it.
  std::atomic<bool> watching{true};
  std::atomic<pid_t> killed{0};
  std::thread killer([&] {
    bool stopped_seen = false;
    const absl::Time deadline = absl::Now() + absl::Minutes(5);
    while (watching.load() && absl::Now() < deadline) {
      std::vector<pid_t> pids = patroni_->PatroniPids();
      if (pids.empty()) stopped_seen = true;
      // (The private recovery's postmaster runs only while Patroni is stopped.)
      if (stopped_seen && pids.size() == 1 && patroni_->PostmasterPid() != 0) {
        kill(pids.front(), SIGKILL);
        killed.store(pids.front());
        return;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  });
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult interrupted,
                           rig_->Cli({"restore", "m1"}, absl::Seconds(300)));
  watching.store(false);
  killer.join();
  ASSERT_NE(killed.load(), 0) << "Patroni was never restarted on the restored copy";
  EXPECT_NE(interrupted.exit_code, 0) << interrupted.stdout_text;
  PGH_ASSERT_OK_AND_ASSIGN(json failed, rig_->Status("m1"));
  EXPECT_EQ(Str(failed, "state"), "failed") << failed.dump(2);
  EXPECT_THAT(Str(failed, "message"), ::testing::HasSubstr("Patroni")) << failed.dump(2);
  EXPECT_EQ(Str(failed, "target_manager"), "patroni") << failed.dump(2);
  EXPECT_TRUE(patroni_->PatroniPids().empty());
  EXPECT_NE(patroni_->PostmasterPid(), 0) << "the killed Patroni's PostgreSQL runs on";
  // The source: untouched, still a writable primary with its rows.
  EXPECT_EQ(source.Query("SELECT pg_is_in_recovery()").value_or("?"), "f");
  EXPECT_EQ(source.Query("SELECT count(*) FROM moved").value_or("?"), "5000");
  PGH_ASSERT_OK(rig_->RunSqlScript(source,
                                   "INSERT INTO moved VALUES (5001, 'after the kill');\n"
                                   "DELETE FROM moved WHERE id = 5001;\n"));

  // 2. The restore again, from the start (Patroni STOP stops that PostgreSQL first, else
  // pgBackRest would refuse to restore): Patroni leads the source's copy.
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult resumed,
                           rig_->Cli({"run", "m1", "--until", "restore"}, absl::Seconds(300)));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.stdout_text << resumed.stderr_text;
  PGH_ASSERT_OK(patroni_->WaitUntilLeader(absl::Seconds(30)));
  PGH_ASSERT_OK_AND_ASSIGN(json status, patroni_->GetJson("/patroni"));
  EXPECT_EQ(status.value("role", ""), "master") << status.dump();
  EXPECT_EQ(status.value("state", ""), "running") << status.dump();
  EXPECT_EQ(patroni_->Query(kSystemIdentifierQuery).value_or("?"), source_id);
  PGH_ASSERT_OK_AND_ASSIGN(auto keys, etcd_->Range("/service/targetdb/"));
  EXPECT_EQ(keys["/service/targetdb/initialize"], source_id);
  // The backup's rows, writable.
  EXPECT_EQ(patroni_->Query("SELECT count(*) FROM moved").value_or("?"), "5000");
  EXPECT_EQ(patroni_->Query("SELECT pg_is_in_recovery()").value_or("?"), "f");
  EXPECT_EQ(patroni_
                ->Query("SELECT rolname FROM pg_roles WHERE rolname IN ('operator', "
                        "'replicator', 'rewind') AND rolcanlogin ORDER BY 1")
                .value_or("?"),
            "operator\nreplicator\nrewind");
  EXPECT_EQ(
      patroni_->Query("SELECT rolsuper FROM pg_roles WHERE rolname = 'operator'").value_or("?"),
      "t");
  // Nothing of pgBackRest's recovery settings stays in postgresql.auto.conf, and Patroni's own
  // postgresql.base.conf is the one it had, not the source's postgresql.conf.
  PGH_ASSERT_OK_AND_ASSIGN(const std::string auto_conf,
                           ReadFile(patroni_->data_dir() + "/postgresql.auto.conf"));
  EXPECT_THAT(auto_conf, ::testing::Not(::testing::HasSubstr("archive_mode"))) << auto_conf;
  EXPECT_THAT(auto_conf, ::testing::Not(::testing::HasSubstr("restore_command"))) << auto_conf;
  EXPECT_EQ(ReadFile(base_conf_path).value_or("?"), base_conf_before);
  EXPECT_EQ(patroni_
                ->Query("SELECT count(*) FROM pg_file_settings WHERE name = 'archive_mode' "
                        "AND sourcefile LIKE '%auto.conf'")
                .value_or("?"),
            "0");
  PGH_ASSERT_OK_AND_ASSIGN(json events, rig_->Status("m1"));
  EXPECT_THAT(events.dump(), ::testing::HasSubstr("Patroni leads the restored copy"));

  // 3. Verify passes on it: the roles the restore gave Patroni are set aside, by name.
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult verify, rig_->Cli({"verify", "m1"}, absl::Seconds(300)));
  EXPECT_EQ(verify.exit_code, 0) << verify.stdout_text << verify.stderr_text;
  PGH_ASSERT_OK_AND_ASSIGN(json verified, rig_->Status("m1"));
  EXPECT_EQ(At(verified, "verify.passed"), true) << At(verified, "verify").dump(2);
  EXPECT_THAT(verified.dump(), ::testing::HasSubstr("the roles the restore gave Patroni on the "
                                                    "target (operator, replicator, rewind)"));

  // 4. Patroni survives a restart of its own: Leader again, the same cluster.
  PGH_ASSERT_OK(RunPatroniTask("STOP").status());
  PGH_ASSERT_OK(RunPatroniTask("START").status());
  PGH_ASSERT_OK(patroni_->WaitUntilLeader(absl::Seconds(60)));
  EXPECT_EQ(patroni_->Query(kSystemIdentifierQuery).value_or("?"), source_id);
  EXPECT_EQ(patroni_->Query("SELECT count(*) FROM moved").value_or("?"), "5000");

  // 5. Abort: Patroni and its PostgreSQL stopped; the source writable as before.
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult abort, rig_->Cli({"abort", "m1"}, absl::Seconds(120)));
  EXPECT_EQ(abort.exit_code, 0) << abort.stdout_text << abort.stderr_text;
  PGH_ASSERT_OK_AND_ASSIGN(json aborted, rig_->WaitUntilSettled("m1", absl::Seconds(60)));
  EXPECT_EQ(Str(aborted, "state"), "aborted") << aborted.dump(2);
  EXPECT_TRUE(patroni_->PatroniPids().empty());
  EXPECT_EQ(patroni_->PostmasterPid(), 0);
  PGH_ASSERT_OK(rig_->RunSqlScript(source, "INSERT INTO moved VALUES (5002, 'after abort');\n"));
}

// Issue 9's whole path: a rehearsal, then a standby under Patroni on the same target that
// follows the source's archive, cut over under a bounded write load.
TEST_F(PatroniTest, StandbyUnderPatroniFollowsTheSourceAndCutsOverLosingNoAcknowledgedCommit) {
  PGH_ASSERT_OK(AddPlainSource());
  PgCluster& source = rig_->Cluster("legacy");
  PGH_ASSERT_OK(rig_->RunSqlScript(source, kAckedWriterSetupSql));
  PGH_ASSERT_OK(rig_->RunSqlScript(source,
                                   "CREATE TABLE moved (id int PRIMARY KEY, note text);\n"
                                   "INSERT INTO moved SELECT g, md5(g::text) "
                                   "FROM generate_series(1, 5000) g;\n"));
  PGH_ASSERT_OK_AND_ASSIGN(const std::string source_id, source.Query(kSystemIdentifierQuery));
  const std::string operator_on_source = "SELECT count(*) FROM pg_roles WHERE rolname = 'operator'";

  // 1. The rehearsal (m1, whose plan does not let pghaul create roles on the source).
  PlanSpec rehearsal_plan = rig_->PosixPlan("m1", "target");
  rehearsal_plan.target_data = patroni_->data_dir();
  PGH_ASSERT_OK(rig_->ApplyPlan(rehearsal_plan));
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult rehearsal,
                           rig_->Cli({"run", "m1", "--until", "restore"}, absl::Seconds(300)));
  ASSERT_EQ(rehearsal.exit_code, 0) << rehearsal.stdout_text << rehearsal.stderr_text;
  PGH_ASSERT_OK(patroni_->WaitUntilLeader(absl::Seconds(30)));
  EXPECT_EQ(patroni_->Query(kSystemIdentifierQuery).value_or("?"), source_id);

  // 2. A standby of m1 is refused before anything changes: the source lacks Patroni's roles.
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult refused,
                           rig_->Cli({"restore", "m1", "--mode", "standby"}, absl::Seconds(300)));
  EXPECT_NE(refused.exit_code, 0) << refused.stdout_text;
  PGH_ASSERT_OK_AND_ASSIGN(json failed, rig_->Status("m1"));
  EXPECT_THAT(Str(failed, "message"), ::testing::HasSubstr("source_patroni_roles_allowed: true"))
      << failed.dump(2);
  EXPECT_EQ(source.Query(operator_on_source).value_or("?"), "0");
  PGH_ASSERT_OK_AND_ASSIGN(json leading, patroni_->GetJson("/patroni"));
  EXPECT_EQ(leading.value("role", ""), "master") << leading.dump();
  EXPECT_EQ(patroni_->Query("SELECT count(*) FROM moved").value_or("?"), "5000");

  // 3. m2 allows it: the roles are created on the source, the standby restored, and Patroni
  // runs it as its standby leader, following the source's archive while the source writes.
  PlanSpec plan = rig_->PosixPlan("m2", "target");
  plan.target_data = patroni_->data_dir();
  plan.cutover = "{max_downtime: 60s, verify_checksums: true}";
  plan.extra = "source_patroni_roles_allowed: true\n";
  PGH_ASSERT_OK(rig_->ApplyPlan(plan));
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult backup,
                           rig_->Cli({"run", "m2", "--until", "backup"}, absl::Seconds(300)));
  ASSERT_EQ(backup.exit_code, 0) << backup.stdout_text << backup.stderr_text;
  AckedWriter writer(absl::StrCat("host=", source.socket_dir(), " port=", source.port(),
                                  " user=app dbname=postgres connect_timeout=2"));
  writer.Start();
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult standby,
                           rig_->Cli({"restore", "m2", "--mode", "standby"}, absl::Seconds(300)));
  ASSERT_EQ(standby.exit_code, 0) << standby.stdout_text << standby.stderr_text;
  EXPECT_EQ(source.Query(operator_on_source).value_or("?"), "1");
  PGH_ASSERT_OK_AND_ASSIGN(json following, patroni_->GetJson("/patroni"));
  EXPECT_EQ(following.value("role", ""), "standby_leader") << following.dump();
  EXPECT_EQ(patroni_->Query("SELECT pg_is_in_recovery()").value_or("?"), "t");
  EXPECT_EQ(patroni_->Query(kSystemIdentifierQuery).value_or("?"), source_id);
  PGH_ASSERT_OK_AND_ASSIGN(auto config, etcd_->Range("/service/targetdb/config"));
  EXPECT_THAT(config["/service/targetdb/config"], ::testing::HasSubstr("restore_command"));
  // (The standby's restart for archive_mode is behind; from here on PostgreSQL never restarts.)
  PGH_ASSERT_OK_AND_ASSIGN(const std::string started_at,
                           patroni_->Query("SELECT pg_postmaster_start_time()"));
  PGH_ASSERT_OK_AND_ASSIGN(json standby_status, rig_->Status("m2"));
  EXPECT_THAT(standby_status.dump(), ::testing::HasSubstr("standby leader")) << standby_status;

  // The standby replays what the source commits after its backup.
  const size_t before_cutover = writer.AckedCount();
  PGH_ASSERT_OK(
      WaitFor("more writes after the standby restore", absl::Seconds(30), [&]() -> absl::Status {
        if (writer.AckedCount() > before_cutover + 200) return absl::OkStatus();
        return absl::UnavailableError(writer.LastError());
      }));

  // 4. The cutover under that load, then finish.
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult cutover, rig_->Cli({"cutover", "m2"}, absl::Seconds(300)));
  ASSERT_EQ(cutover.exit_code, 0) << cutover.stdout_text << cutover.stderr_text;
  writer.Stop();
  const std::vector<int64_t> acked = writer.Acked();
  std::cout << acked.size()
            << " acknowledged commits; the writer's last error: " << writer.LastError() << "\n";
  ASSERT_GT(acked.size(), before_cutover + 200);
  PGH_ASSERT_OK_AND_ASSIGN(const std::string rows,
                           patroni_->Query("SELECT n FROM acked ORDER BY n"));
  EXPECT_EQ(MissingAcked(acked, rows), std::vector<int64_t>{});
  EXPECT_EQ(patroni_->Query("SELECT (SELECT n FROM counter) = (SELECT count(*) FROM acked)")
                .value_or("?"),
            "t");
  PGH_ASSERT_OK_AND_ASSIGN(json status, rig_->Status("m2"));
  EXPECT_EQ(Str(status, "state"), "completed") << status.dump(2);
  EXPECT_EQ(At(status, "cutover_compare.passed"), true) << status.dump(2);
  EXPECT_FALSE(Str(status, "new_stanza_backup_label").empty()) << status.dump(2);
  EXPECT_THAT(status.dump(), ::testing::HasSubstr("Patroni promoted the target"));
  // Finish restarted Patroni around PostgreSQL, not PostgreSQL: the same postmaster since the
  // standby restore.
  EXPECT_THAT(status.dump(), ::testing::HasSubstr("Patroni restarted around the running target"));
  EXPECT_EQ(patroni_->Query("SELECT pg_postmaster_start_time()").value_or("?"), started_at);
  std::cout << "downtime under load with a Patroni target: "
            << At(status, "downtime_seconds").dump() << " s\n";
  // The source is fenced: app is refused.
  EXPECT_FALSE(source.Query("INSERT INTO acked VALUES (-1)").ok());

  // What `patronictl list` shows (GET /cluster): the target the Leader on timeline 2.
  PGH_ASSERT_OK_AND_ASSIGN(json cluster, patroni_->GetJson("/cluster"));
  ASSERT_TRUE(cluster.contains("members") && cluster["members"].size() == 1) << cluster.dump();
  EXPECT_EQ(cluster["members"][0].value("role", ""), "leader") << cluster.dump();
  EXPECT_EQ(cluster["members"][0].value("timeline", 0), 2) << cluster.dump();
  EXPECT_EQ(patroni_->Query("SELECT pg_is_in_recovery()").value_or("?"), "f");
  EXPECT_EQ(patroni_->Query("SELECT count(*) FROM moved").value_or("?"), "5000");
  // Nothing points at the source's archive any more.
  EXPECT_EQ(patroni_->Query("SELECT current_setting('restore_command')").value_or("?"), "");
  PGH_ASSERT_OK_AND_ASSIGN(const std::string conf,
                           ReadFile(patroni_->data_dir() + "/postgresql.conf"));
  EXPECT_THAT(conf, ::testing::Not(::testing::HasSubstr("restore_command"))) << conf;
  PGH_ASSERT_OK_AND_ASSIGN(auto after, etcd_->Range("/service/targetdb/config"));
  EXPECT_THAT(after["/service/targetdb/config"],
              ::testing::Not(::testing::HasSubstr("standby_cluster")));

  // 5. Patroni survives a restart of PostgreSQL (POST /restart, as `patronictl restart`) and
  // one of its own (stop, start: a single node then starts read-only and promotes itself, a
  // timeline further): Leader again, the same rows.
  PGH_ASSERT_OK(RunPatroniTask("RESTART").status());
  PGH_ASSERT_OK_AND_ASSIGN(json restarted, patroni_->GetJson("/patroni"));
  EXPECT_EQ(restarted.value("role", ""), "master") << restarted.dump();
  EXPECT_EQ(restarted.value("timeline", 0), 2) << restarted.dump();
  PGH_ASSERT_OK(RunPatroniTask("STOP").status());
  PGH_ASSERT_OK(RunPatroniTask("START").status());
  PGH_ASSERT_OK(patroni_->WaitUntilLeader(absl::Seconds(60)));
  PGH_ASSERT_OK_AND_ASSIGN(json started, patroni_->GetJson("/patroni"));
  EXPECT_EQ(started.value("role", ""), "master") << started.dump();
  EXPECT_GE(started.value("timeline", 0), 2) << started.dump();
  EXPECT_EQ(patroni_->Query(kSystemIdentifierQuery).value_or("?"), source_id);
  EXPECT_EQ(patroni_->Query("SELECT count(*) FROM acked").value_or("?"),
            patroni_->Query("SELECT n FROM counter").value_or("!"));
}

TEST_F(PatroniTest, AnAgentWithoutPatroniSectionRefusesPatroniTasks) {
  RigHostOptions plain;
  plain.octet = 11;
  PGH_ASSERT_OK(rig_->AddHost("legacy", plain));
  const json task = {{"patroni", {{"action", "STATUS"}}}};
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult result, rig_->Cli({"task", "submit", "legacy", "--json",
                                                            task.dump(), "--wait", "-o", "json"}));
  json info = json::parse(result.stdout_text, nullptr, /*allow_exceptions=*/false);
  EXPECT_EQ(Str(info, "state"), "refused") << result.stdout_text << result.stderr_text;
  EXPECT_NE(info.dump().find("not configured for Patroni"), std::string::npos) << info.dump(2);
}

}  // namespace
}  // namespace pghaul::integration
