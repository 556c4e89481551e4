// A hostile peer on the agent link gets nothing (issue 7 parts 3 and 4).
//
// HostileControllerTest: the test's own gRPC server (fixture/fake_controller.h) plays the
// controller to a real pghaul-agent that manages a real PostgreSQL 15 cluster, and sends it what
// the real controller never would: crafted fields, unknown operations, duplicate ids, acks and
// cancels for nothing, a flood, oversize messages. The agent must refuse each bad task with
// REFUSED (or drop the message), run nothing, stay alive with bounded memory, and still answer.
//
// HostileAgentTest: a gRPC client of the test's own speaks AgentLink to a real pghaul-controller:
// malformed Hellos, messages before Hello, forged events for another agent's task, oversize
// messages and a reconnect flood, which the controller's reconnect limiter must cut short while
// real agents stay online.
//
// Everything listens on 127.0.0.1; every process is ended by PID by the fixture.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/version.h"
#include "controller/reconnect_limiter.h"
#include "gmock/gmock.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "pghaul/v1/agent_link.grpc.pb.h"
#include "tests/integration/fixture/child_process.h"
#include "tests/integration/fixture/command.h"
#include "tests/integration/fixture/fake_controller.h"
#include "tests/integration/fixture/json_paths.h"
#include "tests/integration/fixture/pg_cluster.h"
#include "tests/integration/fixture/pghaul_processes.h"
#include "tests/integration/fixture/temp_dir.h"
#include "tests/integration/fixture/test_support.h"
#include "tests/integration/fixture/wait_for.h"

namespace pghaul::integration {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr absl::Duration kResultTimeout = absl::Seconds(20);

// ---------------------------------------------------------------------------------------------
// /proc helpers.

// The contents of a /proc file; "" when it cannot be read, e.g. because its process has just
// exited (read(2) then fails with ESRCH, which std::ifstream turns into an exception).
std::string ReadProcFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string contents;
  char buffer[4096];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      contents.clear();
      break;
    }
    if (n == 0) break;
    contents.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return contents;
}

// VmRSS of `pid` in KiB; -1 when unreadable.
int64_t ResidentKib(pid_t pid) {
  std::istringstream status(ReadProcFile(absl::StrCat("/proc/", pid, "/status")));
  std::string line;
  while (std::getline(status, line)) {
    if (!absl::StartsWith(line, "VmRSS:")) continue;
    int64_t kib = -1;
    std::string digits;
    for (char c : line) {
      if (c >= '0' && c <= '9') digits.push_back(c);
    }
    return absl::SimpleAtoi(digits, &kib) ? kib : -1;
  }
  return -1;
}

struct ProcessEntry {
  pid_t pid = 0;
  pid_t ppid = 0;
  std::vector<std::string> argv;
};

// Every process visible now (those that vanish while being read are skipped).
std::vector<ProcessEntry> ListProcesses() {
  std::vector<ProcessEntry> processes;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return processes;
  while (dirent* entry = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    std::string stat = ReadProcFile(absl::StrCat("/proc/", pid, "/stat"));
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 1));
    char state = '?';
    ProcessEntry info;
    info.pid = pid;
    if (!(rest >> state >> info.ppid)) continue;
    processes.push_back(std::move(info));
  }
  closedir(proc);
  return processes;
}

// The command lines of the descendants of `ancestor` that are running now.
std::vector<std::vector<std::string>> Descendants(pid_t ancestor) {
  std::vector<ProcessEntry> processes = ListProcesses();
  std::map<pid_t, pid_t> parent;
  for (const ProcessEntry& p : processes) parent[p.pid] = p.ppid;
  std::vector<std::vector<std::string>> found;
  for (const ProcessEntry& p : processes) {
    pid_t up = p.ppid;
    bool descends = false;
    for (int depth = 0; depth < 64 && up > 1 && !descends; ++depth) {
      descends = up == ancestor;
      auto it = parent.find(up);
      if (it == parent.end()) break;
      up = it->second;
    }
    if (!descends) continue;
    std::vector<std::string> argv = absl::StrSplit(
        ReadProcFile(absl::StrCat("/proc/", p.pid, "/cmdline")), '\0', absl::SkipEmpty());
    if (argv.empty()) {
      // Between fork and exec, or a zombie: only its name, as "[name]".
      std::string name(
          absl::StripAsciiWhitespace(ReadProcFile(absl::StrCat("/proc/", p.pid, "/comm"))));
      if (name.empty()) continue;  // gone meanwhile
      argv.push_back(absl::StrCat("[", name, "]"));
    }
    found.push_back(std::move(argv));
  }
  return found;
}

// Samples the descendants of one process every few milliseconds on a thread of its own and keeps
// every command line seen that is not allowed. The only child a quiet agent may have is the
// `pgbackrest version` its facts run when it (re)connects, seen also as the agent's own fork before
// the exec and as a pgbackrest zombie (a pgBackRest command that did more would leave a log, which
// ExpectNothingRan checks).
class ChildWatcher {
 public:
  explicit ChildWatcher(pid_t pid) : pid_(pid), thread_([this] { Loop(); }) {}
  ~ChildWatcher() { Stop(); }

  void Stop() {
    if (!stop_.HasBeenNotified()) stop_.Notify();
    if (thread_.joinable()) thread_.join();
  }
  std::set<std::string> Unexpected() const {
    absl::MutexLock lock(&mu_);
    return unexpected_;
  }
  int samples() const {
    absl::MutexLock lock(&mu_);
    return samples_;
  }
  // Samples in which the allowed child was seen (evidence that the sampling sees short children).
  int allowed_sightings() const {
    absl::MutexLock lock(&mu_);
    return allowed_sightings_;
  }

 private:
  void Loop() {
    while (!stop_.WaitForNotificationWithTimeout(absl::Milliseconds(5))) {
      std::vector<std::vector<std::string>> children = Descendants(pid_);
      absl::MutexLock lock(&mu_);
      ++samples_;
      for (const auto& argv : children) {
        bool facts =
            (argv.size() == 2 && argv[0] == "/usr/bin/pgbackrest" && argv[1] == "version") ||
            argv == std::vector<std::string>{"[pghaul-agent]"} ||
            argv == std::vector<std::string>{"[pgbackrest]"};
        if (facts) {
          ++allowed_sightings_;
        } else {
          unexpected_.insert(absl::StrJoin(argv, " "));
        }
      }
    }
  }

  const pid_t pid_;
  absl::Notification stop_;
  mutable absl::Mutex mu_;
  std::set<std::string> unexpected_ ABSL_GUARDED_BY(mu_);
  int samples_ ABSL_GUARDED_BY(mu_) = 0;
  int allowed_sightings_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------------
// Tasks.

v1::Task Configure(const std::string& id, const std::string& migration, const std::string& stanza,
                   const std::string& repository) {
  v1::Task task;
  task.set_task_id(id);
  v1::ConfigurePgBackRest* configure = task.mutable_configure_pgbackrest();
  configure->set_migration_id(migration);
  configure->set_stanza(stanza);
  configure->mutable_repository()->mutable_posix()->set_path(repository);
  return task;
}

v1::Task Backup(const std::string& id, const std::string& type,
                const std::string& compress_type = "") {
  v1::Task task;
  task.set_task_id(id);
  task.mutable_pgbackrest()->set_migration_id("m1");
  task.mutable_pgbackrest()->mutable_backup()->set_type(type);
  task.mutable_pgbackrest()->mutable_backup()->set_compress_type(compress_type);
  return task;
}

v1::Task Restore(const std::string& id, const std::string& type, const std::string& target,
                 const std::string& timeline = "", const std::string& set = "") {
  v1::Task task;
  task.set_task_id(id);
  task.mutable_pgbackrest()->set_migration_id("m1");
  v1::PgBackRestRestore* restore = task.mutable_pgbackrest()->mutable_restore();
  restore->set_type(type);
  restore->set_target(target);
  restore->set_target_timeline(timeline);
  restore->set_set(set);
  return task;
}

v1::Task Sql(const std::string& id, v1::SqlQuery::Query query) {
  v1::Task task;
  task.set_task_id(id);
  task.mutable_sql()->set_query(query);
  return task;
}

// ---------------------------------------------------------------------------------------------

class HostileControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RequireRoot();
    if (HasFatalFailure()) return;
    PGH_ASSERT_OK_AND_ASSIGN(dir_, TempDir::Create("pghaul-hostile-"));
    PGH_ASSERT_OK_AND_ASSIGN(backups_root_, dir_->MakeSubdir("backups", kPostgresOsUser, 0750));
    PGH_ASSERT_OK_AND_ASSIGN(repo_path_, dir_->MakeSubdir("backups/repo", kPostgresOsUser, 0750));
    // Where the shell syntax in crafted fields would create files, writable by the agent's user
    // so that nothing but the agent's refusal stands in the way.
    PGH_ASSERT_OK_AND_ASSIGN(markers_, dir_->MakeSubdir("markers", kPostgresOsUser, 0777));
    canary_ = markers_ + "/canary";
    PGH_ASSERT_OK(WriteFile(canary_, "still here\n"));
    PGH_ASSERT_OK(ChownToUser(canary_, kPostgresOsUser));

    PgClusterOptions pg;
    pg.name = "pg";
    PGH_ASSERT_OK_AND_ASSIGN(cluster_, PgCluster::Create(dir_->path(), pg));
    PGH_ASSERT_OK(cluster_->Start());
    PGH_ASSERT_OK(
        cluster_->Query("CREATE TABLE precious (i int); INSERT INTO precious VALUES (1)"));
    // Application checks run as a role of their own, as agent.yaml must say for checks to run.
    PGH_ASSERT_OK(cluster_->Query("CREATE ROLE checker LOGIN; GRANT SELECT ON precious TO checker"));

    PGH_ASSERT_OK_AND_ASSIGN(fake_, FakeController::Start());
    AgentOptions options = AgentOptions::ForCluster("db1", fake_->address(), *cluster_);
    options.roots = {backups_root_};
    options.extra_yaml = "application_checks: {user: checker}\n";
    // Facts (and their `pgbackrest version`) only when the agent connects.
    options.facts_interval = absl::Minutes(10);
    options.reconnect_initial = absl::Milliseconds(200);
    options.reconnect_max = absl::Seconds(1);
    PGH_ASSERT_OK_AND_ASSIGN(agent_, PghaulAgent::Create(dir_->path() + "/agent", options));
    PGH_ASSERT_OK(agent_->Start());
    PGH_ASSERT_OK_AND_ASSIGN(v1::Hello hello, fake_->WaitForHellos(1, absl::Seconds(30)));
    EXPECT_EQ(hello.agent_id(), "db1");
    incarnation_ = hello.incarnation();

    // A valid migration, so that the pgBackRest tasks below are judged on their own fields.
    PGH_ASSERT_OK_AND_ASSIGN(v1::TaskResult configured,
                             RunTask(Configure("configure-m1", "m1", "main", repo_path_)));
    ASSERT_EQ(configured.state(), v1::TaskResult::SUCCEEDED) << configured.message();
    legitimate_.insert("configure-m1");
    PGH_ASSERT_OK_AND_ASSIGN(postgres_before_, PostgresFingerprint());
    agent_pid_ = agent_->process()->pid();
    watcher_ = std::make_unique<ChildWatcher>(agent_pid_);
  }

  void TearDown() override {
    if (watcher_ != nullptr) watcher_->Stop();
    if (!HasFailure()) return;
    std::vector<std::string> logs;
    if (agent_ != nullptr) logs.push_back(agent_->log_path());
    if (cluster_ != nullptr) logs.push_back(cluster_->log_path());
    PrintLogTails(logs);
  }

  absl::StatusOr<v1::TaskResult> RunTask(const v1::Task& task) {
    if (absl::Status s = fake_->SendTask(task); !s.ok()) return s;
    return fake_->WaitForResult(task.task_id(), kResultTimeout);
  }

  // What a hostile task could have changed in PostgreSQL: it is the same server (start time),
  // with the same settings, hba rules, databases and table.
  absl::StatusOr<std::string> PostgresFingerprint() {
    auto fingerprint = cluster_->Query(
        "SELECT pg_postmaster_start_time() || ' ' || pg_is_in_recovery() || ' ' || "
        "current_setting('default_transaction_read_only') || ' ' || "
        "(SELECT md5(string_agg(name || '=' || setting, ',' ORDER BY name)) FROM pg_settings) "
        "|| ' ' || (SELECT md5(string_agg(line_number || ':' || type || ':' || "
        "array_to_string(user_name, ','), ';' ORDER BY line_number)) FROM pg_hba_file_rules) "
        "|| ' ' || (SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database) "
        "|| ' ' || (SELECT count(*) FROM precious)");
    if (!fingerprint.ok()) return fingerprint.status();
    auto auto_conf = ReadFile(cluster_->data_dir() + "/postgresql.auto.conf");
    auto hba = ReadFile(cluster_->data_dir() + "/pg_hba.conf");
    if (!auto_conf.ok()) return auto_conf.status();
    if (!hba.ok()) return hba.status();
    return absl::StrCat(*fingerprint, "\n", *auto_conf, "\n", *hba);
  }

  // The ids of the tasks the agent's log says it started.
  std::set<std::string> StartedTasks() const {
    std::set<std::string> started;
    std::istringstream log(agent_->ReadLog());
    std::string line;
    static const std::regex kStarted(R"(task (\S+) \([^)]*\) started)");
    std::smatch match;
    while (std::getline(log, line)) {
      if (std::regex_search(line, match, kStarted)) started.insert(match[1]);
    }
    return started;
  }

  // Nothing ran: no unexpected child of the agent was ever seen, no task but the legitimate ones
  // started, no marker file exists and the canary does, the repository is empty, no migration
  // directory but m1's, pgBackRest wrote no log, PostgreSQL is the same server with the same
  // settings, and the agent is the same process.
  void ExpectNothingRan() {
    watcher_->Stop();
    EXPECT_GT(watcher_->samples(), 10) << "the child watcher hardly ran";
    std::cout << "child watcher: " << watcher_->samples() << " samples of the agent's children, "
              << watcher_->allowed_sightings() << " showing the facts' pgbackrest version\n";
    EXPECT_THAT(watcher_->Unexpected(), testing::IsEmpty());
    EXPECT_EQ(StartedTasks(), legitimate_);
    std::vector<std::string> markers;
    for (const auto& entry : std::filesystem::directory_iterator(markers_)) {
      markers.push_back(entry.path().filename().string());
    }
    EXPECT_EQ(markers, std::vector<std::string>{"canary"}) << "shell syntax in a field ran";
    EXPECT_TRUE(std::filesystem::is_empty(repo_path_)) << "the repository was touched";
    std::vector<std::string> migrations;
    for (const auto& entry :
         std::filesystem::directory_iterator(agent_->state_dir() + "/pgbackrest")) {
      migrations.push_back(entry.path().filename().string());
    }
    EXPECT_EQ(migrations, std::vector<std::string>{"m1"});
    const std::string pgbackrest_logs = agent_->state_dir() + "/pgbackrest/m1/log";
    if (std::filesystem::exists(pgbackrest_logs)) {
      EXPECT_TRUE(std::filesystem::is_empty(pgbackrest_logs)) << "a pgBackRest command ran";
    }
    auto now = PostgresFingerprint();
    PGH_EXPECT_OK(now);
    if (now.ok()) {
      EXPECT_EQ(*now, postgres_before_) << "PostgreSQL changed";
    }
    EXPECT_TRUE(agent_->process()->IsRunning()) << "the agent died";
    EXPECT_EQ(agent_->process()->pid(), agent_pid_);
  }

  // The agent still works: a harmless read-only query succeeds.
  void ExpectStillAnswers(const std::string& id) {
    PGH_ASSERT_OK_AND_ASSIGN(v1::TaskResult lsn, RunTask(Sql(id, v1::SqlQuery::CURRENT_WAL_LSN)));
    legitimate_.insert(id);
    EXPECT_EQ(lsn.state(), v1::TaskResult::SUCCEEDED) << lsn.message();
    EXPECT_EQ(lsn.values().count("lsn"), 1u);
  }

  std::unique_ptr<TempDir> dir_;
  std::string backups_root_;
  std::string repo_path_;
  std::string markers_;
  std::string canary_;
  std::unique_ptr<PgCluster> cluster_;
  std::unique_ptr<FakeController> fake_;
  std::unique_ptr<PghaulAgent> agent_;  // after the cluster: stopped before it
  std::unique_ptr<ChildWatcher> watcher_;
  std::string incarnation_;
  pid_t agent_pid_ = 0;
  std::string postgres_before_;
  std::set<std::string> legitimate_;  // tasks this test meant to run
};

TEST_F(HostileControllerTest, CraftedTasksAreRefusedAndNothingRuns) {
  const std::string marker = markers_ + "/ran";
  const std::string touch = absl::StrCat("$(touch ", marker, ")");
  const std::string rm = absl::StrCat("; rm -rf ", markers_);
  const std::string oversize(15 << 20, 's');  // under the 16 MiB message bound
  struct Crafted {
    v1::Task task;
    std::string named;  // what the refusal must name
  };
  std::vector<Crafted> crafted;
  auto add = [&](v1::Task task, std::string named) {
    crafted.push_back({std::move(task), std::move(named)});
  };
  add(Configure("t-migration-up", "../../etc", "main", repo_path_), "migration");
  add(Configure("t-migration-abs", "/etc", "main", repo_path_), "migration");
  add(Configure("t-repo-root", "m2", "main", "/"), "repository");
  add(Configure("t-repo-climb", "m2", "main", repo_path_ + "/../../../etc"), "repository");
  add(Configure("t-repo-relative", "m2", "main", "repo"), "repository");
  add(Configure("t-stanza-option", "m2", "--repo1-path=/", repo_path_), "stanza");
  add(Configure("t-stanza-c", "m2", "-c", repo_path_), "stanza");
  add(Configure("t-stanza-shell", "m2", touch, repo_path_), "stanza");
  add(Configure("t-stanza-rm", "m2", "main" + rm, repo_path_), "stanza");
  add(Configure("t-stanza-newline", "m2", "main\n[global]\nrepo1-path=/", repo_path_), "stanza");
  add(Configure("t-stanza-15mib", "m2", oversize, repo_path_), "stanza");
  {
    v1::Task task = Configure("t-new-stanza-shell", "m2", "main", repo_path_);
    task.mutable_configure_pgbackrest()->set_new_stanza("`touch " + marker + "`");
    add(std::move(task), "stanza");
  }
  add(Backup("t-type-option", "--repo1-path=/"), "type");
  add(Backup("t-type-c", "-c"), "type");
  add(Backup("t-type-extra", "full --repo1-path=/tmp/elsewhere"), "type");
  add(Backup("t-type-shell", "full; " + touch), "type");
  add(Backup("t-compress-option", "full", "lz4 --repo1-path=/"), "compress");
  add(Restore("t-lsn-shell", "lsn", "0/0" + touch), "LSN");
  add(Restore("t-lsn-rm", "lsn", "0/0" + rm), "LSN");
  add(Restore("t-timeline-shell", "default", "", touch), "timeline");
  add(Restore("t-timeline-rm", "default", "", "latest" + rm), "timeline");
  add(Restore("t-set-path", "default", "", "", "../../../etc/passwd"), "label");
  add(Restore("t-time-shell", "time", "2024-01-01 00:00:00+00" + rm), "time");
  add(Restore("t-type-restore-option", "--type=immediate", ""), "type");
  {
    v1::Task task = Sql("t-wait-lsn-shell", v1::SqlQuery::WAIT_REPLAYED);
    task.mutable_sql()->set_lsn(touch);
    add(std::move(task), "LSN");
  }
  {
    v1::Task task = Sql("t-walfile-path", v1::SqlQuery::WAIT_ARCHIVED);
    task.mutable_sql()->set_walfile("../../../../etc/passwd");
    add(std::move(task), "WAL");
  }
  {
    v1::Task task = Sql("t-fence-rm", v1::SqlQuery::FENCE_READ_ONLY);
    task.mutable_sql()->set_migration_id(rm);
    add(std::move(task), "migration");
  }
  {
    v1::Task task = Sql("t-archiving-other", v1::SqlQuery::ENABLE_ARCHIVING);
    task.mutable_sql()->set_migration_id("../m1");
    add(std::move(task), "migration");
  }
  {
    v1::Task task;
    task.set_task_id("t-service-shell");
    task.mutable_service()->set_action(v1::ServiceAction::STOP);
    task.mutable_service()->set_stop_mode("fast; " + touch);
    add(std::move(task), "stop");
  }
  {
    v1::Task task;
    task.set_task_id("t-service-unknown");
    task.mutable_service()->set_action(static_cast<v1::ServiceAction::Action>(77));
    add(std::move(task), "action");
  }
  {
    v1::Task task = Sql("t-query-unknown", static_cast<v1::SqlQuery::Query>(999));
    add(std::move(task), "query");
  }
  {
    v1::Task task;
    task.set_task_id("t-pgbackrest-no-command");
    task.mutable_pgbackrest()->set_migration_id("m1");
    add(std::move(task), "command");
  }
  {
    v1::Task task;
    task.set_task_id("t-pgbackrest-unconfigured");
    task.mutable_pgbackrest()->set_migration_id("never-configured");
    task.mutable_pgbackrest()->mutable_stanza_create();
    add(std::move(task), "never-configured");
  }
  // Unknown operations: the oneof unset; and an operation this agent does not know, which
  // reaches it as an unknown field (number 20, length-delimited) and nothing else.
  {
    v1::Task task;
    task.set_task_id("t-op-unset");
    add(std::move(task), "operation");
  }
  {
    v1::Task task;
    task.set_task_id("t-op-unknown-field");
    task.GetReflection()->MutableUnknownFields(&task)->AddLengthDelimited(20, "\x08\x01");
    task.GetReflection()->MutableUnknownFields(&task)->AddVarint(99, 1);
    add(std::move(task), "operation");
  }

  // The /proc walk behind ExpectNothingRan finds a child when there is one.
  {
    ChildProcessOptions sleeper;
    sleeper.argv = {"/bin/sleep", "30"};
    sleeper.launch.die_with_parent = false;
    sleeper.log_path = dir_->path() + "/sleep.log";
    PGH_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ChildProcess> child,
                             ChildProcess::Start(std::move(sleeper)));
    EXPECT_THAT(Descendants(getpid()),
                testing::Contains(std::vector<std::string>{"/bin/sleep", "30"}));
    PGH_EXPECT_OK(child->Stop());
  }
  const int64_t rss_before = ResidentKib(agent_pid_);
  for (const Crafted& c : crafted) PGH_ASSERT_OK(fake_->SendTask(c.task));
  PGH_ASSERT_OK(fake_->WaitForResultCount(legitimate_.size() + crafted.size(), kResultTimeout));
  std::map<std::string, v1::TaskResult> results = fake_->Results();
  for (const Crafted& c : crafted) {
    const v1::TaskResult& result = results[c.task.task_id()];
    EXPECT_EQ(result.state(), v1::TaskResult::REFUSED)
        << c.task.task_id() << ": " << v1::TaskResult::State_Name(result.state()) << " "
        << result.message();
    EXPECT_THAT(absl::AsciiStrToLower(result.message()), HasSubstr(absl::AsciiStrToLower(c.named)))
        << c.task.task_id() << ": the refusal does not name the problem";
    // Values are echoed shortened, so an oversize field does not come back whole.
    EXPECT_LT(result.message().size(), 4096u) << c.task.task_id();
    std::cout << c.task.task_id() << ": " << result.message().substr(0, 300) << "\n";
  }
  EXPECT_LT(fake_->largest_message_bytes(), 64u << 10) << "the agent echoed an oversize field";

  // Ids that cannot name a task: no result can be sent under them; the agent drops them.
  const std::vector<std::string> bad_ids = {"../../../etc/passwd",     "-rf",    "",
                                            std::string(65, 'a'),      "a b",    touch,
                                            std::string(1 << 20, 'x'), ".hidden"};
  for (const std::string& id : bad_ids) {
    v1::Task task = Backup(id, "full");
    PGH_ASSERT_OK(fake_->SendTask(task));
  }
  // Duplicate ids: a refused task sent again, now harmless and valid, is not run; a finished
  // legitimate one sent again as a backup is not run either. Neither is reported twice.
  PGH_ASSERT_OK(fake_->SendTask(Sql("t-type-c", v1::SqlQuery::CURRENT_WAL_LSN)));
  PGH_ASSERT_OK(fake_->SendTask(Backup("configure-m1", "full")));
  // Acks and cancels for tasks that do not exist or ids that are not ids, and an ack far beyond
  // the last event of a real task.
  for (const std::string& id : {std::string("no-such-task"), std::string("../../x"),
                                std::string(1 << 20, 'c'), std::string()}) {
    v1::ControllerMessage ack;
    ack.mutable_ack()->set_task_id(id);
    ack.mutable_ack()->set_seq(UINT64_MAX);
    PGH_ASSERT_OK(fake_->Send(ack));
    v1::ControllerMessage cancel;
    cancel.mutable_cancel()->set_task_id(id);
    PGH_ASSERT_OK(fake_->Send(cancel));
  }
  {
    v1::ControllerMessage ack;
    ack.mutable_ack()->set_task_id("t-stanza-c");
    ack.mutable_ack()->set_seq(UINT64_MAX);
    PGH_ASSERT_OK(fake_->Send(ack));
  }
  // A message with no known field at all, and an empty one.
  {
    v1::ControllerMessage unknown;
    unknown.GetReflection()->MutableUnknownFields(&unknown)->AddVarint(42, 7);
    unknown.GetReflection()->MutableUnknownFields(&unknown)->AddLengthDelimited(43, "junk");
    PGH_ASSERT_OK(fake_->Send(unknown));
    PGH_ASSERT_OK(fake_->Send(v1::ControllerMessage()));
  }
  // Re-attach only, for a task the agent never had: reported, not started.
  {
    v1::Task task = Backup("t-reattach-unknown", "full");
    task.set_reattach_only(true);
    PGH_ASSERT_OK_AND_ASSIGN(v1::TaskResult reattach, RunTask(task));
    EXPECT_NE(reattach.state(), v1::TaskResult::SUCCEEDED) << reattach.message();
    EXPECT_THAT(reattach.message(), HasSubstr("not started"));
  }

  // Tasks are taken in order, so once a later harmless task has answered, all of the above
  // were handled.
  ExpectStillAnswers("after-crafted");
  std::map<std::string, int> result_counts = fake_->ResultCounts();
  for (const std::string& id : bad_ids) {
    EXPECT_FALSE(result_counts.contains(id)) << "a result under an invalid id";
  }
  EXPECT_EQ(result_counts["t-type-c"], 1) << "a duplicate id was reported twice";
  EXPECT_EQ(result_counts["configure-m1"], 1) << "a duplicate id was reported twice";
  EXPECT_EQ(fake_->Results()["t-type-c"].state(), v1::TaskResult::REFUSED);
  const std::string log = agent_->ReadLog();
  size_t invalid_id_lines = 0;
  for (size_t at = log.find("refused a task with an invalid id"); at != std::string::npos;
       at = log.find("refused a task with an invalid id", at + 1)) {
    ++invalid_id_lines;
  }
  EXPECT_EQ(invalid_id_lines, bad_ids.size());
  EXPECT_LT(log.size(), 1u << 20) << "an oversize field reached the agent's log";
  EXPECT_EQ(fake_->hellos(), 1) << "the agent's stream broke";
  const int64_t rss_after = ResidentKib(agent_pid_);
  std::cout << "agent VmRSS " << rss_before << " KiB before the crafted tasks, " << rss_after
            << " KiB after\n";
  EXPECT_LT(rss_after - rss_before, 64 * 1024) << "the agent's memory grew";
  ExpectNothingRan();
}

// Found by this test and fixed: checks ran on the agent's own (superuser) connection, where a
// READ ONLY transaction still allows COPY ... TO PROGRAM, lo_export and pg_read_file. They now
// run as application_checks.user, a role the agent refuses if it could reach the host; the
// server then denies all three.
TEST_F(HostileControllerTest, ApplicationCheckCannotRunServerPrograms) {
  const std::string marker = markers_ + "/copy-to-program";
  v1::Task task;
  task.set_task_id("check-copy-program");
  task.mutable_check()->set_name("hostile.sql");
  task.mutable_check()->set_sql(absl::StrCat("COPY (SELECT 1) TO PROGRAM 'touch ", marker, "'"));
  PGH_ASSERT_OK_AND_ASSIGN(v1::TaskResult result, RunTask(task));
  EXPECT_NE(result.state(), v1::TaskResult::SUCCEEDED) << result.message();
  EXPECT_THAT(result.message(), HasSubstr("42501"));  // insufficient privilege
  EXPECT_FALSE(std::filesystem::exists(marker))
      << "COPY TO PROGRAM ran a shell command on the database host: " << result.message();
  // lo_export writes a file on the server's host in a read-only transaction too (given a large
  // object, which an application database may well have).
  PGH_ASSERT_OK(cluster_->Query("SELECT lo_from_bytea(0, 'hostile')"));
  const std::string exported = markers_ + "/lo-export";
  v1::Task write_file;
  write_file.set_task_id("check-lo-export");
  write_file.mutable_check()->set_name("hostile.sql");
  write_file.mutable_check()->set_sql(absl::StrCat(
      "SELECT lo_export((SELECT min(oid) FROM pg_largeobject_metadata), '", exported, "')"));
  PGH_ASSERT_OK_AND_ASSIGN(v1::TaskResult written, RunTask(write_file));
  EXPECT_FALSE(std::filesystem::exists(exported)) << written.message();
  // And pg_read_file hands the controller any file the postgres OS user can read: here the
  // agent's own config (the same user reads the agent's TLS key and pgBackRest secrets).
  v1::Task read_file;
  read_file.set_task_id("check-read-file");
  read_file.mutable_check()->set_name("hostile.sql");
  read_file.mutable_check()->set_sql(
      absl::StrCat("SELECT pg_read_file('", agent_->config_path(), "')"));
  PGH_ASSERT_OK_AND_ASSIGN(v1::TaskResult read, RunTask(read_file));
  EXPECT_THAT(read.values().count("first") == 0 ? "" : read.values().at("first"),
              testing::Not(HasSubstr("agent_id:")))
      << "a check read a file of the agent's host";
  EXPECT_TRUE(agent_->process()->IsRunning());
}

TEST_F(HostileControllerTest, ATaskFloodIsRefusedWithBoundedMemory) {
  constexpr int kFlood = 2000;
  const int64_t rss_before = ResidentKib(agent_pid_);
  ASSERT_GT(rss_before, 0);
  const absl::Time started = absl::Now();
  for (int i = 0; i < kFlood; ++i) {
    PGH_ASSERT_OK(fake_->SendTask(Backup(absl::StrCat("flood-", i), "-c")));
  }
  PGH_ASSERT_OK(fake_->WaitForResultCount(legitimate_.size() + kFlood, absl::Seconds(60)));
  const absl::Duration took = absl::Now() - started;
  std::map<std::string, v1::TaskResult> results = fake_->Results();
  int refused = 0;
  for (int i = 0; i < kFlood; ++i) {
    refused += results[absl::StrCat("flood-", i)].state() == v1::TaskResult::REFUSED ? 1 : 0;
  }
  EXPECT_EQ(refused, kFlood);

  // Valid, harmless, slow tasks beyond the agent's bound on running tasks: the excess is refused
  // with the count, nothing started for it. (A wait for replay on a primary never reaches its LSN;
  // it polls a read-only query until its wait runs out.)
  constexpr int kSlow = 20;
  for (int i = 0; i < kSlow; ++i) {
    v1::Task task = Sql(absl::StrCat("slow-", i), v1::SqlQuery::WAIT_REPLAYED);
    task.mutable_sql()->set_lsn("FFFFFFFF/0");
    task.mutable_sql()->set_wait_seconds(3);
    PGH_ASSERT_OK(fake_->SendTask(task));
  }
  PGH_ASSERT_OK(fake_->WaitForResultCount(legitimate_.size() + kFlood + kSlow, absl::Seconds(30)));
  results = fake_->Results();
  int over_limit = 0;
  for (int i = 0; i < kSlow; ++i) {
    const v1::TaskResult& result = results[absl::StrCat("slow-", i)];
    if (result.state() == v1::TaskResult::REFUSED) {
      ++over_limit;
      EXPECT_THAT(result.message(), HasSubstr("its limit")) << result.message();
    } else {
      legitimate_.insert(absl::StrCat("slow-", i));
    }
  }
  EXPECT_EQ(over_limit, kSlow - 16) << "the agent ran more tasks at once than its bound";

  const int64_t rss_after = ResidentKib(agent_pid_);
  std::cout << kFlood << " crafted tasks refused in " << absl::FormatDuration(took)
            << "; agent VmRSS " << rss_before << " KiB before, " << rss_after << " KiB after\n";
  EXPECT_LT(rss_after - rss_before, 32 * 1024) << "the agent's memory grew with the flood";
  EXPECT_EQ(fake_->hellos(), 1) << "the agent's stream broke";
  ExpectStillAnswers("after-flood");
  ExpectNothingRan();
}

TEST_F(HostileControllerTest, AMessageOverTheBoundEndsTheStreamNotTheAgent) {
  // 17 MiB, over the agents' 16 MiB receive bound: gRPC rejects it before the agent parses it.
  v1::Task task = Configure("t-17mib", "m2", std::string(17 << 20, 's'), repo_path_);
  // The write may or may not report the broken stream; the agent's reconnect is what counts.
  (void)fake_->SendTask(task);
  PGH_ASSERT_OK(fake_->WaitForStreamEnd(1, absl::Seconds(20)));
  PGH_ASSERT_OK_AND_ASSIGN(v1::Hello again, fake_->WaitForHellos(2, absl::Seconds(20)));
  EXPECT_EQ(again.incarnation(), incarnation_) << "the agent restarted instead of reconnecting";
  EXPECT_FALSE(fake_->ResultCounts().contains("t-17mib")) << "the oversize task was taken";
  EXPECT_THAT(agent_->ReadLog(), HasSubstr("link to controller"));
  ExpectStillAnswers("after-oversize");
  ExpectNothingRan();
}

// ---------------------------------------------------------------------------------------------

// One AgentLink stream of a hostile agent (the sync gRPC API: blocking calls, bounded by the
// context's deadline).
class LinkClient {
 public:
  explicit LinkClient(v1::AgentLink::Stub* stub, absl::Duration deadline = absl::Seconds(15)) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    stream_ = stub->Connect(&context_);
  }

  bool Write(const v1::AgentMessage& message) { return stream_->Write(message); }

  // Reads until a message of `kind` arrives (returned) or the stream ends (nullopt).
  std::optional<v1::ControllerMessage> ReadUntil(v1::ControllerMessage::MsgCase kind) {
    v1::ControllerMessage message;
    while (stream_->Read(&message)) {
      if (message.msg_case() == kind) return message;
    }
    ended_ = true;
    return std::nullopt;
  }

  // Closes our side, reads whatever is left and returns the stream's status.
  grpc::Status End() {
    if (!ended_) {
      stream_->WritesDone();
      v1::ControllerMessage message;
      while (stream_->Read(&message)) {
      }
      ended_ = true;
    }
    return stream_->Finish();
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::ControllerMessage>> stream_;
  bool ended_ = false;
};

v1::AgentMessage Hello(const std::string& agent_id, const std::string& incarnation = "i1",
                       uint32_t protocol = kProtocolVersion) {
  v1::AgentMessage message;
  message.mutable_hello()->set_agent_id(agent_id);
  message.mutable_hello()->set_incarnation(incarnation);
  message.mutable_hello()->mutable_versions()->set_pghaul(kPghaulVersion);
  message.mutable_hello()->mutable_versions()->set_protocol(protocol);
  return message;
}

v1::AgentMessage Result(const std::string& task_id, uint64_t seq, v1::TaskResult::State state,
                        const std::string& message) {
  v1::AgentMessage event;
  event.mutable_task_event()->set_task_id(task_id);
  event.mutable_task_event()->set_seq(seq);
  event.mutable_task_event()->mutable_result()->set_state(state);
  event.mutable_task_event()->mutable_result()->set_message(message);
  return event;
}

v1::AgentMessage Progress(const std::string& task_id, uint64_t seq, double percent) {
  v1::AgentMessage event;
  event.mutable_task_event()->set_task_id(task_id);
  event.mutable_task_event()->set_seq(seq);
  event.mutable_task_event()->mutable_progress()->set_percent(percent);
  return event;
}

size_t Count(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

// Outcomes of many connects.
struct Tally {
  int welcomed = 0;
  int rate_limited = 0;
  int other = 0;
  std::string sample;  // one refusal's message
  std::string other_sample;
};

class HostileAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RequireRoot();
    if (HasFatalFailure()) return;
    PGH_ASSERT_OK_AND_ASSIGN(dir_, TempDir::Create("pghaul-hostile-agent-"));
    ControllerOptions options;
    options.log_level = "info";
    // Long enough that the streams this test plays need send no heartbeats (offline after 3).
    options.heartbeat_interval = absl::Seconds(20);
    PGH_ASSERT_OK_AND_ASSIGN(controller_,
                             PghaulController::Create(dir_->path() + "/controller", options));
    PGH_ASSERT_OK(controller_->Start());
    cli_ = std::make_unique<PghaulCli>(controller_->address());
    grpc::ChannelArguments args;
    // Ours may send more than the controller takes.
    args.SetMaxSendMessageSize(64 << 20);
    args.SetMaxReceiveMessageSize(64 << 20);
    channel_ =
        grpc::CreateCustomChannel(controller_->address(), grpc::InsecureChannelCredentials(), args);
    stub_ = v1::AgentLink::NewStub(channel_);
  }

  void TearDown() override {
    if (!HasFailure()) return;
    std::vector<std::string> logs;
    if (controller_ != nullptr) logs.push_back(controller_->log_path());
    for (const auto& agent : agents_) logs.push_back(agent->log_path());
    PrintLogTails(logs);
  }

  // A real agent (no PostgreSQL next to it: its facts say so), online.
  absl::StatusOr<PghaulAgent*> StartAgent(const std::string& agent_id) {
    std::string agent_dir = dir_->path() + "/agent-" + agent_id;
    AgentOptions options;
    options.agent_id = agent_id;
    options.controller_address = controller_->address();
    options.pg_socket_dir = "/tmp";
    options.pg_port = 5499;
    options.data_directory = agent_dir + "/data";
    options.log_level = "info";
    auto agent = PghaulAgent::Create(agent_dir, options);
    if (!agent.ok()) return agent.status();
    agents_.push_back(*std::move(agent));
    if (absl::Status s = agents_.back()->Start(); !s.ok()) return s;
    absl::Status online = WaitFor(absl::StrCat(agent_id, " online"), absl::Seconds(20), [&] {
      auto entry = cli_->FindAgent(agent_id);
      if (!entry.ok()) return entry.status();
      return At(*entry, "online") == true ? absl::OkStatus()
                                          : absl::UnavailableError(entry->dump());
    });
    if (!online.ok()) return online;
    return agents_.back().get();
  }

  // The stream's status after sending `messages` (and reading until it ends).
  grpc::Status Refusal(const std::vector<v1::AgentMessage>& messages) {
    LinkClient client(stub_.get(), absl::Seconds(5));
    for (const v1::AgentMessage& message : messages) {
      if (!client.Write(message)) break;
    }
    // Welcome and heartbeats are skipped; a stream the controller keeps open ends at the deadline.
    client.ReadUntil(v1::ControllerMessage::kAck);
    return client.End();
  }

  absl::StatusOr<json> ShowTask(const std::string& id) {
    return cli_->RunJson({"task", "show", id});
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<PghaulController> controller_;
  std::unique_ptr<PghaulCli> cli_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AgentLink::Stub> stub_;
  std::vector<std::unique_ptr<PghaulAgent>> agents_;
};

TEST_F(HostileAgentTest, MalformedAndForgedMessagesChangeNothing) {
  // The victim: an agent with a task pending (this stream plays it and does not answer yet).
  LinkClient victim(stub_.get(), absl::Seconds(60));
  ASSERT_TRUE(victim.Write(Hello("victim")));
  ASSERT_TRUE(victim.ReadUntil(v1::ControllerMessage::kWelcome).has_value());
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult submitted,
                           cli_->Run({"task", "submit", "victim", "--json",
                                      R"({"gather_facts":{}})", "--id", "victim-task"}));
  ASSERT_EQ(submitted.exit_code, 0) << submitted.stderr_text;
  std::optional<v1::ControllerMessage> task = victim.ReadUntil(v1::ControllerMessage::kTask);
  ASSERT_TRUE(task.has_value());
  ASSERT_EQ(task->task().task_id(), "victim-task");

  // Mallory, another agent, reports on the victim's task and on tasks that do not exist. The
  // controller acknowledges them (so a confused agent stops resending) and records nothing.
  const int64_t log_before = static_cast<int64_t>(controller_->process()->ReadLog().size());
  {
    LinkClient mallory(stub_.get());
    ASSERT_TRUE(mallory.Write(Hello("mallory")));
    ASSERT_TRUE(mallory.ReadUntil(v1::ControllerMessage::kWelcome).has_value());
    ASSERT_TRUE(mallory.Write(Progress("victim-task", 1, 99)));
    ASSERT_TRUE(mallory.Write(Result("victim-task", 2, v1::TaskResult::SUCCEEDED, "forged")));
    ASSERT_TRUE(mallory.Write(Result("no-such-task", 1, v1::TaskResult::FAILED, "forged")));
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(mallory.ReadUntil(v1::ControllerMessage::kAck).has_value()) << i;
    }
    EXPECT_TRUE(mallory.End().ok());
  }
  PGH_ASSERT_OK_AND_ASSIGN(json shown, ShowTask("victim-task"));
  EXPECT_EQ(Str(shown, "state"), "pending") << shown.dump(2);
  EXPECT_EQ(Str(shown, "agent_id"), "victim");
  EXPECT_TRUE(At(shown, "result").is_null()) << shown.dump(2);
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult missing, cli_->Run({"task", "show", "no-such-task"}));
  EXPECT_NE(missing.exit_code, 0) << "a forged event created a task: " << missing.stdout_text;

  // The check sees a change when there is one: the victim's own progress makes it running.
  ASSERT_TRUE(victim.Write(Progress("victim-task", 1, 50)));
  ASSERT_TRUE(victim.ReadUntil(v1::ControllerMessage::kAck).has_value());
  PGH_ASSERT_OK_AND_ASSIGN(shown, ShowTask("victim-task"));
  EXPECT_EQ(Str(shown, "state"), "running") << shown.dump(2);
  ASSERT_TRUE(victim.Write(Result("victim-task", 2, v1::TaskResult::SUCCEEDED, "real")));
  ASSERT_TRUE(victim.ReadUntil(v1::ControllerMessage::kAck).has_value());
  // ... and a finished task stays as its own agent reported it.
  {
    LinkClient mallory(stub_.get());
    ASSERT_TRUE(mallory.Write(Hello("mallory", "i2")));
    ASSERT_TRUE(mallory.ReadUntil(v1::ControllerMessage::kWelcome).has_value());
    ASSERT_TRUE(mallory.Write(Result("victim-task", 3, v1::TaskResult::FAILED, "forged")));
    ASSERT_TRUE(mallory.ReadUntil(v1::ControllerMessage::kAck).has_value());
    EXPECT_TRUE(mallory.End().ok());
  }
  PGH_ASSERT_OK_AND_ASSIGN(shown, ShowTask("victim-task"));
  EXPECT_EQ(Str(shown, "state"), "succeeded") << shown.dump(2);
  EXPECT_EQ(Str(shown, "result.message"), "real") << shown.dump(2);
  EXPECT_EQ(Int(shown, "last_seq"), 2) << shown.dump(2);

  // Hellos that name no valid agent id.
  const std::vector<std::string> bad_ids = {"",
                                            "../etc",
                                            "UPPER",
                                            "a b",
                                            "$(touch x)",
                                            "-rf",
                                            std::string(64, 'a'),
                                            std::string(1 << 20, 'z')};
  for (const std::string& id : bad_ids) {
    grpc::Status status = Refusal({Hello(id)});
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << id.substr(0, 20) << ": " << status.error_message().substr(0, 200);
    EXPECT_LT(status.error_message().size(), 1024u);
  }
  // A Hello without an incarnation, or of another protocol; two Hellos on one stream.
  EXPECT_EQ(Refusal({Hello("mallory", "")}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Refusal({Hello("mallory", "i3", kProtocolVersion + 1)}).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Refusal({Hello("mallory", "i3"), Hello("victim", "i3")}).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  // Anything before Hello.
  v1::AgentMessage heartbeat;
  heartbeat.mutable_heartbeat()->set_seq(1);
  v1::AgentMessage facts;
  facts.mutable_facts()->mutable_facts()->set_hostname("mallory");
  for (const v1::AgentMessage& first :
       {heartbeat, facts, Result("victim-task", 9, v1::TaskResult::FAILED, "before hello"),
        v1::AgentMessage()}) {
    grpc::Status status = Refusal({first, Hello("mallory", "i4")});
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << first.ShortDebugString() << ": " << status.error_message();
  }
  // A task event whose task id is not an id (and would be a 1 MiB line in the log).
  EXPECT_EQ(Refusal({Hello("mallory", "i5"),
                     Result(std::string(1 << 20, 't'), 1, v1::TaskResult::FAILED, "x")})
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Messages over the 16 MiB bound.
  EXPECT_EQ(Refusal({Hello(std::string(17 << 20, 'a'))}).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  {
    v1::AgentMessage big;
    big.mutable_task_event()->set_task_id("victim-task");
    big.mutable_task_event()->set_seq(4);
    big.mutable_task_event()->mutable_log()->set_text(std::string(17 << 20, 'l'));
    EXPECT_EQ(Refusal({Hello("mallory", "i6"), big}).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }

  // Nothing of it stuck: the task is as its agent reported it, only real ids are listed, the
  // controller is alive and its log did not take the oversize ids.
  PGH_ASSERT_OK_AND_ASSIGN(shown, ShowTask("victim-task"));
  EXPECT_EQ(Str(shown, "state"), "succeeded") << shown.dump(2);
  EXPECT_EQ(Int(shown, "last_seq"), 2) << shown.dump(2);
  PGH_ASSERT_OK_AND_ASSIGN(json agents, cli_->ListAgents());
  std::set<std::string> listed;
  for (const json& agent : agents) listed.insert(Str(agent, "agent_id"));
  EXPECT_EQ(listed, (std::set<std::string>{"mallory", "victim"}));
  EXPECT_TRUE(controller_->process()->IsRunning());
  const int64_t log_growth =
      static_cast<int64_t>(controller_->process()->ReadLog().size()) - log_before;
  EXPECT_LT(log_growth, 64 << 10) << "the controller's log took an oversize field";
  grpc::Status victim_status = victim.End();
  EXPECT_TRUE(victim_status.ok()) << "the victim's stream was ended by someone else's messages: "
                                  << victim_status.error_message();
}

TEST_F(HostileAgentTest, AReconnectFloodIsRateLimitedWhileOtherAgentsStayOnline) {
  PGH_ASSERT_OK(ToStatus(StartAgent("db1")));
  PGH_ASSERT_OK_AND_ASSIGN(json db1_before, cli_->FindAgent("db1"));

  auto connect = [&](const std::string& agent_id, Tally& tally) {
    LinkClient client(stub_.get(), absl::Seconds(10));
    client.Write(Hello(agent_id));
    bool welcomed = client.ReadUntil(v1::ControllerMessage::kWelcome).has_value();
    grpc::Status status = client.End();
    if (welcomed) {
      ++tally.welcomed;
    } else if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
               absl::StrContains(status.error_message(), "rate-limited")) {
      ++tally.rate_limited;
      tally.sample = status.error_message();
    } else {
      ++tally.other;
      tally.other_sample = absl::StrCat(status.error_code(), " ", status.error_message());
    }
  };

  // 100 reconnects of one agent id, then 100 from the same host cycling made-up ids.
  constexpr int kEach = 100;
  Tally same_id;
  absl::Time started = absl::Now();
  for (int i = 0; i < kEach; ++i) connect("flood", same_id);
  const absl::Duration same_id_took = absl::Now() - started;
  Tally cycling;
  for (int i = 0; i < kEach; ++i) connect(absl::StrCat("fake-", i), cycling);
  const absl::Duration took = absl::Now() - started;
  std::cout << "same id: " << same_id.welcomed << " welcomed, " << same_id.rate_limited
            << " rate-limited in " << absl::FormatDuration(same_id_took)
            << "; cycling ids: " << cycling.welcomed << " welcomed, " << cycling.rate_limited
            << " rate-limited; " << absl::FormatDuration(took) << " in all\n"
            << "  e.g. " << same_id.sample << "\n  e.g. " << cycling.sample << "\n";

  EXPECT_EQ(same_id.other, 0) << same_id.other_sample;
  EXPECT_EQ(cycling.other, 0) << cycling.other_sample;
  // One agent id: its burst, plus one per second the flood lasted, plus rounding.
  const int allowed_same = controller::kDefaultAgentBurst +
                           static_cast<int>(same_id_took / controller::kDefaultAgentInterval) + 1;
  EXPECT_GE(same_id.welcomed, 1);
  EXPECT_LE(same_id.welcomed, allowed_same);
  EXPECT_EQ(same_id.welcomed + same_id.rate_limited, kEach);
  EXPECT_THAT(same_id.sample, HasSubstr("rate-limited: agent 'flood'"));
  EXPECT_THAT(same_id.sample, HasSubstr("retry in"));
  // Made-up ids: the host's own limit, whatever the ids.
  const int allowed_host =
      controller::kDefaultPeerBurst + static_cast<int>(took / controller::kDefaultPeerInterval) + 1;
  EXPECT_LE(same_id.welcomed + same_id.rate_limited + cycling.welcomed, allowed_host);
  EXPECT_GT(cycling.rate_limited, 0);
  EXPECT_THAT(cycling.sample, HasSubstr("rate-limited: host 127.0.0.1"));

  // The log says so once per window, not once per refusal.
  const std::string log = controller_->process()->ReadLog();
  const size_t id_lines = Count(log, "refusing streams of agent 'flood'");
  const size_t host_lines = Count(log, "refusing agent streams from 127.0.0.1");
  EXPECT_GE(id_lines, 1u);
  EXPECT_LE(id_lines, 2u);
  EXPECT_GE(host_lines, 1u);
  EXPECT_LE(host_lines, 2u);
  EXPECT_EQ(Count(log, "closing stream from"), 0u) << "refusals logged one by one";

  // The real agent that was online stays online on the same stream...
  PGH_ASSERT_OK_AND_ASSIGN(json db1_after, cli_->FindAgent("db1"));
  EXPECT_EQ(At(db1_after, "online"), true) << db1_after.dump(2);
  EXPECT_EQ(Str(db1_after, "connected_since"), Str(db1_before, "connected_since"));
  EXPECT_EQ(Int(db1_after, "reconnects"), Int(db1_before, "reconnects"));
  // ... and another real agent from the same host gets in once the host's bucket refills.
  absl::Time second_started = absl::Now();
  PGH_ASSERT_OK_AND_ASSIGN(PghaulAgent * db2, StartAgent("db2"));
  std::cout << "db2 online " << absl::FormatDuration(absl::Now() - second_started)
            << " after it started\n";
  EXPECT_TRUE(db2->process()->IsRunning());
  PGH_ASSERT_OK_AND_ASSIGN(json db1_still, cli_->FindAgent("db1"));
  EXPECT_EQ(At(db1_still, "online"), true);
  EXPECT_TRUE(controller_->process()->IsRunning());
}

TEST_F(HostileAgentTest, ARealAgentThatIsRateLimitedBacksOffAndGetsIn) {
  // Someone keeps reconnecting as "db1" (ten a second, bounded) while the real db1 starts, so
  // that the real one's first attempts find the id's bucket empty.
  Tally hammer;
  auto connect_as_db1 = [&] {
    LinkClient client(stub_.get(), absl::Seconds(5));
    client.Write(Hello("db1", "hammer"));
    bool welcomed = client.ReadUntil(v1::ControllerMessage::kWelcome).has_value();
    grpc::Status status = client.End();
    if (welcomed) {
      ++hammer.welcomed;
    } else if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++hammer.rate_limited;
    } else {
      ++hammer.other;
    }
  };
  for (int i = 0; i < 2 * controller::kDefaultAgentBurst; ++i) connect_as_db1();
  ASSERT_GT(hammer.rate_limited, 0);
  std::string agent_dir = dir_->path() + "/agent-db1";
  AgentOptions options;
  options.agent_id = "db1";
  options.controller_address = controller_->address();
  options.pg_socket_dir = "/tmp";
  options.pg_port = 5499;
  options.data_directory = agent_dir + "/data";
  options.log_level = "info";
  PGH_ASSERT_OK_AND_ASSIGN(std::unique_ptr<PghaulAgent> agent,
                           PghaulAgent::Create(agent_dir, options));
  PGH_ASSERT_OK(agent->Start());
  PghaulAgent* db1 = agent.get();
  agents_.push_back(std::move(agent));
  const absl::Time started = absl::Now();
  PGH_ASSERT_OK(WaitFor(
      "the real db1 to be refused", absl::Seconds(15),
      [&] {
        connect_as_db1();
        return absl::StrContains(db1->ReadLog(), "rate-limited");
      },
      absl::Milliseconds(100)));
  // Left alone, it gets in by itself.
  PGH_ASSERT_OK(WaitFor("db1 online", absl::Seconds(20), [&]() -> absl::Status {
    auto entry = cli_->FindAgent("db1");
    if (!entry.ok()) return entry.status();
    if (At(*entry, "online") != true || Str(*entry, "incarnation") == "hammer") {
      return absl::UnavailableError(entry->dump());
    }
    return absl::OkStatus();
  }));
  const std::string log = db1->ReadLog();
  std::cout << "the real db1 was online " << absl::FormatDuration(absl::Now() - started)
            << " after it started; its log:\n"
            << log;
  // Each refusal is one attempt and one line, with a growing delay before the next: the agent
  // does not spin.
  static const std::regex kRefused(
      R"(attempt (\d+) to reach controller \S+ failed \(rate-limited: .*?retry in \S+\); )"
      R"(next attempt in (\S+))");
  int refusals = 0;
  int last_attempt = 0;
  for (std::sregex_iterator it(log.begin(), log.end(), kRefused), end; it != end; ++it) {
    ++refusals;
    int attempt = 0;
    ASSERT_TRUE(absl::SimpleAtoi((*it)[1].str(), &attempt));
    EXPECT_GT(attempt, last_attempt);
    last_attempt = attempt;
  }
  EXPECT_GE(refusals, 1) << "the agent did not log its refusal as an attempt that failed";
  EXPECT_LE(refusals, 10) << "the agent reconnects without backing off";
  EXPECT_THAT(log, HasSubstr("linked to controller"));
  EXPECT_TRUE(db1->process()->IsRunning());
}

}  // namespace
}  // namespace pghaul::integration
