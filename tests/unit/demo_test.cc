// `pghaul demo`: the files it writes are accepted by the real parsers and say what the demo
// needs; binaries are found in both layouts; the summary reads what `status -o json` prints;
// the process helpers and Ctrl-C handling behave.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/agent_config.h"
#include "cli/commands_demo.h"
#include "cli/demo_data.h"
#include "cli/demo_process.h"
#include "cli/demo_runner.h"
#include "cli/demo_setup.h"
#include "common/time_proto.h"
#include "controller/controller_config.h"
#include "controller/plan.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::cli {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kDir[] = "/tmp/pghaul-demo-abc123";

TEST(DemoLayoutTest, PutsEveryPathUnderTheDemoDirectory) {
  DemoLayout layout = MakeDemoLayout(kDir);
  EXPECT_EQ(layout.legacy.data_dir, "/tmp/pghaul-demo-abc123/legacy/data");
  EXPECT_EQ(layout.target.socket_dir, "/tmp/pghaul-demo-abc123/target/run");
  EXPECT_EQ(layout.repository, "/tmp/pghaul-demo-abc123/repo");
  EXPECT_EQ(layout.controller_state_dir, "/tmp/pghaul-demo-abc123/controller/state");
  EXPECT_NE(layout.legacy.port, layout.target.port);
  EXPECT_EQ(layout.legacy.agent_id, "legacy");
  EXPECT_EQ(layout.target.agent_id, "target");
}

TEST(DemoDirectoryTest, MakesRelativePathsAbsoluteAndNormal) {
  EXPECT_EQ(NormalizeDemoDirectory("demo/", "/home/ann").value(), "/home/ann/demo");
  EXPECT_EQ(NormalizeDemoDirectory("/tmp//x/./y/../z/", "/").value(), "/tmp/x/z");
}

TEST(DemoDirectoryTest, RefusesCharactersAShellWouldInterpret) {
  for (const char* dir : {"/tmp/my demo", "/tmp/a$b", "/tmp/a;b", "/tmp/it's"}) {
    absl::StatusOr<std::string> normalized = NormalizeDemoDirectory(dir, "/");
    EXPECT_TRUE(absl::IsInvalidArgument(normalized.status())) << dir;
    EXPECT_THAT(normalized.status().message(), HasSubstr("only letters, digits")) << dir;
  }
}

TEST(DemoDirectoryTest, RefusesTheRootDirectoryAndPathsTooLongForASocket) {
  EXPECT_TRUE(absl::IsInvalidArgument(NormalizeDemoDirectory("/", "/").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(NormalizeDemoDirectory("/tmp/..", "/").status()));
  std::string long_dir = "/tmp/" + std::string(80, 'x');
  absl::StatusOr<std::string> normalized = NormalizeDemoDirectory(long_dir, "/");
  EXPECT_TRUE(absl::IsInvalidArgument(normalized.status()));
  EXPECT_THAT(normalized.status().message(), HasSubstr("too long"));
  // The longest path that still fits: <dir>/target/run/.s.PGSQL.5434 is 107 bytes.
  std::string longest = "/tmp/" + std::string(77, 'x');
  EXPECT_TRUE(NormalizeDemoDirectory(longest, "/").ok());
}

TEST(DemoConfigTest, ControllerConfigIsAcceptedAndPicksAFreeLoopbackPort) {
  DemoLayout layout = MakeDemoLayout(kDir);
  absl::StatusOr<controller::ControllerConfig> config =
      controller::ParseControllerConfig(DemoControllerConfig(layout), "controller.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen_address, "127.0.0.1:0");
  EXPECT_TRUE(config->insecure);
  EXPECT_EQ(config->state_dir, layout.controller_state_dir);
  EXPECT_EQ(config->log_format, "text");
}

TEST(DemoConfigTest, AgentConfigsAreAcceptedAndReachTheirOwnCluster) {
  DemoLayout layout = MakeDemoLayout(kDir);
  for (const DemoHost* host : {&layout.legacy, &layout.target}) {
    absl::StatusOr<agent::AgentConfig> config = agent::ParseAgentConfig(
        DemoAgentConfig(layout, *host, "127.0.0.1:41234", "/usr/bin/pgbackrest"), "agent.yaml");
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->agent_id, host->agent_id);
    EXPECT_EQ(config->controller_address, "127.0.0.1:41234");
    EXPECT_TRUE(config->controller_insecure);
    EXPECT_EQ(config->postgres.socket_dir, host->socket_dir);
    EXPECT_EQ(config->postgres.port, host->port);
    EXPECT_EQ(config->data_directory, host->data_dir);
    EXPECT_EQ(config->state_dir, host->agent_state_dir);
    EXPECT_THAT(config->roots, Contains(layout.repository));
    EXPECT_EQ(config->service.method, agent::ServiceControlConfig::Method::kPgCtl);
    EXPECT_EQ(config->service.log_file, host->postgres_log);
    // After the restore, the target's postgresql.conf is legacy's: the start options keep the
    // target on its own port and socket.
    EXPECT_THAT(config->service.pg_ctl_options,
                ElementsAre(absl::StrCat("-p ", host->port), "-k " + host->socket_dir));
  }
}

TEST(DemoConfigTest, PostgresSettingsPutTheSocketInTheHostDirectoryWithoutTcp) {
  DemoLayout layout = MakeDemoLayout(kDir);
  std::vector<std::string> settings = DemoPostgresSettings(layout.target);
  EXPECT_THAT(settings, Contains(absl::StrCat("port = ", layout.target.port)));
  EXPECT_THAT(settings, Contains("unix_socket_directories = '/tmp/pghaul-demo-abc123/target/run'"));
  EXPECT_THAT(settings, Contains("listen_addresses = ''"));
}

TEST(DemoPlanTest, PlanIsAcceptedAndMovesLegacyToTargetThroughTheDemoRepository) {
  DemoLayout layout = MakeDemoLayout(kDir);
  absl::StatusOr<controller::Plan> plan = controller::ParsePlan(DemoPlan(layout), "plan.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->name, "demo");
  EXPECT_EQ(plan->source_agent, "legacy");
  EXPECT_EQ(plan->target_agent, "target");
  EXPECT_EQ(plan->target_data_directory, layout.target.data_dir);
  EXPECT_TRUE(plan->target_allow_overwrite);
  EXPECT_EQ(plan->stanza, "demo");
  EXPECT_EQ(plan->repository.kind, controller::RepositoryKind::kPosix);
  EXPECT_EQ(plan->repository.posix.path, layout.repository);
  EXPECT_TRUE(plan->source_restart_allowed);
  EXPECT_EQ(plan->fence, controller::FenceMethod::kReadOnly);
  EXPECT_FALSE(plan->window.has_value());
}

TEST(DemoBinariesTest, FindsTheDaemonsInTheBuildLayout) {
  std::set<std::string> present = {"/src/build/agent/pghaul-agent",
                                   "/src/build/controller/pghaul-controller"};
  absl::StatusOr<DemoBinaries> binaries = FindDemoBinaries(
      "/src/build/cli/pghaul", [&](const std::string& path) { return present.count(path) > 0; });
  ASSERT_TRUE(binaries.ok()) << binaries.status();
  EXPECT_EQ(binaries->pghaul, "/src/build/cli/pghaul");
  EXPECT_EQ(binaries->agent, "/src/build/agent/pghaul-agent");
  EXPECT_EQ(binaries->controller, "/src/build/controller/pghaul-controller");
}

TEST(DemoBinariesTest, PrefersTheDaemonsBesidePghaulInAnInstalledLayout) {
  std::set<std::string> present = {"/usr/local/bin/pghaul-agent",
                                   "/usr/local/bin/pghaul-controller",
                                   "/usr/local/agent/pghaul-agent"};
  absl::StatusOr<DemoBinaries> binaries = FindDemoBinaries(
      "/usr/local/bin/pghaul", [&](const std::string& path) { return present.count(path) > 0; });
  ASSERT_TRUE(binaries.ok()) << binaries.status();
  EXPECT_EQ(binaries->agent, "/usr/local/bin/pghaul-agent");
  EXPECT_EQ(binaries->controller, "/usr/local/bin/pghaul-controller");
}

TEST(DemoBinariesTest, NamesEveryPathTriedWhenADaemonIsMissing) {
  std::set<std::string> present = {"/src/build/agent/pghaul-agent"};
  absl::StatusOr<DemoBinaries> binaries = FindDemoBinaries(
      "/src/build/cli/pghaul", [&](const std::string& path) { return present.count(path) > 0; });
  ASSERT_TRUE(absl::IsNotFound(binaries.status()));
  EXPECT_THAT(binaries.status().message(),
              AllOf(HasSubstr("/src/build/cli/pghaul-controller"),
                    HasSubstr("/src/build/controller/pghaul-controller"),
                    HasSubstr("cmake --build"), Not(HasSubstr("pghaul-agent ("))));
}

TEST(DemoBinariesTest, FindsAProgramInPathSkippingRelativeEntries) {
  std::set<std::string> present = {"pgbackrest", "/usr/bin/pgbackrest", "/opt/bin/pgbackrest"};
  auto exists = [&](const std::string& path) { return present.count(path) > 0; };
  EXPECT_EQ(FindInPath("pgbackrest", ".:/usr/local/bin:/usr/bin:/opt/bin", exists).value(),
            "/usr/bin/pgbackrest");
  absl::StatusOr<std::string> missing = FindInPath("pgbackrest", "/usr/local/bin", exists);
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  EXPECT_THAT(missing.status().message(), HasSubstr("/usr/local/bin"));
}

v1::MigrationInfo CompletedMigration() {
  v1::MigrationInfo migration;
  migration.set_migration_id("demo");
  migration.set_state("completed");
  migration.set_source_agent("legacy");
  migration.set_target_agent("target");
  migration.set_stanza("demo");
  migration.set_repository("posix /tmp/pghaul-demo-abc123/repo");
  absl::Time start = absl::FromUnixSeconds(1700000000);
  struct PhaseTiming {
    const char* name;
    double seconds;
  };
  for (PhaseTiming timing :
       {PhaseTiming{"preflight", 0.4}, PhaseTiming{"backup", 12.34}, PhaseTiming{"restore", 75}}) {
    v1::PhaseInfo* phase = migration.add_phases();
    phase->set_name(timing.name);
    phase->set_state("succeeded");
    *phase->mutable_started_at() = ToProto(start);
    start += absl::Seconds(timing.seconds);
    *phase->mutable_finished_at() = ToProto(start);
  }
  v1::PhaseInfo* pending = migration.add_phases();
  pending->set_name("finish");
  pending->set_state("pending");
  migration.set_backup_bytes(160 * 1024 * 1024);
  migration.set_backup_label("20261126-101500F");
  migration.set_downtime_seconds(1.94);
  v1::VerifyReport* verify = migration.mutable_verify();
  verify->set_passed(true);
  verify->set_objects_compared(30);
  verify->set_objects_matching(29);
  v1::TableComparison* sessions = verify->add_differences();
  sessions->set_table("postgres/shop.sessions");
  sessions->set_status("expected-empty");
  return migration;
}

TEST(DemoSummaryTest, ShowsPhaseDurationsBytesDowntimeAndVerify) {
  std::string summary = FormatDemoSummary(CompletedMigration());
  EXPECT_THAT(summary, HasSubstr("Migration demo: completed (legacy -> target"));
  EXPECT_THAT(summary, HasSubstr("preflight   succeeded   0.4s"));
  EXPECT_THAT(summary, HasSubstr("backup      succeeded   12.3s"));
  EXPECT_THAT(summary, HasSubstr("restore     succeeded   1m15s"));
  EXPECT_THAT(summary, HasSubstr("finish      pending     -"));
  EXPECT_THAT(summary, HasSubstr("total                   1m28s"));
  EXPECT_THAT(summary, HasSubstr("160.0 MiB (set 20261126-101500F)"));
  EXPECT_THAT(summary, HasSubstr("1.9s (from the source's fence to the promoted target)"));
  EXPECT_THAT(summary, HasSubstr("passed: 29 of 30 objects match"));
  EXPECT_THAT(summary, HasSubstr("empty on the target as expected (unlogged): "
                                 "postgres/shop.sessions"));
  EXPECT_THAT(summary, Not(HasSubstr("differ:")));
}

TEST(DemoSummaryTest, NamesTablesThatDiffer) {
  v1::MigrationInfo migration = CompletedMigration();
  migration.mutable_verify()->set_passed(false);
  v1::TableComparison* bad = migration.mutable_verify()->add_differences();
  bad->set_table("postgres/shop.orders_2024");
  bad->set_status("mismatch");
  EXPECT_THAT(
      FormatDemoSummary(migration),
      AllOf(HasSubstr("FAILED"), HasSubstr("differ: postgres/shop.orders_2024 (mismatch)")));
}

TEST(DemoSummaryTest, LeavesOutDowntimeBeforeACutover) {
  v1::MigrationInfo migration = CompletedMigration();
  migration.set_state("failed");
  migration.set_downtime_seconds(0);
  EXPECT_THAT(FormatDemoSummary(migration), Not(HasSubstr("Downtime")));
  v1::PhaseInfo* cutover = migration.add_phases();
  cutover->set_name("cutover");
  cutover->set_state("succeeded");
  EXPECT_THAT(FormatDemoSummary(migration),
              HasSubstr("Downtime:    0.0s (from the source's fence"));
}

TEST(DemoSummaryTest, FormatsDurationsForPeople) {
  EXPECT_EQ(FormatDemoDuration(absl::Milliseconds(420)), "0.4s");
  EXPECT_EQ(FormatDemoDuration(absl::Seconds(59.9)), "59.9s");
  EXPECT_EQ(FormatDemoDuration(absl::Seconds(65)), "1m05s");
  EXPECT_EQ(FormatDemoDuration(absl::Hours(1) + absl::Minutes(2)), "1h02m");
  EXPECT_EQ(FormatDemoDuration(-absl::Seconds(3)), "0.0s");
}

TEST(DemoSummaryTest, ReadsStatusJsonBareOrUnderMigration) {
  std::string bare =
      R"({"migration_id":"demo","state":"completed","backup_bytes":"1048576",)"
      R"("phases":[{"name":"backup","state":"succeeded","started_at":"2026-11-26T10:00:00Z",)"
      R"("finished_at":"2026-11-26T10:00:12.500Z"}],"a_field_from_a_newer_controller":1})";
  absl::StatusOr<v1::MigrationInfo> migration = ParseMigrationJson(bare);
  ASSERT_TRUE(migration.ok()) << migration.status();
  EXPECT_EQ(migration->backup_bytes(), 1048576u);
  EXPECT_THAT(FormatDemoSummary(*migration), HasSubstr("backup   succeeded   12.5s"));

  absl::StatusOr<v1::MigrationInfo> wrapped =
      ParseMigrationJson(R"({"migration":{"migration_id":"demo","state":"failed"},"events":[]})");
  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  EXPECT_EQ(wrapped->state(), "failed");

  EXPECT_TRUE(absl::IsInvalidArgument(ParseMigrationJson("not json").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ParseMigrationJson(R"({"state":"completed"})").status()));
}

TEST(DemoDataTest, SampleSqlHoldsEveryKindOfContentTheIssueAsksFor) {
  std::string sql(DemoSampleSql());
  for (const char* piece :
       {"numeric", "'NaN'", "jsonb", "text[]", "bytea", "lo_from_bytea", "PARTITION BY RANGE",
        "DEFAULT;", "CREATE MATERIALIZED VIEW", "CREATE SEQUENCE", "GENERATED ALWAYS AS IDENTITY",
        "CREATE UNLOGGED TABLE", "CREATE DATABASE inventory", "\\connect inventory"}) {
    EXPECT_THAT(sql, HasSubstr(piece));
  }
  EXPECT_THAT(sql, Not(HasSubstr("random()")));  // two runs load the same data
}

TEST(DemoCommandTest, ParsesItsFlags) {
  CLI::App app("test");
  DemoOptions options;
  CLI::App* demo = AddDemoSubcommand(app, options);
  std::vector<const char*> argv = {"pghaul", "demo", "--keep", "--scale", "3", "--dir", "/tmp/d"};
  app.parse(static_cast<int>(argv.size()), argv.data());
  EXPECT_TRUE(demo->parsed());
  EXPECT_TRUE(options.keep);
  EXPECT_EQ(options.scale, 3);
  EXPECT_EQ(options.dir, "/tmp/d");
}

TEST(DemoCommandTest, DefaultsToScaleTenInANewTemporaryDirectory) {
  CLI::App app("test");
  DemoOptions options;
  options.scale = 0;
  AddDemoSubcommand(app, options);
  std::vector<const char*> argv = {"pghaul", "demo"};
  app.parse(static_cast<int>(argv.size()), argv.data());
  EXPECT_FALSE(options.keep);
  EXPECT_EQ(options.scale, 10);
  EXPECT_EQ(options.dir, "");
}

TEST(DemoCommandTest, PluggedCommandIsTheDemoSubcommand) {
  CLI::App app("test");
  PluggedDemoCommand plugged = AddDemoCommand(app);
  std::vector<const char*> argv = {"pghaul", "demo", "--scale", "2"};
  app.parse(static_cast<int>(argv.size()), argv.data());
  EXPECT_EQ(plugged.first->get_name(), "demo");
  EXPECT_TRUE(plugged.first->parsed());
  EXPECT_TRUE(static_cast<bool>(plugged.second));
}

TEST(DemoCommandTest, RefusesAScaleOutOfRange) {
  for (const char* scale : {"0", "1001", "ten"}) {
    CLI::App app("test");
    DemoOptions options;
    AddDemoSubcommand(app, options);
    std::vector<const char*> argv = {"pghaul", "demo", "--scale", scale};
    EXPECT_THROW(app.parse(static_cast<int>(argv.size()), argv.data()), CLI::ParseError) << scale;
  }
}

TEST(DemoProcessTest, WrapsForAnotherUserWithSetprivAndKeepsThePidTheProgramsOwn) {
  EXPECT_THAT(WrapForUser({"/bin/x", "-v"}, "", false), ElementsAre("/bin/x", "-v"));
  EXPECT_THAT(WrapForUser({"/bin/x"}, "postgres", true),
              ElementsAre("/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres",
                          "--init-groups", "--pdeathsig=KILL", "/bin/x"));
  EXPECT_THAT(WrapForUser({"/bin/x"}, "", true),
              ElementsAre("/usr/bin/setpriv", "--pdeathsig=KILL", "/bin/x"));
}

class DemoProcessFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pghaul-demo-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(DemoProcessFilesTest, TailOfFileKeepsTheLastLines) {
  std::string path = dir_ + "/log";
  std::ofstream file(path);
  for (int i = 1; i <= 30; ++i) file << "line " << i << "\n";
  file.close();
  EXPECT_EQ(TailOfFile(path, 3), "line 28\nline 29\nline 30\n");
  EXPECT_EQ(TailOfFile(dir_ + "/missing", 3), "");
}

TEST_F(DemoProcessFilesTest, DaemonOutputGoesToItsLogAndExitCodesComeBack) {
  absl::StatusOr<std::unique_ptr<DemoInterrupts>> interrupts = DemoInterrupts::Install();
  ASSERT_TRUE(interrupts.ok()) << interrupts.status();
  std::string log = dir_ + "/daemon.log";
  absl::StatusOr<pid_t> daemon = SpawnDaemon({"/bin/echo", "hello from the daemon"}, {}, log);
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  EXPECT_EQ(WaitForChild(*daemon, **interrupts).value(), 0);
  EXPECT_EQ(TailOfFile(log, 5), "hello from the daemon\n");

  absl::StatusOr<pid_t> failing = SpawnForeground({"/bin/false"}, {});
  ASSERT_TRUE(failing.ok()) << failing.status();
  EXPECT_EQ(WaitForChild(*failing, **interrupts).value(), 1);
  EXPECT_FALSE(SpawnForeground({"relative/program"}, {}).ok());
}

TEST(DemoInterruptsTest, ASignalCancelsTheRunningCommandAndHandlersAreRestoredAfterwards) {
  struct sigaction before {};
  sigaction(SIGINT, nullptr, &before);
  {
    absl::StatusOr<std::unique_ptr<DemoInterrupts>> interrupts = DemoInterrupts::Install();
    ASSERT_TRUE(interrupts.ok()) << interrupts.status();
    EXPECT_FALSE(DemoInterrupts::Install().ok());  // one at a time
    EXPECT_FALSE((*interrupts)->interrupted());

    ASSERT_EQ(raise(SIGINT), 0);
    // Returns as soon as the watcher has seen the signal; the timeout only bounds a failure.
    EXPECT_FALSE((*interrupts)->Sleep(absl::Seconds(30)));
    EXPECT_EQ((*interrupts)->signal_number(), SIGINT);

    SubprocessSpec spec;
    spec.argv = {"/bin/sleep", "30"};
    spec.kill_grace = absl::Seconds(1);
    absl::Time started = absl::Now();
    absl::StatusOr<CommandRun> run = RunCapturedCommand(spec, **interrupts);
    EXPECT_TRUE(absl::IsCancelled(run.status())) << run.status();
    EXPECT_LT(absl::Now() - started, absl::Seconds(20));

    absl::StatusOr<pid_t> child = SpawnForeground({"/bin/sleep", "30"}, {});
    ASSERT_TRUE(child.ok());
    EXPECT_TRUE(absl::IsCancelled(WaitForChild(*child, **interrupts).status()));
    EXPECT_TRUE(ChildExited(*child, nullptr));  // reaped
  }
  struct sigaction after {};
  sigaction(SIGINT, nullptr, &after);
  EXPECT_EQ(after.sa_handler, before.sa_handler);
}

}  // namespace
}  // namespace pghaul::cli
