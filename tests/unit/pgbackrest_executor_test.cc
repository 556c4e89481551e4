// The pgBackRest executors against the real thing: a throwaway PostgreSQL 15 cluster (unix
// socket only, archiving through pgBackRest) and a posix repository in a temporary directory.
// pgBackRest and PostgreSQL run as the postgres user through runuser, as a root-started agent
// would run them. Every test stops its cluster (-m immediate) and removes its directory, also
// when it fails.
#include "agent/pgbackrest_executor.h"

#include <dirent.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "agent/pgbackrest_config.h"
#include "agent/pgbackrest_progress.h"
#include "common/files.h"
#include "common/identifiers.h"
#include "common/subprocess.h"
#include "common/validators.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/fixture/pg_cluster.h"
#include "tests/integration/fixture/temp_dir.h"

namespace pghaul::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kPgBin = integration::kPostgresBinDir;
constexpr char kPgBackRest[] = "/usr/bin/pgbackrest";
constexpr char kRunUser[] = "/usr/sbin/runuser";
constexpr char kStanza[] = "pghaul_test";
constexpr char kMigration[] = "mig-real";

std::vector<std::string> AsPostgres(std::vector<std::string> argv) {
  std::vector<std::string> full = {kRunUser, "-u", "postgres", "--"};
  full.insert(full.end(), argv.begin(), argv.end());
  return full;
}

// Runs a helper command to completion (no shell); returns its output or an error with it.
absl::StatusOr<std::string> RunHelper(std::vector<std::string> argv,
                                      absl::Duration timeout = absl::Seconds(120)) {
  SubprocessSpec spec;
  spec.argv = std::move(argv);
  spec.env = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8"};
  spec.working_directory = "/";
  spec.timeout = timeout;
  absl::StatusOr<CapturedOutput> out = RunAndCapture(spec);
  if (!out.ok()) return out.status();
  if (!out->result.Succeeded()) {
    return absl::InternalError(absl::StrCat(absl::StrJoin(spec.argv, " "), " ",
                                            out->result.Describe(), ": ", out->stderr_text,
                                            out->stdout_text));
  }
  return out->stdout_text;
}

// Records what an executor reports, and cancels on request.
class RecordingContext : public TaskContext {
 public:
  void Log(absl::string_view stream, absl::string_view line) override {
    absl::MutexLock lock(&mu_);
    logs_.push_back(absl::StrCat(stream, ": ", line));
  }
  void ReportProgress(const v1::Progress& progress) override {
    absl::MutexLock lock(&mu_);
    progress_.push_back(progress);
    if (!first_progress_.HasBeenNotified()) first_progress_.Notify();
  }
  bool cancelled() const override {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }
  void OnCancel(std::function<void()> hook) override {
    {
      absl::MutexLock lock(&mu_);
      if (!cancelled_) {
        hooks_.push_back(std::move(hook));
        return;
      }
    }
    hook();
  }
  void Cancel() {
    std::vector<std::function<void()>> hooks;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      hooks.swap(hooks_);
    }
    for (auto& hook : hooks) hook();
  }
  std::vector<std::string> logs() const {
    absl::MutexLock lock(&mu_);
    return logs_;
  }
  std::vector<v1::Progress> progress() const {
    absl::MutexLock lock(&mu_);
    return progress_;
  }
  absl::Notification& first_progress() { return first_progress_; }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> logs_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::Progress> progress_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::function<void()>> hooks_ ABSL_GUARDED_BY(mu_);
  absl::Notification first_progress_;
};

struct ProcessInfo {
  pid_t pid = 0;
  pid_t pgid = 0;
  char state = '?';
  std::string cmdline;  // NULs replaced by spaces
};

std::vector<ProcessInfo> ListProcesses() {
  std::vector<ProcessInfo> processes;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return processes;
  while (dirent* entry = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    absl::StatusOr<std::string> stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
    if (!stat.ok()) continue;  // it ended meanwhile
    size_t paren = stat->rfind(')');
    if (paren == std::string::npos) continue;
    std::vector<std::string> fields = absl::StrSplit(stat->substr(paren + 2), ' ');
    if (fields.size() < 3) continue;
    ProcessInfo info;
    info.pid = pid;
    info.state = fields[0].empty() ? '?' : fields[0][0];
    int pgid = 0;
    if (absl::SimpleAtoi(fields[2], &pgid)) info.pgid = pgid;
    absl::StatusOr<std::string> cmdline = ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
    if (cmdline.ok()) {
      for (char& c : *cmdline) {
        if (c == '\0') c = ' ';
      }
      info.cmdline = *cmdline;
    }
    processes.push_back(std::move(info));
  }
  closedir(proc);
  return processes;
}

// Live (not zombie) processes of process group `pgid`.
std::vector<ProcessInfo> LiveMembers(pid_t pgid) {
  std::vector<ProcessInfo> members;
  for (ProcessInfo& p : ListProcesses()) {
    if (p.pgid == pgid && p.state != 'Z' && p.state != 'X') members.push_back(std::move(p));
  }
  return members;
}

class PgBackRestRealTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kPgBackRest, X_OK) != 0 || access(kRunUser, X_OK) != 0 ||
        access(absl::StrCat(kPgBin, "/initdb").c_str(), X_OK) != 0) {
      GTEST_SKIP() << "needs pgbackrest, runuser and PostgreSQL 15 server binaries";
    }
    if (geteuid() != 0) GTEST_SKIP() << "needs root, to run PostgreSQL as the postgres user";
    passwd* postgres = getpwnam("postgres");
    ASSERT_NE(postgres, nullptr) << "no postgres user";
    absl::StatusOr<std::unique_ptr<integration::TempDir>> temp =
        integration::TempDir::Create("pghaul-pgbackrest-real-");
    ASSERT_TRUE(temp.ok()) << temp.status();
    temp_ = *std::move(temp);
    dir_ = temp_->path();
    uid_ = postgres->pw_uid;
    gid_ = postgres->pw_gid;
    for (const char* sub : {"repo", "state", "state2", "data2"}) {
      absl::StatusOr<std::string> made = temp_->MakeSubdir(sub, integration::kPostgresOsUser, 0700);
      ASSERT_TRUE(made.ok()) << made.status();
    }
    // The cluster's data directory and socket are <dir_>/pg/data and <dir_>/pg/run.
    integration::PgClusterOptions options;
    options.name = "pg";
    options.port = 5432;
    env_ = MakeEnvironment("/state", "/pg/data");
    options.conf_lines = {
        "archive_mode = on",
        // As ENABLE_ARCHIVING sets it: the secrets come from the include path, since PostgreSQL's
        // archiver has no pgBackRest variables in its environment.
        absl::StrCat("archive_command = '", kPgBackRest, " --config=", ConfigPath(env_, kMigration),
                     " --config-include-path=", ConfigIncludePath(env_, kMigration),
                     " --stanza=", kStanza, " archive-push %p'")};
    absl::StatusOr<std::unique_ptr<integration::PgCluster>> cluster =
        integration::PgCluster::Create(dir_, std::move(options));
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    ASSERT_EQ(env_.pg_path, cluster_->data_dir());
    ASSERT_EQ(env_.pg_socket_path, cluster_->socket_dir());
    absl::Status started = cluster_->Start();
    ASSERT_TRUE(started.ok()) << started;
    started_ = true;
  }

  void TearDown() override {
    if (started_) {
      absl::Status stopped = cluster_->Stop("immediate");
      EXPECT_TRUE(stopped.ok()) << stopped;
    }
    cluster_.reset();
    temp_.reset();
  }

  PgBackRestEnvironment MakeEnvironment(const std::string& state, const std::string& data) {
    PgBackRestEnvironment env;
    env.binary = kPgBackRest;
    env.state_dir = dir_ + state;
    env.pg_path = dir_ + data;
    env.pg_port = 5432;
    env.pg_socket_path = dir_ + "/pg/run";
    env.pg_user = "postgres";
    env.allowed_roots = {dir_};
    env.run_as_prefix = {kRunUser, "-u", "postgres", "--"};
    env.run_as_uid = uid_;
    env.run_as_gid = gid_;
    return env;
  }

  v1::Task ConfigureTask(const v1::Secrets& secrets = v1::Secrets(),
                         const std::string& cipher_type = "") {
    v1::Task task;
    task.set_task_id("configure");
    v1::ConfigurePgBackRest* configure = task.mutable_configure_pgbackrest();
    configure->set_migration_id(kMigration);
    configure->set_stanza(kStanza);
    configure->mutable_repository()->mutable_posix()->set_path(dir_ + "/repo");
    configure->mutable_repository()->set_cipher_type(cipher_type);
    configure->set_process_max(1);
    configure->set_compress_type("lz4");
    *configure->mutable_secrets() = secrets;
    return task;
  }

  static v1::Task CommandTask(std::function<void(v1::PgBackRestCommand&)> fill) {
    v1::Task task;
    task.set_task_id("command");
    task.set_timeout_seconds(600);
    task.mutable_pgbackrest()->set_migration_id(kMigration);
    fill(*task.mutable_pgbackrest());
    return task;
  }

  static v1::TaskResult Run(const PgBackRestEnvironment& env, SecretStore& store,
                            const v1::Task& task, RecordingContext& context) {
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

  v1::TaskResult Run(const v1::Task& task) {
    RecordingContext context;
    return Run(env_, store_, task, context);
  }

  void Pgbench(int scale) {
    absl::StatusOr<std::string> out = RunHelper(AsPostgres(
        {absl::StrCat(kPgBin, "/pgbench"), "-h", cluster_->socket_dir(), "-p",
         absl::StrCat(cluster_->port()), "-i", "-q", "-s", absl::StrCat(scale), "postgres"}));
    ASSERT_TRUE(out.ok()) << out.status();
  }

  // configure -> stanza-create -> pgbench data.
  void PrepareStanza(int scale, const v1::Secrets& secrets = v1::Secrets(),
                     const std::string& cipher_type = "") {
    v1::TaskResult configured = Run(ConfigureTask(secrets, cipher_type));
    ASSERT_EQ(configured.state(), v1::TaskResult::SUCCEEDED) << configured.message();
    v1::TaskResult created = Run(CommandTask([](auto& c) { c.mutable_stanza_create(); }));
    ASSERT_EQ(created.state(), v1::TaskResult::SUCCEEDED) << created.message();
    Pgbench(scale);
  }

  std::unique_ptr<integration::TempDir> temp_;
  std::unique_ptr<integration::PgCluster> cluster_;
  std::string dir_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  bool started_ = false;
  PgBackRestEnvironment env_;
  SecretStore store_;
};

TEST_F(PgBackRestRealTest, ConfigureStanzaCheckBackupInfoAndRestoreIntoASecondDirectory) {
  {
    RecordingContext context;
    v1::Task version;
    version.mutable_pgbackrest()->mutable_version();
    v1::TaskResult result = Run(env_, store_, version, context);
    ASSERT_EQ(result.state(), v1::TaskResult::SUCCEEDED) << result.message();
    EXPECT_EQ(result.values().at("version"), "2.45");
  }
  ASSERT_NO_FATAL_FAILURE(PrepareStanza(5));
  struct stat st;
  ASSERT_EQ(stat(ConfigPath(env_, kMigration).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, uid_);

  v1::TaskResult checked = Run(CommandTask([](auto& c) { c.mutable_check(); }));
  ASSERT_EQ(checked.state(), v1::TaskResult::SUCCEEDED) << checked.message();

  // Before any backup, info exits 0 but the stanza has no valid backup: FAILED with code 2.
  v1::TaskResult empty_info = Run(CommandTask([](auto& c) { c.mutable_info(); }));
  EXPECT_EQ(empty_info.state(), v1::TaskResult::FAILED);
  EXPECT_EQ(empty_info.exit_code(), 0);
  EXPECT_EQ(empty_info.repository_status_code(), 2);
  EXPECT_THAT(empty_info.message(), HasSubstr("no valid backups"));
  EXPECT_THAT(empty_info.info_json(), HasSubstr("\"name\":\"pghaul_test\""));

  RecordingContext backup_context;
  v1::TaskResult backup =
      Run(env_, store_, CommandTask([](auto& c) { c.mutable_backup()->set_type("full"); }),
          backup_context);
  ASSERT_EQ(backup.state(), v1::TaskResult::SUCCEEDED) << backup.message();
  EXPECT_EQ(backup.exit_code(), 0);
  const std::string label = backup.values().at("backup_label");
  EXPECT_TRUE(ValidateBackupLabel(label).ok()) << label;
  std::vector<v1::Progress> progress = backup_context.progress();
  ASSERT_GE(progress.size(), 2u);
  for (size_t i = 1; i < progress.size(); ++i) {
    EXPECT_GE(progress[i].percent(), progress[i - 1].percent()) << i;
  }
  EXPECT_DOUBLE_EQ(progress.back().percent(), 100);
  EXPECT_GT(progress.back().bytes_done(), 50u << 20);  // pgbench -s 5 is about 75MB
  // The per-file lines reached the task log.
  bool saw_file_line = false;
  for (const std::string& line : backup_context.logs()) {
    if (ParseFileProgressLine(line).has_value()) saw_file_line = true;
  }
  EXPECT_TRUE(saw_file_line);

  v1::TaskResult info = Run(CommandTask([](auto& c) { c.mutable_info(); }));
  ASSERT_EQ(info.state(), v1::TaskResult::SUCCEEDED) << info.message();
  EXPECT_EQ(info.repository_status_code(), 0);
  EXPECT_EQ(info.values().at("valid_backups"), "1");
  EXPECT_EQ(info.values().at("latest_backup"), label);
  EXPECT_EQ(info.values().at("pg_version"), "15");

  // Restore on "another host": its own state dir, data directory and in-memory secrets.
  PgBackRestEnvironment target = MakeEnvironment("/state2", "/data2");
  SecretStore target_store;
  RecordingContext target_configure;
  ASSERT_EQ(Run(target, target_store, ConfigureTask(), target_configure).state(),
            v1::TaskResult::SUCCEEDED);
  RecordingContext restore_context;
  v1::TaskResult restored = Run(target, target_store, CommandTask([&](auto& c) {
                                  c.mutable_restore()->set_type("immediate");
                                  c.mutable_restore()->set_target_action("promote");
                                  c.mutable_restore()->set_set(label);
                                }),
                                restore_context);
  ASSERT_EQ(restored.state(), v1::TaskResult::SUCCEEDED) << restored.message();
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/data2/PG_VERSION"));
  absl::StatusOr<std::string> auto_conf = ReadFile(dir_ + "/data2/postgresql.auto.conf");
  ASSERT_TRUE(auto_conf.ok());
  EXPECT_THAT(*auto_conf, HasSubstr("archive_mode = 'off'"));
  EXPECT_THAT(*auto_conf, HasSubstr(ConfigPath(target, kMigration)));
  // pgBackRest copied the include path into restore_command: archive-get finds the secrets.
  EXPECT_THAT(*auto_conf,
              HasSubstr("--config-include-path=" + ConfigIncludePath(target, kMigration)));
  ASSERT_FALSE(restore_context.progress().empty());
  EXPECT_DOUBLE_EQ(restore_context.progress().back().percent(), 100);
}

TEST_F(PgBackRestRealTest, FailureCarriesExitCodeAndPgBackRestsErrorLine) {
  ASSERT_NO_FATAL_FAILURE(PrepareStanza(1));
  // Restoring over the running cluster's own data directory: pgBackRest refuses (error 038).
  v1::TaskResult result = Run(CommandTask([](auto& c) { c.mutable_restore()->set_delta(true); }));
  EXPECT_EQ(result.state(), v1::TaskResult::FAILED);
  EXPECT_EQ(result.exit_code(), 38);
  EXPECT_THAT(result.message(),
              HasSubstr("ERROR: [038]: unable to restore while PostgreSQL is running"));
}

TEST_F(PgBackRestRealTest, CommandsBeforeConfigureAreRefused) {
  absl::StatusOr<std::unique_ptr<TaskExecutor>> executor =
      MakePgBackRestExecutor(env_, CommandTask([](auto& c) { c.mutable_check(); }), &store_);
  ASSERT_FALSE(executor.ok());
  EXPECT_EQ(executor.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(executor.status().message()), HasSubstr("send ConfigurePgBackRest"));
}

TEST_F(PgBackRestRealTest, CancelledBackupLeavesNoProcessAndTheEarlierSetValid) {
  ASSERT_NO_FATAL_FAILURE(PrepareStanza(10));
  v1::TaskResult first = Run(CommandTask([](auto& c) { c.mutable_backup()->set_type("full"); }));
  ASSERT_EQ(first.state(), v1::TaskResult::SUCCEEDED) << first.message();
  const std::string label = first.values().at("backup_label");

  // gz with one process is slow enough to be cancelled in the middle.
  RecordingContext context;
  v1::TaskResult cancelled;
  std::thread runner([&] {
    cancelled = Run(env_, store_, CommandTask([](auto& c) {
                      c.mutable_backup()->set_type("full");
                      c.mutable_backup()->set_compress_type("gz");
                    }),
                    context);
  });
  bool progressed = context.first_progress().WaitForNotificationWithTimeout(absl::Seconds(120));
  // The backup's process group, from the pid pgBackRest wrote into its lock file.
  pid_t pgid = 0;
  absl::StatusOr<std::string> lock =
      ReadFile(absl::StrCat(LockPath(env_, kMigration), "/", kStanza, "-backup.lock"));
  if (lock.ok()) {
    size_t at = lock->find("\"pid\":");
    int pid = 0;
    if (at != std::string::npos &&
        absl::SimpleAtoi(lock->substr(at + 6, lock->find_first_of(",}", at) - at - 6), &pid)) {
      for (const ProcessInfo& p : ListProcesses()) {
        if (p.pid == pid) pgid = p.pgid;
      }
    }
  }
  absl::Time cancelled_at = absl::Now();
  context.Cancel();
  runner.join();
  ASSERT_TRUE(progressed) << "the backup reported no progress before finishing";
  ASSERT_GT(pgid, 0) << "could not find the running backup's process group";
  EXPECT_NE(pgid, getpgrp());
  EXPECT_EQ(cancelled.state(), v1::TaskResult::CANCELLED) << cancelled.message();
  EXPECT_LT(absl::Now() - cancelled_at, absl::Seconds(15));

  // Wait() returns once the group was killed; its members may take a moment to die.
  std::vector<ProcessInfo> left = LiveMembers(pgid);
  for (absl::Time deadline = absl::Now() + absl::Seconds(5);
       !left.empty() && absl::Now() < deadline; left = LiveMembers(pgid)) {
    absl::SleepFor(absl::Milliseconds(50));  // polling for an external condition, bounded
  }
  for (const ProcessInfo& p : left) ADD_FAILURE() << "left running: " << p.pid << " " << p.cmdline;

  v1::TaskResult info = Run(CommandTask([](auto& c) { c.mutable_info(); }));
  ASSERT_EQ(info.state(), v1::TaskResult::SUCCEEDED) << info.message();
  EXPECT_EQ(info.values().at("valid_backups"), "1");
  EXPECT_EQ(info.values().at("latest_backup"), label);
  EXPECT_EQ(info.values().at("backup_running"), "false");
}

TEST_F(PgBackRestRealTest, SecretsReachTheChildEnvironmentAndOnDiskOnlyTheSecretsFile) {
  const std::string token = RandomHexId();
  v1::Secrets secrets;
  secrets.set_s3_key("PGHAULKEY" + token);
  secrets.set_s3_key_secret("pghaul-secret-" + token);
  secrets.set_cipher_pass("pghaul-cipher-" + token);
  // pgBackRest ignores the S3 and cipher variables for a posix repository without encryption.
  ASSERT_NO_FATAL_FAILURE(PrepareStanza(5, secrets));

  RecordingContext context;
  v1::TaskResult backup;
  absl::Notification done;
  std::thread runner([&] {
    backup = Run(env_, store_, CommandTask([](auto& c) { c.mutable_backup()->set_type("full"); }),
                 context);
    done.Notify();
  });
  int scans = 0;
  bool seen_in_environment = false;
  std::vector<std::string> leaks;
  const std::string config_option = "--config=" + ConfigPath(env_, kMigration);
  while (!done.HasBeenNotified()) {
    ++scans;
    for (const ProcessInfo& p : ListProcesses()) {
      if (absl::StrContains(p.cmdline, token)) leaks.push_back(p.cmdline);
      if (absl::StrContains(p.cmdline, config_option) && absl::StrContains(p.cmdline, " backup")) {
        absl::StatusOr<std::string> environ = ReadFile(absl::StrCat("/proc/", p.pid, "/environ"));
        if (environ.ok() &&
            absl::StrContains(*environ, "PGBACKREST_REPO1_S3_KEY=PGHAULKEY" + token)) {
          seen_in_environment = true;
        }
      }
    }
    done.WaitForNotificationWithTimeout(absl::Milliseconds(20));
  }
  runner.join();
  ASSERT_EQ(backup.state(), v1::TaskResult::SUCCEEDED) << backup.message();
  EXPECT_GT(scans, 3);
  EXPECT_TRUE(seen_in_environment) << "the secret never showed in pgBackRest's environment";
  EXPECT_TRUE(leaks.empty()) << "a secret appeared in a command line: " << leaks.front();

  for (const std::string& line : context.logs()) EXPECT_THAT(line, Not(HasSubstr(token)));
  EXPECT_THAT(backup.message(), Not(HasSubstr(token)));
  // On disk only in conf.d/secrets.conf (for PostgreSQL's own archive and restore commands).
  int files = 0;
  bool secrets_file_seen = false;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_)) {
    if (!entry.is_regular_file() || absl::StrContains(entry.path().string(), "/repo/") ||
        absl::StrContains(entry.path().string(), "/data/")) {
      continue;
    }
    ++files;
    absl::StatusOr<std::string> contents = ReadFile(entry.path().string(), 64 << 20);
    ASSERT_TRUE(contents.ok()) << contents.status();
    if (entry.path() == SecretsConfigPath(env_, kMigration)) {
      secrets_file_seen = true;
      EXPECT_THAT(*contents, HasSubstr("repo1-cipher-pass=pghaul-cipher-" + token));
      continue;
    }
    EXPECT_THAT(*contents, Not(HasSubstr(token))) << entry.path();
  }
  EXPECT_TRUE(secrets_file_seen);
  // pgBackRest's own logs (stanza-create, backup, archive-push) and the config were scanned.
  EXPECT_TRUE(std::filesystem::exists(LogPath(env_, kMigration) + "/" + kStanza + "-backup.log"));
  EXPECT_GE(files, 3);
}

// The value of `name = '...'` in a postgresql.auto.conf text; "" when absent.
std::string AutoConfValue(const std::string& text, const std::string& name) {
  const std::string start = name + " = '";
  size_t at = text.find(start);
  if (at == std::string::npos) return "";
  at += start.size();
  size_t end = text.find("'\n", at);
  return end == std::string::npos ? "" : text.substr(at, end - at);
}

// What PostgreSQL does with restore_command: %f -> file, %p -> path, %% -> %.
std::string ExpandRestoreCommand(const std::string& command, const std::string& file,
                                 const std::string& path) {
  std::string out;
  for (size_t i = 0; i < command.size(); ++i) {
    if (command[i] == '%' && i + 1 < command.size()) {
      const char next = command[++i];
      out += next == 'f' ? file : next == 'p' ? path : std::string(1, next);
      continue;
    }
    out += command[i];
  }
  return out;
}

// PostgreSQL runs pgBackRest by itself, with none of the agent's environment: archive-push from
// archive_command on the source, archive-get from the restore_command that restore writes on the
// target. With an encrypted repository both need the cipher passphrase, which only
// conf.d/secrets.conf (named by --config-include-path) gives them.
TEST_F(PgBackRestRealTest, EncryptedRepositoryWorksForPostgresOwnArchiveAndRestoreCommands) {
  const std::string token = RandomHexId();
  v1::Secrets secrets;
  secrets.set_cipher_pass("pghaul-cipher-" + token);
  ASSERT_NO_FATAL_FAILURE(PrepareStanza(1, secrets, "aes-256-cbc"));
  struct stat st;
  ASSERT_EQ(stat(SecretsConfigPath(env_, kMigration).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, uid_);
  ASSERT_EQ(stat(ConfigIncludePath(env_, kMigration).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(st.st_uid, uid_);

  // check waits until PostgreSQL's archiver pushed a segment into the encrypted repository.
  v1::TaskResult checked = Run(CommandTask([](auto& c) { c.mutable_check(); }));
  ASSERT_EQ(checked.state(), v1::TaskResult::SUCCEEDED) << checked.message();
  EXPECT_EQ(cluster_->Query("SELECT failed_count FROM pg_stat_archiver").value_or(""), "0");
  v1::TaskResult backup = Run(CommandTask([](auto& c) { c.mutable_backup()->set_type("full"); }));
  ASSERT_EQ(backup.state(), v1::TaskResult::SUCCEEDED) << backup.message();

  PgBackRestEnvironment target = MakeEnvironment("/state2", "/data2");
  SecretStore target_store;
  RecordingContext context;
  ASSERT_EQ(Run(target, target_store, ConfigureTask(secrets, "aes-256-cbc"), context).state(),
            v1::TaskResult::SUCCEEDED);
  v1::TaskResult restored =
      Run(target, target_store,
          CommandTask([](auto& c) { c.mutable_restore()->set_type("standby"); }), context);
  ASSERT_EQ(restored.state(), v1::TaskResult::SUCCEEDED) << restored.message();
  absl::StatusOr<std::string> auto_conf = ReadFile(dir_ + "/data2/postgresql.auto.conf");
  ASSERT_TRUE(auto_conf.ok()) << auto_conf.status();
  const std::string restore_command = AutoConfValue(*auto_conf, "restore_command");
  EXPECT_THAT(restore_command,
              HasSubstr("--config-include-path=" + ConfigIncludePath(target, kMigration)));
  EXPECT_THAT(restore_command, Not(HasSubstr(token)));

  // A segment the archiver pushed, fetched as PostgreSQL would: as postgres, through /bin/sh,
  // with no pgBackRest variable in the environment.
  std::string segment;
  const std::string archive =
      absl::StrCat(dir_, "/repo/archive/", kStanza, "/15-1/0000000100000000");
  for (const auto& entry : std::filesystem::directory_iterator(archive)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 25 && name[24] == '-') segment = name.substr(0, 24);
  }
  ASSERT_FALSE(segment.empty()) << "no archived segment in " << archive;
  absl::StatusOr<std::string> fetch_dir =
      temp_->MakeSubdir("fetched", integration::kPostgresOsUser, 0700);
  ASSERT_TRUE(fetch_dir.ok()) << fetch_dir.status();
  const std::string fetched = *fetch_dir + "/" + segment;
  absl::StatusOr<std::string> got = RunHelper(
      AsPostgres({"/bin/sh", "-c", ExpandRestoreCommand(restore_command, segment, fetched)}));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(stat(fetched.c_str(), &st), 0) << fetched;
  EXPECT_EQ(st.st_size, 16 << 20);

  // Without the file the same command cannot decrypt: the file is what made it work.
  const std::string secrets_file = SecretsConfigPath(target, kMigration);
  ASSERT_EQ(rename(secrets_file.c_str(), (secrets_file + ".off").c_str()), 0);
  absl::StatusOr<std::string> without = RunHelper(AsPostgres(
      {"/bin/sh", "-c", ExpandRestoreCommand(restore_command, segment, fetched + ".again")}));
  ASSERT_EQ(rename((secrets_file + ".off").c_str(), secrets_file.c_str()), 0);
  EXPECT_FALSE(without.ok());
  EXPECT_THAT(std::string(without.status().message()), HasSubstr("repo1-cipher-pass"));
}

// The executor's own behaviour (timeout, cancel, output handling) against a scripted stand-in
// for pgBackRest: /bin/sh is used only as a test child, to script what pgBackRest would print.
class PgBackRestExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pghaul-pgbackrest-executor-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    env_.binary = dir_ + "/fake-pgbackrest";
    env_.state_dir = dir_ + "/state";
    env_.pg_path = dir_ + "/data";
    env_.pg_socket_path = dir_ + "/sock";
    env_.allowed_roots = {dir_};
    v1::Task configure;
    v1::ConfigurePgBackRest* task = configure.mutable_configure_pgbackrest();
    task->set_migration_id("m1");
    task->set_stanza("s1");
    task->mutable_repository()->mutable_posix()->set_path(dir_ + "/repo");
    RecordingContext context;
    absl::StatusOr<std::unique_ptr<TaskExecutor>> executor =
        MakeConfigureExecutor(env_, configure, &store_);
    ASSERT_TRUE(executor.ok()) << executor.status();
    ASSERT_EQ((*executor)->Run(context).state(), v1::TaskResult::SUCCEEDED);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void FakePgBackRest(const std::string& script) {
    ASSERT_TRUE(WriteFileAtomically(env_.binary, "#!/bin/sh\n" + script, 0755).ok());
  }

  v1::TaskResult RunCommand(std::function<void(v1::PgBackRestCommand&)> fill,
                            RecordingContext& context, uint32_t timeout_seconds = 60) {
    v1::Task task;
    task.set_timeout_seconds(timeout_seconds);
    task.mutable_pgbackrest()->set_migration_id("m1");
    fill(*task.mutable_pgbackrest());
    absl::StatusOr<std::unique_ptr<TaskExecutor>> executor =
        MakePgBackRestExecutor(env_, task, &store_);
    EXPECT_TRUE(executor.ok()) << executor.status();
    if (!executor.ok()) return v1::TaskResult();
    return (*executor)->Run(context);
  }

  std::string dir_;
  PgBackRestEnvironment env_;
  SecretStore store_;
};

TEST_F(PgBackRestExecutorTest, TimeoutEndsTheCommandAsFailed) {
  FakePgBackRest("echo started\nexec /bin/sleep 60\n");
  RecordingContext context;
  absl::Time start = absl::Now();
  v1::TaskResult result = RunCommand([](auto& c) { c.mutable_check(); }, context, 1);
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_EQ(result.state(), v1::TaskResult::FAILED);
  EXPECT_EQ(result.signal(), SIGTERM);
  EXPECT_THAT(result.message(), HasSubstr("timeout of 1s expired"));
}

TEST_F(PgBackRestExecutorTest, CancelBeforeRunStartsNothing) {
  FakePgBackRest("touch " + dir_ + "/ran\n");
  RecordingContext context;
  context.Cancel();
  v1::TaskResult result = RunCommand([](auto& c) { c.mutable_check(); }, context);
  EXPECT_EQ(result.state(), v1::TaskResult::CANCELLED);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/ran"));
}

TEST_F(PgBackRestExecutorTest, EveryLineIsLoggedAndTheLastErrorLineIsTheMessage) {
  FakePgBackRest(
      "echo 'P00   INFO: check command begin 2.45: --exec-id=1-a'\n"
      "echo 'ERROR: [056]: unable to connect' >&2\n"
      "echo 'ERROR: [087]: archive_mode must be enabled' >&2\n"
      "echo '       HINT: set archive_mode' >&2\n"
      "exit 87\n");
  RecordingContext context;
  v1::TaskResult result = RunCommand([](auto& c) { c.mutable_check(); }, context);
  EXPECT_EQ(result.state(), v1::TaskResult::FAILED);
  EXPECT_EQ(result.exit_code(), 87);
  EXPECT_EQ(result.message(),
            "pgbackrest check exited 87: ERROR: [087]: archive_mode must be enabled");
  EXPECT_THAT(context.logs(), ::testing::IsSupersetOf(
                                  {"stdout: P00   INFO: check command begin 2.45: --exec-id=1-a",
                                   "stderr: ERROR: [087]: archive_mode must be enabled",
                                   "stderr:        HINT: set archive_mode"}));
}

TEST_F(PgBackRestExecutorTest, InfoJsonLongerThanOneLinePieceIsKeptWhole) {
  // 200 KB on one line: Subprocess delivers it in 64 KB pieces.
  const std::string filler(200 * 1024, 'x');
  const std::string json =
      absl::StrCat(R"([{"name":"s1","status":{"code":0,"message":"ok"},"backup":[)",
                   R"({"label":"20260101-000000F","type":"full","annotation":{"note":")", filler,
                   R"("},"timestamp":{"start":1,"stop":2}}]}])");
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/info.json", json, 0644).ok());
  FakePgBackRest("/bin/cat " + dir_ + "/info.json\n");
  RecordingContext context;
  v1::TaskResult result = RunCommand([](auto& c) { c.mutable_info(); }, context);
  ASSERT_EQ(result.state(), v1::TaskResult::SUCCEEDED) << result.message();
  EXPECT_EQ(result.info_json(), json);
  EXPECT_EQ(result.values().at("latest_backup"), "20260101-000000F");
}

TEST_F(PgBackRestExecutorTest, InfoExitingZeroWithABrokenRepositoryFails) {
  FakePgBackRest(R"(echo '[{"name":"s1","status":{"code":99,"message":"other"},)"
                 R"("repo":[{"key":1,"status":{"code":99,"message":"[FormatError] bad"}}]}]')"
                 "\n");
  RecordingContext context;
  v1::TaskResult result = RunCommand([](auto& c) { c.mutable_info(); }, context);
  EXPECT_EQ(result.state(), v1::TaskResult::FAILED);
  EXPECT_EQ(result.exit_code(), 0);
  EXPECT_EQ(result.repository_status_code(), 99);
  EXPECT_THAT(result.message(), HasSubstr("exited 0 but stanza 's1' reports status 99 (other): "
                                          "repo1: [FormatError] bad"));
}

TEST_F(PgBackRestExecutorTest, StaleLockFileOfAnEarlierRunIsIgnored) {
  const std::string lock_dir = LockPath(env_, "m1");
  ASSERT_TRUE(WriteFileAtomically(lock_dir + "/s1-backup.lock",
                                  R"({"execId":"old-run","pctCplt":5000,"pid":1})", 0644)
                  .ok());
  FakePgBackRest(
      "echo 'P00   INFO: backup command begin 2.45: --exec-id=new-run --type=full'\n"
      "/bin/sleep 1\n"
      "echo 'P01 DETAIL: backup file /d/base/1/1 (1MB, 10.00%) checksum ab'\n"
      "echo 'P00   INFO: new backup label = 20260101-000000F'\n");
  RecordingContext context;
  v1::TaskResult result =
      RunCommand([](auto& c) { c.mutable_backup()->set_type("full"); }, context);
  ASSERT_EQ(result.state(), v1::TaskResult::SUCCEEDED) << result.message();
  EXPECT_EQ(result.values().at("backup_label"), "20260101-000000F");
  std::vector<v1::Progress> progress = context.progress();
  ASSERT_EQ(progress.size(), 2u);
  EXPECT_DOUBLE_EQ(progress[0].percent(), 10);
  EXPECT_EQ(progress[0].bytes_done(), 1u << 20);
  EXPECT_DOUBLE_EQ(progress[1].percent(), 100);
}

TEST_F(PgBackRestExecutorTest, LockFileOfThisRunGivesProgress) {
  const std::string lock = LockPath(env_, "m1") + "/s1-backup.lock";
  FakePgBackRest(
      "echo 'P00   INFO: backup command begin 2.45: --exec-id=this-run --type=full'\n"
      "echo '{\"execId\":\"this-run\",\"pctCplt\":4200,\"pid\":1}' > " +
      lock + "\n" + "/bin/sleep 1\n");
  RecordingContext context;
  v1::TaskResult result =
      RunCommand([](auto& c) { c.mutable_backup()->set_type("full"); }, context);
  ASSERT_EQ(result.state(), v1::TaskResult::SUCCEEDED) << result.message();
  std::vector<v1::Progress> progress = context.progress();
  ASSERT_EQ(progress.size(), 2u);
  EXPECT_DOUBLE_EQ(progress[0].percent(), 42);
  EXPECT_DOUBLE_EQ(progress[1].percent(), 100);
}

TEST_F(PgBackRestExecutorTest, MissingConfigFailsWithoutRunning) {
  FakePgBackRest("touch " + dir_ + "/ran\n");
  std::filesystem::remove(ConfigPath(env_, "m1"));
  RecordingContext context;
  v1::TaskResult result = RunCommand([](auto& c) { c.mutable_check(); }, context);
  EXPECT_EQ(result.state(), v1::TaskResult::FAILED);
  EXPECT_THAT(result.message(), HasSubstr("run ConfigurePgBackRest first"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/ran"));
}

TEST_F(PgBackRestExecutorTest, MissingIncludePathFailsWithoutRunning) {
  FakePgBackRest("touch " + dir_ + "/ran\n");
  std::filesystem::remove_all(ConfigIncludePath(env_, "m1"));
  RecordingContext context;
  v1::TaskResult result = RunCommand([](auto& c) { c.mutable_check(); }, context);
  EXPECT_EQ(result.state(), v1::TaskResult::FAILED);
  EXPECT_THAT(result.message(), HasSubstr(ConfigIncludePath(env_, "m1")));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/ran"));
}

TEST_F(PgBackRestExecutorTest, PgBackRestIsGivenTheIncludePathNextToTheConfig) {
  FakePgBackRest("echo \"args: $*\"\n");
  RecordingContext context;
  v1::TaskResult result =
      RunCommand([](auto& c) { c.mutable_backup()->set_type("full"); }, context);
  ASSERT_EQ(result.state(), v1::TaskResult::SUCCEEDED) << result.message();
  EXPECT_THAT(context.logs(), ::testing::Contains(absl::StrCat(
                                  "stdout: args: --config=", ConfigPath(env_, "m1"),
                                  " --config-include-path=", ConfigIncludePath(env_, "m1"),
                                  " --stanza=s1 backup --type=full")));
}

TEST_F(PgBackRestExecutorTest, NewStanzaCommandsRunAgainstTheConfiguredNewStanzaOnly) {
  FakePgBackRest("echo \"args: $*\"\n");
  // Configured without a new stanza (as the source is): refused before anything runs.
  v1::Task task;
  task.mutable_pgbackrest()->set_migration_id("m1");
  task.mutable_pgbackrest()->set_new_stanza(true);
  task.mutable_pgbackrest()->mutable_check();
  absl::StatusOr<std::unique_ptr<TaskExecutor>> refused =
      MakePgBackRestExecutor(env_, task, &store_);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("without a new stanza"));

  v1::Task configure;
  v1::ConfigurePgBackRest* config = configure.mutable_configure_pgbackrest();
  config->set_migration_id("m1");
  config->set_stanza("s1");
  config->set_new_stanza("s1-new");
  config->mutable_repository()->mutable_posix()->set_path(dir_ + "/repo");
  RecordingContext configured;
  absl::StatusOr<std::unique_ptr<TaskExecutor>> executor =
      MakeConfigureExecutor(env_, configure, &store_);
  ASSERT_TRUE(executor.ok()) << executor.status();
  ASSERT_EQ((*executor)->Run(configured).state(), v1::TaskResult::SUCCEEDED);
  EXPECT_THAT(ReadFile(ConfigPath(env_, "m1")).value_or(""), HasSubstr("\n[s1-new]\npg1-path="));

  RecordingContext context;
  v1::TaskResult result = RunCommand(
      [](auto& c) {
        c.set_new_stanza(true);
        c.mutable_check();
      },
      context);
  ASSERT_EQ(result.state(), v1::TaskResult::SUCCEEDED) << result.message();
  EXPECT_THAT(context.logs(), ::testing::Contains(HasSubstr(" --stanza=s1-new check")));
}

TEST_F(PgBackRestExecutorTest, NewStanzaEqualToTheStanzaIsRefused) {
  v1::Task configure;
  v1::ConfigurePgBackRest* config = configure.mutable_configure_pgbackrest();
  config->set_migration_id("m3");
  config->set_stanza("s1");
  config->set_new_stanza("s1");
  config->mutable_repository()->mutable_posix()->set_path(dir_ + "/repo");
  absl::StatusOr<std::unique_ptr<TaskExecutor>> executor =
      MakeConfigureExecutor(env_, configure, &store_);
  ASSERT_FALSE(executor.ok());
  EXPECT_THAT(std::string(executor.status().message()), HasSubstr("must differ"));
  EXPECT_FALSE(store_.Get("m3").has_value());
}

TEST_F(PgBackRestExecutorTest, ConfigureNamesTheSecretsFileButNeverItsContents) {
  v1::Task configure;
  v1::ConfigurePgBackRest* task = configure.mutable_configure_pgbackrest();
  task->set_migration_id("m1");
  task->set_stanza("s1");
  task->mutable_repository()->mutable_posix()->set_path(dir_ + "/repo");
  task->mutable_secrets()->set_cipher_pass("pghaul-never-logged-passphrase");
  RecordingContext context;
  absl::StatusOr<std::unique_ptr<TaskExecutor>> executor =
      MakeConfigureExecutor(env_, configure, &store_);
  ASSERT_TRUE(executor.ok()) << executor.status();
  v1::TaskResult result = (*executor)->Run(context);
  ASSERT_EQ(result.state(), v1::TaskResult::SUCCEEDED) << result.message();
  EXPECT_EQ(result.values().at("config_include_path"), ConfigIncludePath(env_, "m1"));
  EXPECT_THAT(ReadFile(SecretsConfigPath(env_, "m1")).value_or(""),
              HasSubstr("repo1-cipher-pass=pghaul-never-logged-passphrase"));
  ASSERT_EQ(context.logs().size(), 1u);
  EXPECT_THAT(context.logs()[0], HasSubstr(SecretsConfigPath(env_, "m1")));
  EXPECT_THAT(context.logs()[0], Not(HasSubstr("never-logged")));
  EXPECT_THAT(result.DebugString(), Not(HasSubstr("never-logged")));
}

TEST_F(PgBackRestExecutorTest, InvalidTasksAreRefusedAtMakeTime) {
  v1::Task task;
  task.mutable_pgbackrest()->set_migration_id("m1");
  task.mutable_pgbackrest()->mutable_restore()->set_set("20260101 000000F");
  absl::StatusOr<std::unique_ptr<TaskExecutor>> executor =
      MakePgBackRestExecutor(env_, task, &store_);
  ASSERT_FALSE(executor.ok());
  EXPECT_EQ(executor.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(executor.status().message()), HasSubstr("backup label"));

  v1::Task configure;
  configure.mutable_configure_pgbackrest()->set_migration_id("m2");
  configure.mutable_configure_pgbackrest()->set_stanza("-x");
  configure.mutable_configure_pgbackrest()->mutable_repository()->mutable_posix()->set_path(
      dir_ + "/repo");
  executor = MakeConfigureExecutor(env_, configure, &store_);
  ASSERT_FALSE(executor.ok());
  EXPECT_THAT(std::string(executor.status().message()), HasSubstr("stanza"));
  EXPECT_FALSE(store_.Get("m2").has_value());
}

}  // namespace
}  // namespace pghaul::agent
