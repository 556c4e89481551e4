// ENABLE_ARCHIVING and RESTORE_ARCHIVING against a real PostgreSQL 15 (the integration fixture's
// PgCluster). The archive_command's program is /bin/true here, so that PostgreSQL really runs
// the command (proving the quoting from ALTER SYSTEM through %-expansion and /bin/sh holds) without
// needing a stanza; restore_keeps_config_test archives into a real pgBackRest repository.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/agent_config.h"
#include "agent/archiving.h"
#include "agent/pgbackrest_config.h"
#include "agent/task_executors.h"
#include "common/files.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/fixture/pg_cluster.h"
#include "tests/integration/fixture/temp_dir.h"
#include "tests/integration/fixture/wait_for.h"

namespace pghaul::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using Values = std::map<std::string, std::string>;

constexpr char kMigration[] = "mig-archiving";
constexpr char kStanza[] = "main";

// Expands archive_command's escapes as PostgreSQL does: %p -> path, %f -> file name, %% -> %.
std::string ExpandLikePostgres(const std::string& command, const std::string& path) {
  std::string out;
  for (size_t i = 0; i < command.size(); ++i) {
    if (command[i] == '%' && i + 1 < command.size()) {
      const char next = command[++i];
      if (next == 'p') {
        out += path;
      } else if (next == 'f') {
        out += path.substr(path.rfind('/') + 1);
      } else if (next == '%') {
        out += '%';
      } else {
        out += '%';
        out += next;
      }
      continue;
    }
    out += command[i];
  }
  return out;
}

TEST(ArchiveCommandForTest, PlainPathsGiveTheDocumentedCommand) {
  EXPECT_EQ(ArchiveCommandFor("/usr/bin/pgbackrest",
                              "/var/lib/pghaul-agent/pgbackrest/mig-1/pgbackrest.conf",
                              "/var/lib/pghaul-agent/pgbackrest/mig-1/conf.d", "main"),
            "/usr/bin/pgbackrest --config=/var/lib/pghaul-agent/pgbackrest/mig-1/pgbackrest.conf "
            "--config-include-path=/var/lib/pghaul-agent/pgbackrest/mig-1/conf.d "
            "--stanza=main archive-push %p");
}

TEST(ArchiveCommandForTest, ShellSeesEachPathAsOneWordWhateverItHolds) {
  absl::StatusOr<std::unique_ptr<integration::TempDir>> temp =
      integration::TempDir::Create("pghaul-archive-command-test.");
  ASSERT_TRUE(temp.ok()) << temp.status();
  absl::StatusOr<std::string> dir = (*temp)->MakeSubdir("it's a 100% \"odd\" $HOME `dir`");
  ASSERT_TRUE(dir.ok()) << dir.status();
  // A stand-in for pgBackRest that prints its argv, one word per line.
  const std::string program = *dir + "/pg backrest";
  ASSERT_TRUE(WriteFileAtomically(program, "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\"\n", 0755).ok());
  const std::string config = *dir + "/pgbackrest.conf";
  const std::string include_path = *dir + "/conf.d";

  const std::string command = ArchiveCommandFor(program, config, include_path, "main");
  SubprocessSpec spec;
  spec.argv = {"/bin/sh", "-c", ExpandLikePostgres(command, "pg_wal/000000010000000000000003")};
  spec.env = {"PATH=/usr/bin:/bin", "HOME=/nonexistent"};
  absl::StatusOr<CapturedOutput> output = RunAndCapture(spec);
  ASSERT_TRUE(output.ok()) << output.status();
  ASSERT_TRUE(output->result.Succeeded()) << output->stderr_text;
  std::vector<std::string> words = absl::StrSplit(output->stdout_text, '\n', absl::SkipEmpty());
  EXPECT_THAT(words,
              ElementsAre(program, "--config=" + config, "--config-include-path=" + include_path,
                          "--stanza=main", "archive-push", "pg_wal/000000010000000000000003"));
}

// A PostgreSQL cluster, an agent configuration and environment pointing at it, and the
// migration's pgBackRest config written (with /bin/true standing in for pgBackRest).
class ArchivingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string initdb = absl::StrCat(integration::kPostgresBinDir, "/initdb");
    if (geteuid() != 0 || access(initdb.c_str(), X_OK) != 0) {
      GTEST_SKIP() << "needs root and " << initdb << " (package postgresql-15)";
    }
    absl::StatusOr<std::unique_ptr<integration::TempDir>> temp =
        integration::TempDir::Create("pghaul-archiving-test.");
    ASSERT_TRUE(temp.ok()) << temp.status();
    temp_ = *std::move(temp);
    // Quotes, spaces and '%' in the state directory reach archive_command.
    absl::StatusOr<std::string> state = temp_->MakeSubdir("state it's 100%", "", 0700);
    ASSERT_TRUE(state.ok()) << state.status();

    integration::PgClusterOptions options;
    options.name = "pg";
    options.conf_lines = extra_conf_lines_;
    absl::StatusOr<std::unique_ptr<integration::PgCluster>> cluster =
        integration::PgCluster::Create(temp_->path(), std::move(options));
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    absl::Status started = cluster_->Start();
    ASSERT_TRUE(started.ok()) << started;

    config_.agent_id = "agent-archiving";
    config_.postgres.socket_dir = cluster_->socket_dir();
    config_.postgres.port = cluster_->port();
    config_.data_directory = cluster_->data_dir();
    config_.pgbackrest_binary = "/bin/true";
    config_.state_dir = *state;
    config_.roots = {temp_->path()};
    env_ = PgBackRestEnvironmentFor(config_);
  }

  void TearDown() override {
    cluster_.reset();
    temp_.reset();
  }

  v1::ConfigurePgBackRest Configure() const {
    v1::ConfigurePgBackRest configure;
    configure.set_migration_id(kMigration);
    configure.set_stanza(kStanza);
    configure.mutable_repository()->mutable_posix()->set_path(temp_->path() + "/repo");
    return configure;
  }

  void WriteConfig() {
    absl::StatusOr<std::string> path = WritePgBackRestConfig(env_, Configure());
    ASSERT_TRUE(path.ok()) << path.status();
  }

  std::string Sql(const std::string& sql) {
    absl::StatusOr<std::string> out = cluster_->Query(sql);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.value_or("");
  }
  // The raw value (pg_settings.setting shows archive_command as "(disabled)" while archiving is
  // off).
  std::string Setting(const std::string& name) {
    return Sql(absl::StrCat("SELECT reset_val FROM pg_settings WHERE name = '", name, "'"));
  }
  std::string AutoConf() {
    absl::StatusOr<std::string> text = ReadFile(cluster_->data_dir() + "/postgresql.auto.conf");
    EXPECT_TRUE(text.ok()) << text.status();
    return text.value_or("");
  }
  void Restart() {
    absl::Status stopped = cluster_->Stop("fast");
    ASSERT_TRUE(stopped.ok()) << stopped;
    absl::Status started = cluster_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  absl::StatusOr<Values> Enable() {
    return EnableArchiving(config_.postgres, env_, kMigration, kStanza);
  }
  absl::StatusOr<Values> Restore() { return RestoreArchiving(config_.postgres, env_, kMigration); }

  std::vector<std::string> extra_conf_lines_;
  std::unique_ptr<integration::TempDir> temp_;
  std::unique_ptr<integration::PgCluster> cluster_;
  AgentConfig config_;
  PgBackRestEnvironment env_;
};

TEST_F(ArchivingTest, EnableSavesTheSettingsOnceAndArchivesAfterARestart) {
  ASSERT_NO_FATAL_FAILURE(WriteConfig());
  const std::string command = ArchiveCommandFor("/bin/true", ConfigPath(env_, kMigration),
                                                ConfigIncludePath(env_, kMigration), kStanza);

  absl::StatusOr<Values> first = Enable();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, (Values{{"restart_needed", "true"},
                            {"archive_mode_before", "off"},
                            {"archive_command_before", ""},
                            {"changed", "true"}}));
  EXPECT_EQ(Setting("archive_command"), command);
  // The archiver finds the secrets there, whether the agent runs or not.
  EXPECT_THAT(Setting("archive_command"), HasSubstr("--config-include-path="));
  EXPECT_THAT(AutoConf(), HasSubstr("archive_mode = 'on'"));

  const std::string saved_path = SavedArchivingPath(env_, kMigration);
  struct stat st;
  ASSERT_EQ(stat(saved_path.c_str(), &st), 0) << saved_path;
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  absl::StatusOr<std::string> saved = ReadFile(saved_path);
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_THAT(*saved, HasSubstr("\"archive_mode\": \"off\""));

  // Again before the restart: the first save is kept, archive_mode still waits.
  absl::StatusOr<Values> second = Enable();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->at("restart_needed"), "true");
  EXPECT_EQ(second->at("archive_command_before"), command);
  EXPECT_EQ(ReadFile(saved_path).value_or(""), *saved);

  ASSERT_NO_FATAL_FAILURE(Restart());
  EXPECT_EQ(Sql("SHOW archive_mode"), "on");
  absl::StatusOr<Values> third = Enable();
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->at("restart_needed"), "false");
  EXPECT_EQ(third->at("changed"), "false");
  EXPECT_EQ(third->at("archive_mode_before"), "on");
  EXPECT_EQ(ReadFile(saved_path).value_or(""), *saved);

  // PostgreSQL runs the command (through %-expansion and /bin/sh) and it succeeds.
  Sql("CREATE TABLE t AS SELECT 1 AS i");
  Sql("SELECT pg_switch_wal()");
  absl::Status archived = integration::WaitFor("a WAL segment archived", absl::Seconds(60), [&] {
    absl::StatusOr<std::string> counts =
        cluster_->Query("SELECT archived_count || ' ' || failed_count FROM pg_stat_archiver");
    return counts.ok() && !absl::StartsWith(*counts, "0 ");
  });
  EXPECT_TRUE(archived.ok()) << archived;
  EXPECT_EQ(Sql("SELECT failed_count FROM pg_stat_archiver"), "0");
}

TEST_F(ArchivingTest, RestoreResetsSettingsThatWereNotSetWithAlterSystem) {
  ASSERT_NO_FATAL_FAILURE(WriteConfig());
  ASSERT_TRUE(Enable().ok());
  ASSERT_NO_FATAL_FAILURE(Restart());

  absl::StatusOr<Values> restored = Restore();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(*restored, (Values{{"restart_needed", "true"}}));
  EXPECT_EQ(Setting("archive_command"), "");
  EXPECT_THAT(AutoConf(), Not(HasSubstr("archive_mode")));
  EXPECT_THAT(AutoConf(), Not(HasSubstr("archive_command")));

  ASSERT_NO_FATAL_FAILURE(Restart());
  EXPECT_EQ(Sql("SHOW archive_mode"), "off");
  // Again: the saved file stays, so a retried RESTORE does the same, with nothing left to wait.
  absl::StatusOr<Values> again = Restore();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->at("restart_needed"), "false");
}

class ArchivingAlreadyOnTest : public ArchivingTest {
 protected:
  void SetUp() override {
    extra_conf_lines_ = {"archive_mode = on", "archive_command = '/bin/false %p'"};
    ArchivingTest::SetUp();
  }
};

TEST_F(ArchivingAlreadyOnTest, RestorePutsBackAlterSystemValuesExactlyAndResetsTheOthers) {
  // archive_command from ALTER SYSTEM (with a quote and a backslash, dollar-quoted here),
  // archive_mode from postgresql.conf.
  const std::string original = "/bin/true it's \\x %p";
  Sql("ALTER SYSTEM SET archive_command = $v$/bin/true it's \\x %p$v$");
  Sql("SELECT pg_reload_conf()");
  absl::Status reloaded = integration::WaitFor(
      "the reload", absl::Seconds(10), [&] { return Setting("archive_command") == original; });
  ASSERT_TRUE(reloaded.ok()) << reloaded << " value " << Setting("archive_command");
  ASSERT_NO_FATAL_FAILURE(WriteConfig());

  absl::StatusOr<Values> enabled = Enable();
  ASSERT_TRUE(enabled.ok()) << enabled.status();
  EXPECT_EQ(enabled->at("restart_needed"), "false");
  EXPECT_EQ(enabled->at("changed"), "true");
  EXPECT_EQ(enabled->at("archive_command_before"), original);

  absl::StatusOr<Values> restored = Restore();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->at("restart_needed"), "false");
  EXPECT_EQ(Setting("archive_command"), original);
  EXPECT_EQ(Setting("archive_mode"), "on");
  EXPECT_THAT(AutoConf(), HasSubstr("archive_command"));
  EXPECT_THAT(AutoConf(), Not(HasSubstr("archive_mode")));
}

TEST_F(ArchivingTest, RestoreWithNothingSavedIsNotFoundAndChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(WriteConfig());
  absl::StatusOr<Values> restored = Restore();
  EXPECT_EQ(restored.status().code(), absl::StatusCode::kNotFound) << restored.status();
  EXPECT_THAT(AutoConf(), Not(HasSubstr("archive")));
}

TEST_F(ArchivingTest, EnableWithoutTheMigrationsConfigChangesNothing) {
  absl::StatusOr<Values> enabled = Enable();
  EXPECT_EQ(enabled.status().code(), absl::StatusCode::kFailedPrecondition) << enabled.status();
  EXPECT_THAT(enabled.status().message(), HasSubstr("ConfigurePgBackRest"));
  EXPECT_THAT(AutoConf(), Not(HasSubstr("archive")));
}

TEST_F(ArchivingTest, EnableWithoutTheIncludePathChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(WriteConfig());
  // archive-push would fail on every segment (pgBackRest error 073 for a missing include path).
  std::filesystem::remove_all(ConfigIncludePath(env_, kMigration));
  absl::StatusOr<Values> enabled = Enable();
  EXPECT_EQ(enabled.status().code(), absl::StatusCode::kFailedPrecondition) << enabled.status();
  EXPECT_THAT(enabled.status().message(), HasSubstr("conf.d"));
  EXPECT_THAT(AutoConf(), Not(HasSubstr("archive")));
}

TEST_F(ArchivingTest, EnableRefusesWhileArchiveLibraryIsSet) {
  ASSERT_NO_FATAL_FAILURE(WriteConfig());
  Sql("ALTER SYSTEM SET archive_library = 'basic_archive'");
  Sql("SELECT pg_reload_conf()");
  ASSERT_TRUE(integration::WaitFor("the reload", absl::Seconds(10), [&] {
                return Setting("archive_library") == "basic_archive";
              }).ok());
  absl::StatusOr<Values> enabled = Enable();
  EXPECT_EQ(enabled.status().code(), absl::StatusCode::kFailedPrecondition) << enabled.status();
  EXPECT_THAT(enabled.status().message(), HasSubstr("archive_library"));
  EXPECT_EQ(Setting("archive_command"), "");
  struct stat st;
  EXPECT_NE(stat(SavedArchivingPath(env_, kMigration).c_str(), &st), 0);
}

// Records nothing: these executors report through their result.
class NullContext : public TaskContext {
 public:
  void Log(absl::string_view, absl::string_view) override {}
  void ReportProgress(const v1::Progress&) override {}
  bool cancelled() const override { return false; }
  void OnCancel(std::function<void()>) override {}
};

v1::Task SqlTask(v1::SqlQuery::Query query, const std::string& migration_id) {
  v1::Task task;
  task.set_task_id("sql");
  task.mutable_sql()->set_query(query);
  task.mutable_sql()->set_migration_id(migration_id);
  return task;
}

TEST_F(ArchivingTest, ExecutorNeedsConfigurePgBackRestFirstThenEnablesAndRestores) {
  ExecutorFactory factory = MakeExecutorFactory(&config_);
  absl::StatusOr<std::unique_ptr<TaskExecutor>> refused =
      factory(SqlTask(v1::SqlQuery::ENABLE_ARCHIVING, kMigration));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();

  NullContext context;
  v1::Task configure;
  configure.set_task_id("configure");
  *configure.mutable_configure_pgbackrest() = Configure();
  absl::StatusOr<std::unique_ptr<TaskExecutor>> configurer = factory(configure);
  ASSERT_TRUE(configurer.ok()) << configurer.status();
  ASSERT_EQ((*configurer)->Run(context).state(), v1::TaskResult::SUCCEEDED);

  absl::StatusOr<std::unique_ptr<TaskExecutor>> enabler =
      factory(SqlTask(v1::SqlQuery::ENABLE_ARCHIVING, kMigration));
  ASSERT_TRUE(enabler.ok()) << enabler.status();
  v1::TaskResult enabled = (*enabler)->Run(context);
  ASSERT_EQ(enabled.state(), v1::TaskResult::SUCCEEDED) << enabled.message();
  EXPECT_EQ(enabled.values().at("restart_needed"), "true");
  EXPECT_EQ(Setting("archive_command"),
            ArchiveCommandFor("/bin/true", ConfigPath(env_, kMigration),
                              ConfigIncludePath(env_, kMigration), kStanza));

  absl::StatusOr<std::unique_ptr<TaskExecutor>> restorer =
      factory(SqlTask(v1::SqlQuery::RESTORE_ARCHIVING, kMigration));
  ASSERT_TRUE(restorer.ok()) << restorer.status();
  v1::TaskResult restored = (*restorer)->Run(context);
  ASSERT_EQ(restored.state(), v1::TaskResult::SUCCEEDED) << restored.message();
  EXPECT_EQ(restored.values().at("restart_needed"), "false");
  EXPECT_EQ(Setting("archive_command"), "");
}

TEST(ArchivingExecutorTest, BadTasksAreRefusedBeforeAnythingRuns) {
  AgentConfig config;
  config.agent_id = "agent";
  config.data_directory = "/nonexistent/data";
  config.state_dir = "/nonexistent/state";
  ExecutorFactory factory = MakeExecutorFactory(&config);
  for (const std::string& id : {std::string(""), std::string("../etc"), std::string("a b")}) {
    EXPECT_EQ(factory(SqlTask(v1::SqlQuery::ENABLE_ARCHIVING, id)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << id;
    EXPECT_EQ(factory(SqlTask(v1::SqlQuery::RESTORE_ARCHIVING, id)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << id;
  }
  EXPECT_FALSE(factory(SqlTask(static_cast<v1::SqlQuery::Query>(99), "")).ok());
  // RESTORE needs no configuration: it is accepted, and fails only when it runs.
  EXPECT_TRUE(factory(SqlTask(v1::SqlQuery::RESTORE_ARCHIVING, "mig-1")).ok());
}

}  // namespace
}  // namespace pghaul::agent
