#include "agent/service_control.h"

#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/pg_connection.h"
#include "agent/sql_catalogue.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/fixture/command.h"
#include "tests/integration/fixture/pg_cluster.h"
#include "tests/integration/fixture/temp_dir.h"

namespace pghaul::agent {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using Argv = std::vector<std::string>;
using ::testing::HasSubstr;
using ::testing::Not;
using Values = std::map<std::string, std::string>;
using Method = ServiceControlConfig::Method;

v1::ServiceAction Action(v1::ServiceAction::Action verb, const std::string& stop_mode = "",
                         uint32_t wait_seconds = 0) {
  v1::ServiceAction action;
  action.set_action(verb);
  action.set_stop_mode(stop_mode);
  action.set_wait_seconds(wait_seconds);
  return action;
}

std::vector<std::string> Command(const ServiceControlConfig& config,
                                 const v1::ServiceAction& action) {
  absl::StatusOr<std::vector<std::string>> argv = ServiceCommand(config, action);
  EXPECT_TRUE(argv.ok()) << argv.status();
  return argv.ok() ? *argv : std::vector<std::string>{};
}

ServiceControlConfig PgCtlConfig() {
  ServiceControlConfig config;
  config.method = Method::kPgCtl;
  config.data_directory = "/var/lib/postgresql/15/main";
  config.log_file = "/var/log/postgresql/pg.log";
  config.pg_ctl_options = {"-k /run/x -p 5433", "-c listen_addresses=''"};
  return config;
}

ServiceControlConfig PgCtlClusterConfig() {
  ServiceControlConfig config;
  config.method = Method::kPgCtlCluster;
  return config;
}

ServiceControlConfig SystemdConfig() {
  ServiceControlConfig config;
  config.method = Method::kSystemd;
  config.data_directory = "/var/lib/postgresql/15/main";
  return config;
}

// ---------------------------------------------------------------------------------------------
// Golden argv for every action and method.

TEST(ServiceCommandTest, PgCtlArgvForEveryAction) {
  const ServiceControlConfig config = PgCtlConfig();
  const std::string pg_ctl = "/usr/lib/postgresql/15/bin/pg_ctl";
  const std::string data = "/var/lib/postgresql/15/main";
  EXPECT_THAT(
      Command(config, Action(v1::ServiceAction::START)),
      Argv({pg_ctl, "start", "-D", data, "-w", "-t", "60", "-l", "/var/log/postgresql/pg.log", "-o",
            "-k /run/x -p 5433", "-o", "-c listen_addresses=''"}));
  EXPECT_THAT(Command(config, Action(v1::ServiceAction::STOP)),
              Argv({pg_ctl, "stop", "-D", data, "-m", "fast", "-w", "-t", "60"}));
  EXPECT_THAT(Command(config, Action(v1::ServiceAction::STOP, "immediate", 5)),
              Argv({pg_ctl, "stop", "-D", data, "-m", "immediate", "-w", "-t", "5"}));
  EXPECT_THAT(Command(config, Action(v1::ServiceAction::RESTART, "smart", 120)),
              Argv({pg_ctl, "restart", "-D", data, "-m", "smart", "-w", "-t", "120", "-l",
                    "/var/log/postgresql/pg.log", "-o", "-k /run/x -p 5433", "-o",
                    "-c listen_addresses=''"}));
  EXPECT_THAT(Command(config, Action(v1::ServiceAction::STATUS)),
              Argv({pg_ctl, "status", "-D", data}));
  EXPECT_THAT(Command(config, Action(v1::ServiceAction::PROMOTE, "", 30)),
              Argv({pg_ctl, "promote", "-D", data, "-w", "-t", "30"}));
}

TEST(ServiceCommandTest, PgCtlStartWithoutLogFileOrOptionsHasNeither) {
  ServiceControlConfig config = PgCtlConfig();
  config.log_file.clear();
  config.pg_ctl_options.clear();
  EXPECT_THAT(Command(config, Action(v1::ServiceAction::START)),
              ElementsAre(config.pg_ctl, "start", "-D", config.data_directory, "-w", "-t", "60"));
}

TEST(ServiceCommandTest, PgCtlClusterArgvForEveryAction) {
  const ServiceControlConfig config = PgCtlClusterConfig();
  const std::string tool = "/usr/bin/pg_ctlcluster";
  EXPECT_THAT(Command(config, Action(v1::ServiceAction::START)),
              Argv({tool, "15", "main", "start", "--", "-w", "-t", "60"}));
  EXPECT_THAT(Command(config, Action(v1::ServiceAction::STOP)),
              Argv({tool, "-m", "fast", "15", "main", "stop", "--", "-w", "-t", "60"}));
  EXPECT_THAT(Command(config, Action(v1::ServiceAction::RESTART, "immediate", 9)),
              Argv({tool, "-m", "immediate", "15", "main", "restart", "--", "-w", "-t", "9"}));
  EXPECT_THAT(Command(config, Action(v1::ServiceAction::STATUS)),
              Argv({tool, "15", "main", "status"}));
  EXPECT_THAT(Command(config, Action(v1::ServiceAction::PROMOTE)),
              Argv({tool, "15", "main", "promote", "--", "-w", "-t", "60"}));
}

TEST(ServiceCommandTest, SystemdArgvForEveryActionAndPgCtlForPromote) {
  const ServiceControlConfig config = SystemdConfig();
  const std::string systemctl = "/usr/bin/systemctl";
  const std::string unit = "postgresql@15-main.service";
  EXPECT_THAT(Command(config, Action(v1::ServiceAction::START)),
              Argv({systemctl, "--no-ask-password", "start", unit}));
  EXPECT_THAT(Command(config, Action(v1::ServiceAction::STOP)),
              Argv({systemctl, "--no-ask-password", "stop", unit}));
  EXPECT_THAT(Command(config, Action(v1::ServiceAction::STOP, "fast")),
              Argv({systemctl, "--no-ask-password", "stop", unit}));
  EXPECT_THAT(Command(config, Action(v1::ServiceAction::RESTART)),
              Argv({systemctl, "--no-ask-password", "restart", unit}));
  EXPECT_THAT(Command(config, Action(v1::ServiceAction::STATUS)),
              Argv({systemctl, "is-active", unit}));
  EXPECT_THAT(Command(config, Action(v1::ServiceAction::PROMOTE)),
              Argv({"/usr/lib/postgresql/15/bin/pg_ctl", "promote", "-D",
                    "/var/lib/postgresql/15/main", "-w", "-t", "60"}));
}

TEST(ServiceCommandTest, RunAsPrefixComesFirst) {
  ServiceControlConfig config = PgCtlClusterConfig();
  config.run_as_prefix = {"/usr/sbin/runuser", "-u", "postgres", "--"};
  EXPECT_THAT(Command(config, Action(v1::ServiceAction::STATUS)),
              Argv({"/usr/sbin/runuser", "-u", "postgres", "--", "/usr/bin/pg_ctlcluster", "15",
                    "main", "status"}));
}

TEST(ServiceCommandTest, RefusesAStopModeOutsideTheThreeKnown) {
  for (const ServiceControlConfig& config : {PgCtlConfig(), PgCtlClusterConfig()}) {
    for (const char* mode : {"Fast", "kill", "f", "fast; rm -rf /", "-m"}) {
      absl::StatusOr<std::vector<std::string>> argv =
          ServiceCommand(config, Action(v1::ServiceAction::STOP, mode));
      EXPECT_EQ(argv.status().code(), absl::StatusCode::kInvalidArgument) << mode;
      EXPECT_THAT(argv.status().message(), HasSubstr("smart, fast or immediate"));
    }
  }
}

TEST(ServiceCommandTest, SystemdRefusesAStopModeTheUnitCannotHonour) {
  for (const char* mode : {"immediate", "smart"}) {
    for (auto verb : {v1::ServiceAction::STOP, v1::ServiceAction::RESTART}) {
      absl::StatusOr<std::vector<std::string>> argv =
          ServiceCommand(SystemdConfig(), Action(verb, mode));
      EXPECT_EQ(argv.status().code(), absl::StatusCode::kInvalidArgument) << mode;
      EXPECT_THAT(argv.status().message(), HasSubstr("pg_ctl or pg_ctlcluster"));
    }
  }
}

TEST(ServiceCommandTest, RefusesAnUnspecifiedAction) {
  for (const ServiceControlConfig& config :
       {PgCtlConfig(), PgCtlClusterConfig(), SystemdConfig()}) {
    EXPECT_EQ(ServiceCommand(config, Action(v1::ServiceAction::ACTION_UNSPECIFIED)).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(ServiceCommandTest, RefusesAWaitOverADay) {
  EXPECT_EQ(
      ServiceCommand(PgCtlConfig(), Action(v1::ServiceAction::START, "", 86401)).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ServiceCommand(PgCtlConfig(), Action(v1::ServiceAction::START, "", 86400)).ok());
}

TEST(ServiceCommandTest, RefusesConfigurationPgCtlsShellWouldMisread) {
  ServiceControlConfig config = PgCtlConfig();
  config.data_directory = "/var/lib/postgresql/\"$(reboot)\"";
  EXPECT_EQ(ServiceCommand(config, Action(v1::ServiceAction::STATUS)).status().code(),
            absl::StatusCode::kInvalidArgument);

  config = PgCtlConfig();
  config.log_file = "/var/log/`id`.log";
  EXPECT_EQ(ServiceCommand(config, Action(v1::ServiceAction::START)).status().code(),
            absl::StatusCode::kInvalidArgument);

  config = PgCtlConfig();
  config.pg_ctl_options = {"-p 5433; touch /tmp/owned"};
  EXPECT_EQ(ServiceCommand(config, Action(v1::ServiceAction::RESTART)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ServiceCommandTest, RefusesMissingOrRelativePaths) {
  ServiceControlConfig config = PgCtlConfig();
  config.data_directory.clear();
  EXPECT_THAT(ServiceCommand(config, Action(v1::ServiceAction::STATUS)).status().message(),
              HasSubstr("data_directory"));

  config = PgCtlConfig();
  config.pg_ctl = "pg_ctl";
  EXPECT_EQ(ServiceCommand(config, Action(v1::ServiceAction::STATUS)).status().code(),
            absl::StatusCode::kInvalidArgument);

  config = PgCtlConfig();
  config.run_as_prefix = {"runuser", "-u", "postgres", "--"};
  EXPECT_EQ(ServiceCommand(config, Action(v1::ServiceAction::STATUS)).status().code(),
            absl::StatusCode::kInvalidArgument);

  // systemd has no promote verb: pg_ctl needs the data directory.
  config = SystemdConfig();
  config.data_directory.clear();
  EXPECT_EQ(ServiceCommand(config, Action(v1::ServiceAction::PROMOTE)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ServiceCommand(config, Action(v1::ServiceAction::STATUS)).ok());
}

TEST(ServiceCommandTest, RefusesNamesThatCouldBeReadAsOptions) {
  ServiceControlConfig config = PgCtlClusterConfig();
  config.cluster_name = "--force";
  EXPECT_EQ(ServiceCommand(config, Action(v1::ServiceAction::STOP)).status().code(),
            absl::StatusCode::kInvalidArgument);
  config = PgCtlClusterConfig();
  config.cluster_version = "15 main";
  EXPECT_EQ(ServiceCommand(config, Action(v1::ServiceAction::STOP)).status().code(),
            absl::StatusCode::kInvalidArgument);
  config = SystemdConfig();
  config.unit = "-H otherhost";
  EXPECT_EQ(ServiceCommand(config, Action(v1::ServiceAction::STOP)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Against a real, throwaway PostgreSQL 15 cluster, controlled with pg_ctl as the postgres user.

constexpr char kRunuser[] = "/usr/sbin/runuser";
// The server listens only on a socket in the test's private directory: no port collisions.
constexpr int kPort = 5432;

std::string Tool(const char* name) { return absl::StrCat(integration::kPostgresBinDir, "/", name); }

absl::Status RunAsPostgres(const std::vector<std::string>& args) {
  integration::CommandOptions as_postgres;
  as_postgres.launch.run_as = integration::kPostgresOsUser;
  as_postgres.timeout = absl::Seconds(120);
  return integration::RunChecked(args, as_postgres).status();
}

class ServiceControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0 || access(Tool("initdb").c_str(), X_OK) != 0) {
      GTEST_SKIP() << "needs root and " << Tool("initdb") << " (package postgresql-15)";
    }
    absl::StatusOr<std::unique_ptr<integration::TempDir>> temp =
        integration::TempDir::Create("pghaul-service-test.");
    ASSERT_TRUE(temp.ok()) << temp.status();
    temp_ = *std::move(temp);
    // Created but not started: the tests start and stop it through RunServiceAction.
    integration::PgClusterOptions options;
    options.port = kPort;
    options.initdb_args = {"--encoding=UTF8", "--locale=C.UTF-8"};
    absl::StatusOr<std::unique_ptr<integration::PgCluster>> created =
        integration::PgCluster::Create(temp_->path(), std::move(options));
    ASSERT_TRUE(created.ok()) << created.status();
    cluster_ = *std::move(created);
    // The cluster's own directory, owned by postgres; the pg_ctl options below put the socket
    // here, next to data/.
    dir_ = cluster_->dir();

    config_.method = Method::kPgCtl;
    config_.pg_ctl = Tool("pg_ctl");
    config_.data_directory = DataDir();
    config_.log_file = dir_ + "/server.log";
    config_.pg_ctl_options = {
        absl::StrCat("-k ", dir_, " -p ", kPort, " -c listen_addresses='' -c fsync=off")};
    config_.run_as_prefix = {kRunuser, "-u", "postgres", "--"};
  }

  void TearDown() override {
    if (dir_.empty()) return;
    // Whatever state the test left: stop at once any server that runs (pg_ctl fails if none
    // does).
    for (const std::string& data : {DataDir(), StandbyDataDir()}) {
      if (access((data + "/postmaster.pid").c_str(), F_OK) != 0) continue;
      absl::Status stopped =
          RunAsPostgres({Tool("pg_ctl"), "stop", "-D", data, "-m", "immediate", "-w"});
      if (!stopped.ok()) ADD_FAILURE() << "cannot stop the test server: " << stopped;
    }
    cluster_.reset();
    temp_.reset();
  }

  std::string DataDir() const { return dir_ + "/data"; }
  std::string StandbyDataDir() const { return dir_ + "/standby"; }

  PostgresConnection Connection() const {
    PostgresConnection conn;
    conn.socket_dir = dir_;
    conn.port = kPort;
    return conn;
  }

  absl::StatusOr<Values> Run(v1::ServiceAction::Action verb, const std::string& stop_mode = "") {
    return RunServiceAction(config_, Action(verb, stop_mode, 60), lines_.Callback());
  }

  absl::StatusOr<std::string> CheckpointerPid() {
    absl::StatusOr<PgConnection> conn = PgConnection::Open(Connection());
    if (!conn.ok()) return conn.status();
    absl::StatusOr<Values> row = conn->ExecuteOneRow(
        "SELECT pid::text AS pid FROM pg_stat_activity"
        " WHERE backend_type = 'checkpointer'");
    if (!row.ok()) return row.status();
    return row->at("pid");
  }

  struct Lines {
    std::vector<std::string> all;
    Subprocess::LineCallback Callback() {
      return [this](Stream, absl::string_view line) { all.emplace_back(line); };
    }
  };

  std::unique_ptr<integration::TempDir> temp_;
  std::unique_ptr<integration::PgCluster> cluster_;
  std::string dir_;
  ServiceControlConfig config_;
  Lines lines_;
};

TEST_F(ServiceControlTest, StatusOfAStoppedServerIsNotRunningRatherThanAnError) {
  absl::StatusOr<Values> status = Run(v1::ServiceAction::STATUS);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->at("running"), "false");
  EXPECT_THAT(status->at("detail"), HasSubstr("no server running"));
}

TEST_F(ServiceControlTest, StartThenStatusIsRunningAndAQueryWorks) {
  absl::StatusOr<Values> started = Run(v1::ServiceAction::START);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(started->at("running"), "true");
  EXPECT_THAT(lines_.all, Contains(HasSubstr("server started")));

  absl::StatusOr<Values> status = Run(v1::ServiceAction::STATUS);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->at("running"), "true");
  EXPECT_THAT(status->at("detail"), HasSubstr("server is running"));

  v1::SqlQuery query;
  query.set_query(v1::SqlQuery::CURRENT_WAL_LSN);
  absl::StatusOr<Values> lsn = RunSqlQuery(Connection(), query);
  EXPECT_TRUE(lsn.ok()) << lsn.status();
}

TEST_F(ServiceControlTest, StopFastThenStatusIsNotRunning) {
  ASSERT_TRUE(Run(v1::ServiceAction::START).ok());
  absl::StatusOr<Values> stopped = Run(v1::ServiceAction::STOP, "fast");
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->at("running"), "false");
  EXPECT_THAT(stopped->at("detail"), HasSubstr("server stopped"));

  absl::StatusOr<Values> status = Run(v1::ServiceAction::STATUS);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->at("running"), "false");
  EXPECT_FALSE(PgConnection::Open(Connection()).ok());
}

TEST_F(ServiceControlTest, StartAndStopRepeatedSucceedWithoutDoingAnything) {
  ASSERT_TRUE(Run(v1::ServiceAction::START).ok());
  absl::StatusOr<std::string> pid = CheckpointerPid();
  ASSERT_TRUE(pid.ok()) << pid.status();
  absl::StatusOr<Values> again = Run(v1::ServiceAction::START);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, (Values{{"running", "true"}, {"detail", "already running"}}));
  EXPECT_EQ(CheckpointerPid().value_or("none"), *pid);

  ASSERT_TRUE(Run(v1::ServiceAction::STOP).ok());
  absl::StatusOr<Values> stopped_again = Run(v1::ServiceAction::STOP, "immediate");
  ASSERT_TRUE(stopped_again.ok()) << stopped_again.status();
  EXPECT_EQ(*stopped_again, (Values{{"running", "false"}, {"detail", "already stopped"}}));
}

TEST_F(ServiceControlTest, RestartReplacesTheServerProcesses) {
  ASSERT_TRUE(Run(v1::ServiceAction::START).ok());
  absl::StatusOr<std::string> before = CheckpointerPid();
  ASSERT_TRUE(before.ok()) << before.status();

  absl::StatusOr<Values> restarted = Run(v1::ServiceAction::RESTART, "fast");
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  EXPECT_EQ(restarted->at("running"), "true");

  absl::StatusOr<std::string> after = CheckpointerPid();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_NE(*after, *before);
}

TEST_F(ServiceControlTest, PromoteOfAPrimaryFailsWithPgCtlsReason) {
  ASSERT_TRUE(Run(v1::ServiceAction::START).ok());
  absl::StatusOr<Values> promoted = Run(v1::ServiceAction::PROMOTE);
  EXPECT_EQ(promoted.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(promoted.status().message(), HasSubstr("not in standby mode"));
  EXPECT_THAT(promoted.status().message(), HasSubstr("pg_ctl promote exited 1"));
}

TEST_F(ServiceControlTest, PromoteOfAStandbyEndsRecovery) {
  ASSERT_TRUE(Run(v1::ServiceAction::START).ok());
  absl::Status copied = RunAsPostgres({Tool("pg_basebackup"), "-D", StandbyDataDir(), "-h", dir_,
                                       "-p", absl::StrCat(kPort), "-U", "postgres", "-R", "-X",
                                       "stream", "--no-sync", "-c", "fast"});
  ASSERT_TRUE(copied.ok()) << copied;
  // The standby shares the socket directory, on another port.
  ServiceControlConfig standby = config_;
  standby.data_directory = StandbyDataDir();
  standby.log_file = dir_ + "/standby.log";
  standby.pg_ctl_options = {
      absl::StrCat("-k ", dir_, " -p ", kPort + 1, " -c listen_addresses='' -c fsync=off")};
  PostgresConnection standby_connection = Connection();
  standby_connection.port = kPort + 1;
  absl::StatusOr<Values> started =
      RunServiceAction(standby, Action(v1::ServiceAction::START), lines_.Callback());
  ASSERT_TRUE(started.ok()) << started.status();
  v1::SqlQuery replay;
  replay.set_query(v1::SqlQuery::LAST_REPLAY_LSN);
  absl::StatusOr<Values> before = RunSqlQuery(standby_connection, replay);
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_EQ(before->at("in_recovery"), "true");

  absl::StatusOr<Values> promoted =
      RunServiceAction(standby, Action(v1::ServiceAction::PROMOTE), lines_.Callback());
  ASSERT_TRUE(promoted.ok()) << promoted.status();
  EXPECT_EQ(promoted->at("promoted"), "true");
  EXPECT_THAT(promoted->at("detail"), HasSubstr("server promoted"));

  absl::StatusOr<Values> after = RunSqlQuery(standby_connection, replay);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->at("in_recovery"), "false");
}

TEST_F(ServiceControlTest, StatusOfADirectoryThatIsNotAClusterIsAnError) {
  config_.data_directory = dir_;  // exists, owned by postgres, but holds no cluster
  absl::StatusOr<Values> status = Run(v1::ServiceAction::STATUS);
  EXPECT_EQ(status.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.status().message(), HasSubstr("exited 4"));
  EXPECT_THAT(status.status().message(), HasSubstr("not a database cluster directory"));
}

TEST_F(ServiceControlTest, StartFailureCarriesPgCtlsOutput) {
  config_.pg_ctl_options = {
      absl::StrCat("-k ", dir_, " -p ", kPort, " -c listen_addresses='' -c no_such_setting=1")};
  absl::StatusOr<Values> started = Run(v1::ServiceAction::START);
  EXPECT_EQ(started.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(started.status().message(), HasSubstr("could not start server"));
  // pg_ctl says only "Examine the log output"; the reason is in the server's log, whose end the
  // message carries.
  const std::string message(started.status().message());
  const std::string ends = absl::StrCat("the server log (", config_.log_file, ") ends: ");
  ASSERT_THAT(message, HasSubstr(ends));
  EXPECT_THAT(message.substr(message.find(ends)),
              HasSubstr("unrecognized configuration parameter \"no_such_setting\""));
}

}  // namespace
}  // namespace pghaul::agent
