// A target managed by Patroni (docs/patroni.md), first slice: the agent in Patroni mode reports
// Patroni's state in its facts and pauses, resumes, stops and starts it, with real processes.
//
//   controller 198.18.0.10:7400        target 198.18.0.12: etcd 3.4 (:2379, v3 API only)
//                                                          Patroni 3.0.2 (REST :8008) managing
//                                                          PostgreSQL 15 (:5432)
//                                                          pghaul-agent (patroni: section,
//                                                          control method command)
//
// Patroni is first started by the fixture (PatroniNode); after the agent's STOP, the agent's
// START runs the same argv detached. PatroniNode's destructor ends whichever Patroni runs.
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fixture/etcd_server.h"
#include "tests/integration/fixture/json_paths.h"
#include "tests/integration/fixture/migration_fixture.h"
#include "tests/integration/fixture/patroni_node.h"
#include "tests/integration/fixture/test_support.h"
#include "tests/integration/fixture/wait_for.h"

namespace pghaul::integration {
namespace {

using nlohmann::json;

constexpr int kTargetOctet = 12;
constexpr int kPatroniRestPort = 8008;
constexpr int kPostgresPort = 5432;

bool True(const json& document, absl::string_view path) { return At(document, path) == true; }

class PatroniTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RequireRoot();
    if (HasFatalFailure()) return;
    started_ = absl::Now();
    PGH_ASSERT_OK_AND_ASSIGN(rig_, MigrationRig::Create("pghaul-patroni-"));
    PGH_ASSERT_OK_AND_ASSIGN(netns_, rig_->network().AddHost("target", kTargetOctet));
    address_ = rig_->network().Address("target");

    EtcdServerOptions etcd;
    etcd.netns = netns_;
    etcd.address = address_;
    PGH_ASSERT_OK_AND_ASSIGN(etcd_, EtcdServer::Start(rig_->dir().path(), etcd));

    PatroniNodeOptions patroni;
    patroni.name = "target-0";
    patroni.scope = "targetdb";
    patroni.netns = netns_;
    patroni.address = address_;
    patroni.rest_port = kPatroniRestPort;
    patroni.pg_port = kPostgresPort;
    patroni.etcd_hosts = {etcd_->ClientHostPort()};
    PGH_ASSERT_OK_AND_ASSIGN(patroni_, PatroniNode::Create(rig_->dir().path(), patroni));
    PGH_ASSERT_OK(patroni_->Start());

    AgentOptions agent;
    agent.agent_id = "target";
    agent.controller_address = rig_->ControllerAddress();
    agent.netns = netns_;
    agent.pg_socket_dir = patroni_->socket_dir();
    agent.pg_port = kPostgresPort;
    agent.data_directory = patroni_->data_dir();
    agent.facts_interval = absl::Seconds(1);
    agent.extra_yaml = absl::StrCat(
        "patroni:\n"
        "  config_file: \"",
        patroni_->config_path(),
        "\"\n"
        "  dcs: etcd3\n"
        "  rest_api: {address: \"",
        patroni_->rest_address(),
        "\", timeout: 2s}\n"
        "  control:\n"
        "    method: command\n"
        "    command: [\"",
        patroni_->Argv()[0], "\", \"", patroni_->Argv()[1],
        "\"]\n"
        "    log_file: \"",
        patroni_->dir(), "/patroni-agent.log\"\n");
    PGH_ASSERT_OK(rig_->StartAgent("target", host_, agent));
  }

  void TearDown() override {
    if (HasFailure() && rig_ != nullptr) {
      std::vector<std::string> logs = rig_->LogPaths();
      if (host_.agent != nullptr) logs.push_back(host_.agent->log_path());
      if (patroni_ != nullptr) {
        logs.push_back(patroni_->log_path());
        logs.push_back(patroni_->dir() + "/patroni-agent.log");
      }
      if (etcd_ != nullptr) logs.push_back(etcd_->log_path());
      PrintLogTails(logs);
    }
    // Agent first (it must not restart Patroni), then Patroni and its PostgreSQL, then etcd.
    host_.agent.reset();
    patroni_.reset();
    etcd_.reset();
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

  absl::Time started_;
  std::unique_ptr<MigrationRig> rig_;
  std::string netns_;
  std::string address_;
  std::unique_ptr<EtcdServer> etcd_;
  std::unique_ptr<PatroniNode> patroni_;
  MigrationRig::Host host_;  // the target's agent (its cluster is Patroni's, not the rig's)
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
