// A restore keeps the target's own postgresql.conf, pg_hba.conf and pg_ident.conf: first the
// keep/put-back steps on plain directories, then a real pgBackRest 2.45 backup of one PostgreSQL
// 15 cluster (archiving turned on by ENABLE_ARCHIVING) restored into a second cluster's data
// directory, whose own port must survive for it to start next to the source.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/archiving.h"
#include "agent/pgbackrest_config.h"
#include "agent/pgbackrest_executor.h"
#include "agent/restore_kept_config.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/fixture/pg_cluster.h"
#include "tests/integration/fixture/temp_dir.h"
#include "tests/integration/fixture/wait_for.h"

namespace pghaul::agent {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

mode_t ModeOf(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 0777;
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

class KeptConfigFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<integration::TempDir>> temp =
        integration::TempDir::Create("pghaul-kept-config-test.");
    ASSERT_TRUE(temp.ok()) << temp.status();
    temp_ = *std::move(temp);
    data_ = temp_->path() + "/data";
    keep_ = temp_->path() + "/kept-config";
    ASSERT_EQ(mkdir(data_.c_str(), 0700), 0);
  }

  void Write(const std::string& name, const std::string& text, mode_t mode = 0600) {
    const std::string path = absl::StrCat(data_, "/", name);
    ASSERT_TRUE(WriteFileAtomically(path, text, mode).ok());
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
  }
  std::string Read(const std::string& name) {
    return ReadFile(absl::StrCat(data_, "/", name)).value_or("<missing>");
  }

  std::unique_ptr<integration::TempDir> temp_;
  std::string data_;
  std::string keep_;
};

TEST_F(KeptConfigFilesTest, PutsBackTheFilesThatExistedWithTheirModes) {
  ASSERT_NO_FATAL_FAILURE(Write("postgresql.conf", "port = 5433\n", 0600));
  ASSERT_NO_FATAL_FAILURE(Write("pg_hba.conf", "local all all trust\n", 0640));
  absl::StatusOr<std::vector<std::string>> kept = KeepConfigFiles(data_, keep_);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_THAT(*kept, ElementsAre("postgresql.conf", "pg_hba.conf"));

  // What a restore does: the source's files replace them, and bring one the target lacked.
  ASSERT_NO_FATAL_FAILURE(Write("postgresql.conf", "port = 5432\n", 0644));
  ASSERT_NO_FATAL_FAILURE(Write("pg_hba.conf", "host all all 0.0.0.0/0 md5\n", 0600));
  ASSERT_NO_FATAL_FAILURE(Write("pg_ident.conf", "source map\n", 0600));

  absl::Status put_back = PutBackConfigFiles(data_, keep_);
  ASSERT_TRUE(put_back.ok()) << put_back;
  EXPECT_EQ(Read("postgresql.conf"), "port = 5433\n");
  EXPECT_EQ(ModeOf(data_ + "/postgresql.conf"), 0600u);
  EXPECT_EQ(Read("pg_hba.conf"), "local all all trust\n");
  EXPECT_EQ(ModeOf(data_ + "/pg_hba.conf"), 0640u);
  // Not there before the restore: the restored one stays.
  EXPECT_EQ(Read("pg_ident.conf"), "source map\n");
  EXPECT_FALSE(Exists(keep_));
}

TEST_F(KeptConfigFilesTest, RetryAfterAnInterruptedRestoreKeepsTheFirstCopies) {
  ASSERT_NO_FATAL_FAILURE(Write("postgresql.conf", "target\n"));
  ASSERT_TRUE(KeepConfigFiles(data_, keep_).ok());
  // The agent died during the restore: the source's file is in the data directory now.
  ASSERT_NO_FATAL_FAILURE(Write("postgresql.conf", "source\n"));

  absl::StatusOr<std::vector<std::string>> retried = KeepConfigFiles(data_, keep_);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_THAT(*retried, ElementsAre("postgresql.conf"));
  ASSERT_TRUE(PutBackConfigFiles(data_, keep_).ok());
  EXPECT_EQ(Read("postgresql.conf"), "target\n");
}

TEST_F(KeptConfigFilesTest, HalfWrittenCopiesOfACrashAreNotUsed) {
  ASSERT_NO_FATAL_FAILURE(Write("postgresql.conf", "target\n"));
  ASSERT_EQ(mkdir((keep_ + ".tmp").c_str(), 0700), 0);
  ASSERT_TRUE(WriteFileAtomically(keep_ + ".tmp/postgresql.conf", "half", 0600).ok());
  absl::StatusOr<std::vector<std::string>> kept = KeepConfigFiles(data_, keep_);
  ASSERT_TRUE(kept.ok()) << kept.status();
  ASSERT_NO_FATAL_FAILURE(Write("postgresql.conf", "source\n"));
  ASSERT_TRUE(PutBackConfigFiles(data_, keep_).ok());
  EXPECT_EQ(Read("postgresql.conf"), "target\n");
  EXPECT_FALSE(Exists(keep_ + ".tmp"));
}

TEST_F(KeptConfigFilesTest, SymbolicLinksAreLeftAlone) {
  const std::string outside = temp_->path() + "/hba-outside.conf";
  ASSERT_TRUE(WriteFileAtomically(outside, "local all all trust\n", 0600).ok());
  ASSERT_EQ(symlink(outside.c_str(), (data_ + "/pg_hba.conf").c_str()), 0);
  absl::StatusOr<std::vector<std::string>> kept = KeepConfigFiles(data_, keep_);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_THAT(*kept, IsEmpty());
  ASSERT_TRUE(PutBackConfigFiles(data_, keep_).ok());
  struct stat st;
  ASSERT_EQ(lstat((data_ + "/pg_hba.conf").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
}

TEST_F(KeptConfigFilesTest, NothingToKeepLeavesTheRestoredFiles) {
  const std::string missing = temp_->path() + "/not-created-yet";
  absl::StatusOr<std::vector<std::string>> kept = KeepConfigFiles(missing, keep_);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_THAT(*kept, IsEmpty());
  ASSERT_EQ(mkdir(missing.c_str(), 0700), 0);
  ASSERT_TRUE(WriteFileAtomically(missing + "/postgresql.conf", "source\n", 0600).ok());
  ASSERT_TRUE(PutBackConfigFiles(missing, keep_).ok());
  EXPECT_EQ(ReadFile(missing + "/postgresql.conf").value_or(""), "source\n");
  EXPECT_FALSE(Exists(keep_));
  // Nothing kept, nothing to put back.
  EXPECT_TRUE(PutBackConfigFiles(missing, keep_).ok());
}

// Collects the task's log lines.
class LinesContext : public TaskContext {
 public:
  void Log(absl::string_view stream, absl::string_view line) override {
    absl::MutexLock lock(&mu_);
    lines_.push_back(absl::StrCat(stream, ": ", line));
  }
  void ReportProgress(const v1::Progress&) override {}
  bool cancelled() const override { return false; }
  void OnCancel(std::function<void()>) override {}
  std::vector<std::string> lines() const {
    absl::MutexLock lock(&mu_);
    return lines_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

constexpr char kPgBackRest[] = "/usr/bin/pgbackrest";
constexpr char kRunUser[] = "/usr/sbin/runuser";
constexpr char kMigration[] = "mig-keep";
constexpr char kStanza[] = "keep_test";

class RestoreKeepsConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string initdb = absl::StrCat(integration::kPostgresBinDir, "/initdb");
    if (access(kPgBackRest, X_OK) != 0 || access(kRunUser, X_OK) != 0 ||
        access(initdb.c_str(), X_OK) != 0) {
      GTEST_SKIP() << "needs pgbackrest, runuser and PostgreSQL 15 server binaries";
    }
    if (geteuid() != 0) GTEST_SKIP() << "needs root, to run PostgreSQL as the postgres user";
    passwd* postgres = getpwnam("postgres");
    ASSERT_NE(postgres, nullptr);
    uid_ = postgres->pw_uid;
    gid_ = postgres->pw_gid;
    absl::StatusOr<std::unique_ptr<integration::TempDir>> temp =
        integration::TempDir::Create("pghaul-restore-keeps-config.");
    ASSERT_TRUE(temp.ok()) << temp.status();
    temp_ = *std::move(temp);
    for (const char* sub : {"repo", "source-state", "target-state"}) {
      ASSERT_TRUE(temp_->MakeSubdir(sub, integration::kPostgresOsUser, 0700).ok());
    }
    integration::PgClusterOptions source_options;
    source_options.name = "source";
    source_options.port = 5432;
    absl::StatusOr<std::unique_ptr<integration::PgCluster>> source =
        integration::PgCluster::Create(temp_->path(), std::move(source_options));
    ASSERT_TRUE(source.ok()) << source.status();
    source_ = *std::move(source);
    ASSERT_TRUE(source_->Start().ok());

    // The target's own cluster: another port and socket directory, never started before the
    // restore.
    integration::PgClusterOptions target_options;
    target_options.name = "target";
    target_options.port = 5433;
    target_options.conf_lines = {"# the target's own settings"};
    absl::StatusOr<std::unique_ptr<integration::PgCluster>> target =
        integration::PgCluster::Create(temp_->path(), std::move(target_options));
    ASSERT_TRUE(target.ok()) << target.status();
    target_ = *std::move(target);

    source_env_ = Environment("/source-state", *source_);
    target_env_ = Environment("/target-state", *target_);
  }

  void TearDown() override {
    target_.reset();
    source_.reset();
    temp_.reset();
  }

  PgBackRestEnvironment Environment(const std::string& state, const integration::PgCluster& pg) {
    PgBackRestEnvironment env;
    env.binary = kPgBackRest;
    env.state_dir = temp_->path() + state;
    env.pg_path = pg.data_dir();
    env.pg_port = pg.port();
    env.pg_socket_path = pg.socket_dir();
    env.allowed_roots = {temp_->path()};
    env.run_as_prefix = {kRunUser, "-u", "postgres", "--"};
    env.run_as_uid = uid_;
    env.run_as_gid = gid_;
    return env;
  }

  v1::TaskResult Run(const PgBackRestEnvironment& env, SecretStore& store, const v1::Task& task,
                     LinesContext& context) {
    absl::StatusOr<std::unique_ptr<TaskExecutor>> executor =
        task.has_configure_pgbackrest() ? MakeConfigureExecutor(env, task, &store)
                                        : MakePgBackRestExecutor(env, task, &store);
    if (!executor.ok()) {
      v1::TaskResult refused;
      refused.set_state(v1::TaskResult::REFUSED);
      refused.set_message(std::string(executor.status().message()));
      return refused;
    }
    return (*executor)->Run(context);
  }
  v1::TaskResult Run(const PgBackRestEnvironment& env, SecretStore& store, const v1::Task& task) {
    LinesContext context;
    return Run(env, store, task, context);
  }

  v1::Task ConfigureTask() const {
    v1::Task task;
    task.set_task_id("configure");
    v1::ConfigurePgBackRest* configure = task.mutable_configure_pgbackrest();
    configure->set_migration_id(kMigration);
    configure->set_stanza(kStanza);
    configure->mutable_repository()->mutable_posix()->set_path(temp_->path() + "/repo");
    return task;
  }

  static v1::Task CommandTask(const std::function<void(v1::PgBackRestCommand&)>& fill) {
    v1::Task task;
    task.set_task_id("command");
    task.set_timeout_seconds(600);
    task.mutable_pgbackrest()->set_migration_id(kMigration);
    fill(*task.mutable_pgbackrest());
    return task;
  }

  static PostgresConnection Connection(const integration::PgCluster& pg) {
    PostgresConnection conn;
    conn.socket_dir = pg.socket_dir();
    conn.port = pg.port();
    return conn;
  }

  std::unique_ptr<integration::TempDir> temp_;
  std::unique_ptr<integration::PgCluster> source_;
  std::unique_ptr<integration::PgCluster> target_;
  PgBackRestEnvironment source_env_;
  PgBackRestEnvironment target_env_;
  SecretStore source_store_;
  SecretStore target_store_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
};

TEST_F(RestoreKeepsConfigTest, RestoredTargetKeepsItsOwnPortAndStartsWithTheSourcesData) {
  // Source: configure, archive into the stanza through ENABLE_ARCHIVING, back up.
  ASSERT_EQ(Run(source_env_, source_store_, ConfigureTask()).state(), v1::TaskResult::SUCCEEDED);
  absl::StatusOr<std::map<std::string, std::string>> enabled =
      EnableArchiving(Connection(*source_), source_env_, kMigration, kStanza);
  ASSERT_TRUE(enabled.ok()) << enabled.status();
  EXPECT_EQ(enabled->at("restart_needed"), "true");
  ASSERT_TRUE(source_->Stop("fast").ok());
  ASSERT_TRUE(source_->Start().ok());
  v1::TaskResult created =
      Run(source_env_, source_store_, CommandTask([](auto& c) { c.mutable_stanza_create(); }));
  ASSERT_EQ(created.state(), v1::TaskResult::SUCCEEDED) << created.message();
  ASSERT_TRUE(source_->Query("CREATE TABLE migrated AS SELECT generate_series(1, 1234) AS i").ok());
  v1::TaskResult backup = Run(source_env_, source_store_,
                              CommandTask([](auto& c) { c.mutable_backup()->set_type("full"); }));
  ASSERT_EQ(backup.state(), v1::TaskResult::SUCCEEDED) << backup.message();

  absl::StatusOr<std::string> target_conf_before =
      ReadFile(target_->data_dir() + "/postgresql.conf");
  ASSERT_TRUE(target_conf_before.ok());
  ASSERT_THAT(*target_conf_before, HasSubstr("port = 5433"));

  // Target: restore over its own (stopped) cluster's data directory.
  ASSERT_EQ(Run(target_env_, target_store_, ConfigureTask()).state(), v1::TaskResult::SUCCEEDED);
  LinesContext context;
  v1::TaskResult restored = Run(target_env_, target_store_, CommandTask([](auto& c) {
                                  c.mutable_restore()->set_delta(true);
                                  c.mutable_restore()->set_type("immediate");
                                  c.mutable_restore()->set_target_action("promote");
                                }),
                                context);
  ASSERT_EQ(restored.state(), v1::TaskResult::SUCCEEDED) << restored.message();
  EXPECT_THAT(context.lines(),
              Contains(HasSubstr("kept the target's own postgresql.conf, pg_hba.conf, "
                                 "pg_ident.conf")));
  absl::StatusOr<std::string> target_conf_after =
      ReadFile(target_->data_dir() + "/postgresql.conf");
  ASSERT_TRUE(target_conf_after.ok()) << target_conf_after.status();
  EXPECT_TRUE(*target_conf_after == *target_conf_before)
      << "postgresql.conf is not the target's own any more";
  EXPECT_THAT(*target_conf_after, Not(HasSubstr(source_->socket_dir())));
  EXPECT_FALSE(Exists(KeptConfigDirectory(target_env_, kMigration)));
  // Something was restored: the source's tables are in the data directory.
  EXPECT_TRUE(Exists(target_->data_dir() + "/backup_label") ||
              Exists(target_->data_dir() + "/recovery.signal"));

  // With the source's postgresql.conf it would want the source's port and socket, which the
  // running source holds, and fail to start.
  absl::Status started = target_->Start();
  ASSERT_TRUE(started.ok()) << started;
  absl::Status promoted =
      integration::WaitFor("the restored target to promote", absl::Seconds(60), [&] {
        absl::StatusOr<std::string> recovery = target_->Query("SELECT pg_is_in_recovery()");
        return recovery.ok() && *recovery == "f";
      });
  ASSERT_TRUE(promoted.ok()) << promoted;
  EXPECT_EQ(target_->Query("SHOW port").value_or(""), "5433");
  EXPECT_EQ(target_->Query("SHOW unix_socket_directories").value_or(""), target_->socket_dir());
  EXPECT_EQ(target_->Query("SELECT count(*) FROM migrated").value_or(""), "1234");
  // The restored copy does not archive into the source's stanza.
  EXPECT_EQ(target_->Query("SHOW archive_mode").value_or(""), "off");
}

}  // namespace
}  // namespace pghaul::agent
