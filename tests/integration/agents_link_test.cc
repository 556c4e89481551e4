// The agent <-> controller link end to end: real pghaul-controller, real pghaul-agents running
// as the postgres OS user next to real PostgreSQL 15 clusters, each host in its own network
// namespace (198.18.0.0/24), and the real `pghaul` CLI asking the controller.
//
//   controller 198.18.0.10:7400    legacy 198.18.0.11 (PG 15, data checksums, UTF8, C.UTF-8)
//                                  target 198.18.0.12 (PG 15, no checksums, LATIN1, C)
#include <signal.h>
#include <sys/wait.h>
#include <sysexits.h>

#include <iostream>
#include <map>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"
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

constexpr absl::Duration kHeartbeatInterval = absl::Milliseconds(500);
constexpr int kMissedHeartbeats = 3;
// heartbeat_interval x missed_heartbeats.
constexpr absl::Duration kHeartbeatTimeout = absl::Milliseconds(500 * kMissedHeartbeats);
constexpr absl::Duration kReconnectInitial = absl::Milliseconds(200);
constexpr absl::Duration kReconnectMax = absl::Seconds(2);
constexpr int kControllerPort = 7400;

bool IsOnline(const json& agent) { return At(agent, "online") == true; }

class AgentsLinkTest : public ::testing::Test {
 protected:
  struct Host {
    std::unique_ptr<PgCluster> cluster;
    std::unique_ptr<PghaulAgent> agent;  // declared last: destroyed before its cluster
  };

  void SetUp() override {
    RequireRoot();
    if (HasFatalFailure()) return;
    PGH_ASSERT_OK_AND_ASSIGN(dir_, TempDir::Create("pghaul-link-"));
    PGH_ASSERT_OK_AND_ASSIGN(network_, NetworkNamespaces::Create());
    PGH_ASSERT_OK(network_->AddHost("controller", 10));
  }

  void TearDown() override {
    if (!HasFailure()) return;
    std::vector<std::string> logs;
    if (controller_ != nullptr) logs.push_back(controller_->log_path());
    for (const auto& [name, host] : hosts_) {
      if (host.agent != nullptr) logs.push_back(host.agent->log_path());
      if (host.cluster != nullptr) logs.push_back(host.cluster->log_path());
    }
    PrintLogTails(logs);
  }

  // Starts the controller in its namespace on 198.18.0.10:7400.
  absl::Status StartController() {
    ControllerOptions options;
    options.listen = absl::StrCat(network_->Address("controller"), ":", kControllerPort);
    options.netns = network_->Namespace("controller");
    options.heartbeat_interval = kHeartbeatInterval;
    options.missed_heartbeats = kMissedHeartbeats;
    auto controller = PghaulController::Create(dir_->path() + "/controller", options);
    if (!controller.ok()) return controller.status();
    controller_ = *std::move(controller);
    if (absl::Status s = controller_->Start(); !s.ok()) return s;
    if (controller_->address() != options.listen) {
      return absl::InternalError(absl::StrCat("the controller reports ", controller_->address(),
                                              ", configured ", options.listen));
    }
    cli_ = std::make_unique<PghaulCli>(controller_->address(), network_->Namespace("controller"));
    return absl::OkStatus();
  }

  // A host namespace with an initialised PostgreSQL 15 cluster (started if `start_postgres`) and
  // an agent configured for it (not started). `controller_address` defaults to the controller's.
  absl::StatusOr<Host*> AddHost(const std::string& name, int octet,
                                std::vector<std::string> initdb_args, bool start_postgres,
                                absl::Duration facts_interval = absl::Seconds(5),
                                std::string controller_address = "") {
    auto netns = network_->AddHost(name, octet);
    if (!netns.ok()) return netns.status();
    Host& host = hosts_[name];
    PgClusterOptions pg;
    pg.name = name;
    pg.netns = *netns;
    pg.listen_address = network_->Address(name);
    pg.initdb_args = std::move(initdb_args);
    auto cluster = PgCluster::Create(dir_->path(), pg);
    if (!cluster.ok()) return cluster.status();
    host.cluster = *std::move(cluster);
    if (start_postgres) {
      if (absl::Status s = host.cluster->Start(); !s.ok()) return s;
    }
    if (controller_address.empty()) {
      controller_address = absl::StrCat(network_->Address("controller"), ":", kControllerPort);
    }
    AgentOptions options = AgentOptions::ForCluster(name, controller_address, *host.cluster);
    options.facts_interval = facts_interval;
    options.reconnect_initial = kReconnectInitial;
    options.reconnect_max = kReconnectMax;
    auto agent = PghaulAgent::Create(absl::StrCat(dir_->path(), "/agent-", name), options);
    if (!agent.ok()) return agent.status();
    host.agent = *std::move(agent);
    return &host;
  }

  // Polls `pghaul agents --output json` until `agent_id`'s entry satisfies `predicate`;
  // returns that entry.
  absl::StatusOr<json> WaitForAgent(absl::string_view agent_id, absl::string_view what,
                                    absl::Duration timeout,
                                    const std::function<bool(const json&)>& predicate) {
    json found;
    absl::Status status = WaitFor(absl::StrCat(agent_id, " ", what), timeout, [&]() {
      auto agent = cli_->FindAgent(agent_id);
      if (!agent.ok()) return agent.status();
      if (!predicate(*agent)) {
        return absl::UnavailableError(absl::StrCat("its entry: ", agent->dump()));
      }
      found = *std::move(agent);
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return found;
  }

  absl::StatusOr<json> WaitOnline(absl::string_view agent_id,
                                  absl::Duration timeout = absl::Seconds(15)) {
    return WaitForAgent(agent_id, "to be online", timeout, IsOnline);
  }

  absl::StatusOr<json> WaitOffline(absl::string_view agent_id, absl::Duration timeout) {
    return WaitForAgent(agent_id, "to be offline", timeout,
                        [](const json& agent) { return !IsOnline(agent); });
  }

  // Both hosts of the header comment, with their agents online.
  void StartLegacyAndTarget() {
    PGH_ASSERT_OK(StartController());
    PGH_ASSERT_OK(
        AddHost("legacy", 11, {"--data-checksums", "--encoding=UTF8", "--locale=C.UTF-8"}, true));
    PGH_ASSERT_OK(AddHost("target", 12, {"--encoding=LATIN1", "--locale=C"}, true));
    for (const char* name : {"legacy", "target"}) {
      PGH_ASSERT_OK(hosts_[name].agent->Start());
    }
    for (const char* name : {"legacy", "target"}) PGH_ASSERT_OK(WaitOnline(name));
  }

  // Declaration order is destruction order reversed: processes go before the network and the
  // directory they live in.
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<NetworkNamespaces> network_;
  std::map<std::string, Host> hosts_;
  std::unique_ptr<PghaulController> controller_;
  std::unique_ptr<PghaulCli> cli_;
};

TEST_F(AgentsLinkTest, TwoAgentsAreOnlineWithTheFactsTheirPostgresReports) {
  StartLegacyAndTarget();
  if (HasFatalFailure()) return;

  PGH_ASSERT_OK_AND_ASSIGN(json agents, cli_->ListAgents());
  ASSERT_EQ(agents.size(), 2u) << agents.dump(2);

  std::map<std::string, std::string> checksums;
  for (const char* name : {"legacy", "target"}) {
    SCOPED_TRACE(name);
    PgCluster& pg = *hosts_[name].cluster;
    PGH_ASSERT_OK_AND_ASSIGN(json agent, cli_->FindAgent(name));
    EXPECT_TRUE(IsOnline(agent)) << agent.dump(2);
    // The stream came in through the host's own namespace.
    EXPECT_TRUE(absl::StrContains(Str(agent, "peer"), network_->Address(name) + ":"))
        << Str(agent, "peer");
    EXPECT_FALSE(Str(agent, "incarnation").empty());
    EXPECT_EQ(Str(agent, "facts.data_directory"), pg.data_dir());

    auto query = [&pg](absl::string_view sql) { return pg.Query(sql).value_or("<psql failed>"); };
    const json postgres = At(agent, "facts.postgres");
    ASSERT_TRUE(postgres.is_object()) << agent.dump(2);
    EXPECT_EQ(At(postgres, "reachable"), true) << postgres.dump(2);
    EXPECT_EQ(absl::StrCat(Int(postgres, "server_version_num")), query("SHOW server_version_num"));
    // uint64 travels as a JSON string in the protobuf mapping.
    EXPECT_EQ(At(postgres, "system_identifier"),
              query("SELECT system_identifier FROM pg_control_system()"));
    EXPECT_EQ(Str(postgres, "data_directory"), query("SHOW data_directory"));
    EXPECT_EQ(absl::StrCat(Int(postgres, "block_size")), query("SHOW block_size"));
    EXPECT_EQ(At(postgres, "data_checksums"), query("SHOW data_checksums") == "on");
    EXPECT_EQ(Str(postgres, "lc_collate"), query("SHOW lc_collate"));
    EXPECT_EQ(Str(postgres, "encoding"), query("SHOW server_encoding"));
    EXPECT_EQ(At(postgres, "in_recovery"), query("SELECT pg_is_in_recovery()") == "t");
    EXPECT_EQ(Str(postgres, "archive_mode"), query("SHOW archive_mode"));
    checksums[name] = query("SHOW data_checksums");

    // `agents show` tells the same story as the list.
    PGH_ASSERT_OK_AND_ASSIGN(json shown, cli_->ShowAgent(name));
    EXPECT_EQ(Str(shown, "agent_id"), name);
    EXPECT_EQ(At(shown, "facts.postgres.system_identifier"), At(postgres, "system_identifier"));
  }
  // The two clusters differ, so facts attributed to the wrong agent would fail above.
  EXPECT_EQ(checksums["legacy"], "on");
  EXPECT_EQ(checksums["target"], "off");
}

TEST_F(AgentsLinkTest, AgentsComeBackWithinTenSecondsAfterTheControllerIsKilledAndRestarted) {
  StartLegacyAndTarget();
  if (HasFatalFailure()) return;

  const absl::Time killed_at = absl::Now();
  PGH_ASSERT_OK(controller_->process()->Kill(SIGKILL));
  PGH_ASSERT_OK(controller_->Start());
  for (const char* name : {"legacy", "target"}) {
    // connected_since after the kill: a stream to the new controller, not a stale entry.
    PGH_ASSERT_OK(WaitForAgent(name, "to be online on the new controller", absl::Seconds(15),
                               [killed_at](const json& agent) {
                                 return IsOnline(agent) &&
                                        Timestamp(agent, "connected_since") >= killed_at;
                               }));
  }
  const absl::Duration back_after = absl::Now() - killed_at;
  RecordProperty("seconds_until_both_back", absl::StrCat(absl::ToDoubleSeconds(back_after)));
  std::cout << "both agents back online " << back_after << " after kill -9 of the controller\n";
  EXPECT_LT(back_after, absl::Seconds(10));
}

// Two controllers on one state database would both drive the same migrations. The second one,
// on another port, refuses to start, naming the first; the first keeps serving its agents.
TEST_F(AgentsLinkTest, ASecondControllerOnTheSameStateRefusesToStartAndNamesTheFirst) {
  StartLegacyAndTarget();
  if (HasFatalFailure()) return;
  PGH_ASSERT_OK_AND_ASSIGN(std::string yaml, ReadFile(controller_->config_path()));
  const std::string first_listen =
      absl::StrCat(network_->Address("controller"), ":", kControllerPort);
  ASSERT_TRUE(absl::StrContains(yaml, first_listen)) << yaml;
  absl::StrReplaceAll({{first_listen, absl::StrCat(network_->Address("controller"), ":0")}},
                      &yaml);
  const std::string second_config = dir_->path() + "/second-controller.yaml";
  PGH_ASSERT_OK(WriteFile(second_config, yaml));
  CommandOptions options;
  options.launch.netns = network_->Namespace("controller");
  options.timeout = absl::Seconds(20);
  PGH_ASSERT_OK_AND_ASSIGN(
      CommandResult second,
      RunCommand({PghaulBinary("controller/pghaul-controller"), "--config", second_config},
                 options));
  EXPECT_EQ(second.exit_code, EX_TEMPFAIL) << second.stdout_text << second.stderr_text;
  const std::string said = second.stdout_text + second.stderr_text;
  EXPECT_TRUE(absl::StrContains(
      said, absl::StrCat("another pghaul-controller (PID ", controller_->process()->pid(),
                         ") is using the state directory ", controller_->state_dir())))
      << said;
  EXPECT_TRUE(absl::StrContains(said, "Stop the other one first")) << said;

  EXPECT_TRUE(controller_->process()->IsRunning());
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult agents, cli_->Run({"agents", "--output", "json"}));
  EXPECT_EQ(agents.exit_code, 0) << agents.stderr_text;
  for (const char* name : {"legacy", "target"}) {
    PGH_EXPECT_OK(WaitForAgent(name, "to stay online", absl::Seconds(5), IsOnline).status());
  }
}

// The same for an agent: a second one with the first one's config (so its state directory)
// would overwrite its task results and pgBackRest configuration.
TEST_F(AgentsLinkTest, ASecondAgentOnTheSameStateRefusesToStart) {
  StartLegacyAndTarget();
  if (HasFatalFailure()) return;
  PghaulAgent& legacy = *hosts_["legacy"].agent;
  CommandOptions options;
  options.launch.netns = network_->Namespace("legacy");
  options.launch.run_as = kPostgresOsUser;  // as the first one runs
  options.timeout = absl::Seconds(20);
  PGH_ASSERT_OK_AND_ASSIGN(
      CommandResult second,
      RunCommand({PghaulBinary("agent/pghaul-agent"), "--config", legacy.config_path()}, options));
  EXPECT_EQ(second.exit_code, EX_TEMPFAIL) << second.stdout_text << second.stderr_text;
  const std::string said = second.stdout_text + second.stderr_text;
  EXPECT_TRUE(absl::StrContains(
      said, absl::StrCat("another pghaul-agent (PID ", legacy.process()->pid(),
                         ") is using the state directory ", legacy.state_dir())))
      << said;
  EXPECT_TRUE(legacy.process()->IsRunning());
  PGH_EXPECT_OK(WaitForAgent("legacy", "to stay online", absl::Seconds(5), IsOnline).status());
}

TEST_F(AgentsLinkTest, KilledAgentShowsOffline) {
  StartLegacyAndTarget();
  if (HasFatalFailure()) return;

  const absl::Time killed_at = absl::Now();
  PGH_ASSERT_OK(hosts_["legacy"].agent->process()->Kill(SIGKILL));
  PGH_ASSERT_OK_AND_ASSIGN(json legacy,
                           WaitOffline("legacy", kHeartbeatTimeout + absl::Seconds(5)));
  std::cout << "legacy offline " << absl::Now() - killed_at << " after kill -9\n";
  EXPECT_FALSE(Str(legacy, "offline_reason").empty()) << legacy.dump(2);
  PGH_ASSERT_OK_AND_ASSIGN(json target, cli_->FindAgent("target"));
  EXPECT_TRUE(IsOnline(target)) << target.dump(2);
}

TEST_F(AgentsLinkTest, StoppedAgentGoesOfflineAfterMissedHeartbeatsAndReturnsOnContinue) {
  StartLegacyAndTarget();
  if (HasFatalFailure()) return;
  PGH_ASSERT_OK_AND_ASSIGN(json before, cli_->FindAgent("legacy"));
  ChildProcess& agent = *hosts_["legacy"].agent->process();

  // SIGSTOP keeps the TCP connection open (the kernel still ACKs); only heartbeats stop.
  const absl::Time stopped_at = absl::Now();
  PGH_ASSERT_OK(agent.Signal(SIGSTOP));
  absl::Duration last_seen_online = absl::ZeroDuration();
  absl::Duration seen_offline = absl::ZeroDuration();
  PGH_ASSERT_OK(WaitFor("legacy to be offline", kHeartbeatTimeout + absl::Seconds(5), [&]() {
    auto entry = cli_->FindAgent("legacy");
    if (!entry.ok()) return entry.status();
    if (IsOnline(*entry)) {
      last_seen_online = absl::Now() - stopped_at;
      return absl::UnavailableError("still online");
    }
    seen_offline = absl::Now() - stopped_at;
    return absl::OkStatus();
  }));
  std::cout << "legacy last seen online " << last_seen_online << " and offline " << seen_offline
            << " after SIGSTOP; heartbeat timeout " << kHeartbeatTimeout << "\n";
  // The last heartbeat may have arrived up to one interval before the stop.
  EXPECT_GE(seen_offline, kHeartbeatTimeout - kHeartbeatInterval - absl::Milliseconds(100));
  EXPECT_LE(seen_offline, kHeartbeatTimeout + absl::Seconds(2));
  PGH_ASSERT_OK_AND_ASSIGN(json target, cli_->FindAgent("target"));
  EXPECT_TRUE(IsOnline(target));

  PGH_ASSERT_OK(agent.Signal(SIGCONT));
  PGH_ASSERT_OK_AND_ASSIGN(json after, WaitOnline("legacy", absl::Seconds(15)));
  // Same process: same incarnation.
  EXPECT_EQ(Str(after, "incarnation"), Str(before, "incarnation"));
}

TEST_F(AgentsLinkTest, AgentWithAWrongControllerAddressRetriesWithGrowingBackoff) {
  // Nothing listens on the loopback of the agent's namespace.
  PGH_ASSERT_OK_AND_ASSIGN(Host * host,
                           AddHost("lonely", 13, {}, false, absl::Seconds(5), "127.0.0.1:7400"));
  PGH_ASSERT_OK(host->agent->Start());

  // When each "attempt N" line first appeared, watched every 10 ms for 6 s.
  const std::regex attempt_line(R"(attempt (\d+)\b)");
  std::map<int, absl::Time> first_seen;
  std::map<int, int> times_logged;
  const absl::Time start = absl::Now();
  while (absl::Now() - start < absl::Seconds(6)) {
    const absl::Time now = absl::Now();
    times_logged.clear();
    for (absl::string_view line : absl::StrSplit(host->agent->ReadLog(), '\n')) {
      if (!absl::StrContains(line, "next attempt in")) continue;
      std::cmatch match;
      if (!std::regex_search(line.begin(), line.end(), match, attempt_line)) continue;
      int n = std::stoi(match[1].str());
      ++times_logged[n];
      first_seen.emplace(n, now);
    }
    ASSERT_TRUE(host->agent->process()->IsRunning()) << host->agent->ReadLog();
    absl::SleepFor(absl::Milliseconds(10));
  }

  std::vector<absl::Duration> gaps;
  std::vector<std::string> described;
  int expected = 1;
  for (const auto& [n, seen] : first_seen) {
    EXPECT_EQ(n, expected++) << "attempts are numbered 1, 2, 3, ... without gaps";
    EXPECT_EQ(times_logged[n], 1) << "attempt " << n << " logged more than once";
    if (first_seen.count(n - 1)) gaps.push_back(seen - first_seen[n - 1]);
    described.push_back(absl::StrCat(n, "@", absl::FormatDuration(seen - start)));
  }
  std::cout << "attempts seen: " << absl::StrJoin(described, " ") << "\n";
  // 200 ms doubling to 2 s with jitter in [base/2, base]: about 6 attempts in 6 s.
  ASSERT_GE(first_seen.size(), 4u) << host->agent->ReadLog();
  ASSERT_GE(gaps.size(), 3u);
  // Jitter allows one gap to be shorter than the one before; two steps on (base x4 until the
  // cap) a gap is always longer.
  for (size_t i = 0; i + 2 < gaps.size() && i < 3; ++i) {
    EXPECT_GT(gaps[i + 2], gaps[i]) << "gap " << i + 2 << " vs gap " << i;
  }
  EXPECT_GT(gaps.back(), gaps.front() * 2);
  for (absl::Duration gap : gaps) {
    EXPECT_LE(gap, kReconnectMax + absl::Milliseconds(500)) << "the backoff is capped";
  }
}

TEST_F(AgentsLinkTest, AgentOfAStoppedPostgresConnectsAndReportsItReachableOnceStarted) {
  PGH_ASSERT_OK(StartController());
  constexpr absl::Duration kFactsInterval = absl::Seconds(2);
  PGH_ASSERT_OK_AND_ASSIGN(Host * host, AddHost("legacy", 11, {}, false, kFactsInterval));
  PGH_ASSERT_OK(host->agent->Start());

  PGH_ASSERT_OK_AND_ASSIGN(json down, WaitOnline("legacy"));
  EXPECT_EQ(At(down, "facts.postgres.reachable"), false) << down.dump(2);
  EXPECT_FALSE(Str(down, "facts.postgres.error").empty()) << down.dump(2);

  PGH_ASSERT_OK(host->cluster->Start());
  const absl::Time started_at = absl::Now();
  PGH_ASSERT_OK_AND_ASSIGN(json up,
                           WaitForAgent("legacy", "to report PostgreSQL reachable",
                                        kFactsInterval + absl::Seconds(3), [](const json& agent) {
                                          return At(agent, "facts.postgres.reachable") == true;
                                        }));
  std::cout << "reachable reported " << absl::Now() - started_at << " after pg_ctl start\n";
  EXPECT_TRUE(IsOnline(up));
  EXPECT_EQ(At(up, "facts.postgres.system_identifier"),
            host->cluster->Query("SELECT system_identifier FROM pg_control_system()")
                .value_or("<psql failed>"));
}

TEST_F(AgentsLinkTest, ReconnectKeepsTheIncarnationAndRestartMakesANewOne) {
  PGH_ASSERT_OK(StartController());
  PGH_ASSERT_OK_AND_ASSIGN(Host * host, AddHost("legacy", 11, {}, true));
  PGH_ASSERT_OK(host->agent->Start());
  PGH_ASSERT_OK_AND_ASSIGN(json first, WaitOnline("legacy"));
  const std::string incarnation = Str(first, "incarnation");
  ASSERT_FALSE(incarnation.empty()) << first.dump(2);

  // Cable pulled: nothing arrives, nothing is refused.
  PGH_ASSERT_OK(network_->CutLink("legacy"));
  PGH_ASSERT_OK(WaitOffline("legacy", kHeartbeatTimeout + absl::Seconds(5)));
  PGH_ASSERT_OK(network_->RestoreLink("legacy"));
  const absl::Time restored_at = absl::Now();
  PGH_ASSERT_OK_AND_ASSIGN(json reconnected, WaitOnline("legacy", absl::Seconds(30)));
  std::cout << "legacy back online " << absl::Now() - restored_at << " after the link came back\n";
  EXPECT_EQ(Str(reconnected, "incarnation"), incarnation);
  EXPECT_EQ(Int(reconnected, "reconnects"), Int(first, "reconnects") + 1) << reconnected.dump(2);
  EXPECT_EQ(Int(reconnected, "restarts"), Int(first, "restarts"));

  PGH_ASSERT_OK(host->agent->process()->Stop());
  PGH_ASSERT_OK(host->agent->Start());
  PGH_ASSERT_OK_AND_ASSIGN(json restarted,
                           WaitForAgent("legacy", "to be online with a new incarnation",
                                        absl::Seconds(15), [&](const json& agent) {
                                          return IsOnline(agent) &&
                                                 Str(agent, "incarnation") != incarnation;
                                        }));
  EXPECT_EQ(Int(restarted, "restarts"), Int(reconnected, "restarts") + 1) << restarted.dump(2);
  EXPECT_EQ(Int(restarted, "reconnects"), Int(reconnected, "reconnects"));
}

TEST_F(AgentsLinkTest, AgentStartedAsRootRefusesWithoutRunAsAndDropsToRunAs) {
  PGH_ASSERT_OK(StartController());
  PGH_ASSERT_OK_AND_ASSIGN(Host * host, AddHost("legacy", 11, {}, true));
  AgentOptions options = host->agent->options();
  options.run_as = "";  // started as root, like a unit without User=

  PGH_ASSERT_OK_AND_ASSIGN(std::unique_ptr<PghaulAgent> refused,
                           PghaulAgent::Create(dir_->path() + "/agent-root", options));
  PGH_ASSERT_OK(refused->Start());
  PGH_ASSERT_OK_AND_ASSIGN(int wait_status, refused->process()->WaitForExit(absl::Seconds(10)));
  ASSERT_TRUE(WIFEXITED(wait_status)) << wait_status;
  EXPECT_EQ(WEXITSTATUS(wait_status), EX_CONFIG);
  EXPECT_TRUE(absl::StrContains(refused->ReadLog(), "refusing to run as root"))
      << refused->ReadLog();
  EXPECT_TRUE(absl::StrContains(refused->ReadLog(), "run_as: postgres")) << refused->ReadLog();
  PGH_ASSERT_OK_AND_ASSIGN(json listed, cli_->ListAgents());
  EXPECT_EQ(listed.dump().find("\"legacy\""), std::string::npos) << "it connected anyway";

  options.extra_yaml = "run_as: postgres\n";
  const std::string dropping_dir = dir_->path() + "/agent-dropping";
  PGH_ASSERT_OK_AND_ASSIGN(std::unique_ptr<PghaulAgent> dropping,
                           PghaulAgent::Create(dropping_dir, options));
  PGH_ASSERT_OK(RunChecked({"chown", "-R", "postgres:postgres", dropping_dir}).status());
  PGH_ASSERT_OK(dropping->Start());
  PGH_ASSERT_OK(WaitOnline("legacy", absl::Seconds(15)).status());
  // Every uid of the process (real, effective, saved, filesystem) is postgres's.
  PGH_ASSERT_OK_AND_ASSIGN(std::string status,
                           ReadFile(absl::StrCat("/proc/", dropping->process()->pid(), "/status")));
  PGH_ASSERT_OK_AND_ASSIGN(std::string postgres_uid, RunChecked({"id", "-u", "postgres"}));
  postgres_uid = std::string(absl::StripAsciiWhitespace(postgres_uid));
  std::string uid_line;
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (absl::StartsWith(line, "Uid:")) uid_line = std::string(line);
  }
  EXPECT_EQ(uid_line, absl::StrCat("Uid:\t", postgres_uid, "\t", postgres_uid, "\t", postgres_uid,
                                   "\t", postgres_uid))
      << status;
}

TEST_F(AgentsLinkTest, CliReportsAnUnreachableControllerWithExitCode69) {
  // Nothing listens on the controller's address yet.
  PghaulCli cli(absl::StrCat(network_->Address("controller"), ":", kControllerPort),
                network_->Namespace("controller"));
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult result, cli.Run({"agents", "--output", "json"}));
  EXPECT_EQ(result.exit_code, 69) << result.stderr_text;
  EXPECT_EQ(result.stdout_text, "");
  std::vector<std::string> lines = absl::StrSplit(result.stderr_text, '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.size(), 1u) << result.stderr_text;
  EXPECT_TRUE(absl::StrContains(result.stderr_text, cli.controller_address()))
      << result.stderr_text;
}

}  // namespace
}  // namespace pghaul::integration
