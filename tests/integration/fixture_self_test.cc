// Tests of the integration test fixture itself: if these fail, no other integration test result
// means anything.
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/fixture/child_process.h"
#include "tests/integration/fixture/command.h"
#include "tests/integration/fixture/network_namespaces.h"
#include "tests/integration/fixture/pg_cluster.h"
#include "tests/integration/fixture/temp_dir.h"
#include "tests/integration/fixture/test_support.h"
#include "tests/integration/fixture/wait_for.h"

namespace pghaul::integration {
namespace {

// The state letter in /proc/<pid>/stat ('S', 'R', 'T' for stopped, ...); '?' when unreadable.
char ProcessState(pid_t pid) {
  auto stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return '?';
  size_t paren = stat->rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat->size()) return '?';
  return (*stat)[paren + 2];
}

// A zombie waiting for init to reap it counts as gone.
bool ProcessExists(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  return ProcessState(pid) != 'Z';
}

// The real uid from /proc/<pid>/status; -1 when unreadable.
int ProcessUid(pid_t pid) {
  auto status = ReadFile(absl::StrCat("/proc/", pid, "/status"));
  if (!status.ok()) return -1;
  for (absl::string_view line : absl::StrSplit(*status, '\n')) {
    if (absl::ConsumePrefix(&line, "Uid:")) {
      std::vector<absl::string_view> fields = absl::StrSplit(
          absl::StripAsciiWhitespace(line), absl::ByAnyChar(" \t"), absl::SkipEmpty());
      int uid = -1;
      if (!fields.empty() && absl::SimpleAtoi(fields[0], &uid)) return uid;
    }
  }
  return -1;
}

uid_t PostgresUid() {
  struct passwd* entry = getpwnam("postgres");
  return entry == nullptr ? static_cast<uid_t>(-1) : entry->pw_uid;
}

std::string NetnsOf(const std::string& pid_or_self) {
  std::error_code error;
  return std::filesystem::read_symlink("/proc/" + pid_or_self + "/ns/net", error).string();
}

std::set<std::string> NamespacesNow() {
  std::set<std::string> names;
  auto output = RunIp({"netns", "list"});
  if (!output.ok()) return names;
  for (absl::string_view line : absl::StrSplit(*output, '\n', absl::SkipEmpty())) {
    names.emplace(line.substr(0, line.find(' ')));
  }
  return names;
}

class FixtureSelfTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RequireRoot();
    if (HasFatalFailure()) return;
    auto dir = TempDir::Create("pghaul-fixture-");
    PGH_ASSERT_OK(dir);
    dir_ = *std::move(dir);
  }

  std::unique_ptr<TempDir> dir_;
};

TEST_F(FixtureSelfTest, TempDirIsRemovedWithItsContents) {
  std::string path;
  {
    PGH_ASSERT_OK_AND_ASSIGN(auto dir, TempDir::Create());
    path = dir->path();
    PGH_ASSERT_OK_AND_ASSIGN(std::string sub, dir->MakeSubdir("a/b", "postgres", 0700));
    PGH_ASSERT_OK(WriteFile(sub + "/file", "contents"));
    struct stat info;
    ASSERT_EQ(stat(sub.c_str(), &info), 0);
    EXPECT_EQ(info.st_uid, PostgresUid());
    EXPECT_EQ(info.st_mode & 0777, 0700u);
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST_F(FixtureSelfTest, RunCommandCapturesOutputAndExitCode) {
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult result,
                           RunCommand({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}));
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.stdout_text, "out\n");
  EXPECT_EQ(result.stderr_text, "err\n");
  EXPECT_FALSE(RunChecked({"/bin/false"}).ok());
}

TEST_F(FixtureSelfTest, RunCommandKillsACommandThatOutlivesItsTimeout) {
  CommandOptions options;
  options.timeout = absl::Milliseconds(300);
  const absl::Time start = absl::Now();
  auto result = RunCommand({"/bin/sleep", "30"}, options);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded) << result.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(FixtureSelfTest, WaitForReportsWhatItWaitedForAndTheLastReason) {
  int calls = 0;
  absl::Status status = WaitFor("the moon", absl::Milliseconds(100), [&]() {
    ++calls;
    return absl::UnavailableError(absl::StrCat("not yet, call ", calls));
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(absl::StrContains(status.message(), "the moon")) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), absl::StrCat("not yet, call ", calls))) << status;
  EXPECT_GT(calls, 1);
  PGH_EXPECT_OK(WaitFor("a true predicate", absl::Seconds(1), []() { return true; }));
}

TEST_F(FixtureSelfTest, ChildProcessRunsAsPostgresInsideANamespaceAndObeysSignals) {
  PGH_ASSERT_OK_AND_ASSIGN(auto network, NetworkNamespaces::Create());
  PGH_ASSERT_OK_AND_ASSIGN(std::string netns, network->AddHost("h", 11));
  ChildProcessOptions options;
  options.argv = {"/bin/sleep", "1000"};
  options.launch.netns = netns;
  options.launch.run_as = "postgres";
  options.log_path = dir_->path() + "/sleep.log";
  PGH_ASSERT_OK_AND_ASSIGN(auto child, ChildProcess::Start(options));
  const pid_t pid = child->pid();
  // The PID is the program's own (no forking wrapper in between), so signals reach it.
  PGH_ASSERT_OK(WaitFor("sleep to be exec'd", absl::Seconds(5), [&]() {
    auto comm = ReadFile(absl::StrCat("/proc/", pid, "/comm"));
    return comm.ok() && *comm == "sleep\n";
  }));
  EXPECT_EQ(ProcessUid(pid), static_cast<int>(PostgresUid()));
  EXPECT_NE(NetnsOf(std::to_string(pid)), NetnsOf("self"));
  EXPECT_TRUE(child->IsRunning());

  PGH_ASSERT_OK(child->Signal(SIGSTOP));
  PGH_EXPECT_OK(WaitFor("state T", absl::Seconds(5), [&]() { return ProcessState(pid) == 'T'; }));
  PGH_ASSERT_OK(child->Signal(SIGCONT));
  PGH_EXPECT_OK(WaitFor("state S", absl::Seconds(5), [&]() { return ProcessState(pid) == 'S'; }));

  PGH_ASSERT_OK(child->Kill(SIGKILL));
  EXPECT_FALSE(child->IsRunning());
  ASSERT_TRUE(child->wait_status().has_value());
  EXPECT_TRUE(WIFSIGNALED(*child->wait_status()));
  EXPECT_EQ(WTERMSIG(*child->wait_status()), SIGKILL);
  EXPECT_FALSE(ProcessExists(pid));
}

TEST_F(FixtureSelfTest, ChildProcessDestructorEndsItsWholeProcessGroup) {
  const std::string pid_file = dir_->path() + "/background.pid";
  pid_t main_pid = 0;
  pid_t background_pid = 0;
  {
    ChildProcessOptions options;
    options.argv = {"/bin/sh", "-c", "sleep 1000 & echo $! > " + pid_file + "; exec sleep 1001"};
    options.log_path = dir_->path() + "/group.log";
    PGH_ASSERT_OK_AND_ASSIGN(auto child, ChildProcess::Start(options));
    main_pid = child->pid();
    PGH_ASSERT_OK(WaitFor("the background pid", absl::Seconds(5), [&]() {
      auto text = ReadFile(pid_file);
      return text.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &background_pid);
    }));
    ASSERT_TRUE(ProcessExists(background_pid));
  }
  EXPECT_FALSE(ProcessExists(main_pid));
  // The background child was reparented and is reaped by init asynchronously.
  PGH_EXPECT_OK(WaitFor("the background sleep to be gone", absl::Seconds(5),
                        [&]() { return !ProcessExists(background_pid); }));
}

TEST_F(FixtureSelfTest, ChildProcessStopEndsAProcessThatIgnoresSigterm) {
  ChildProcessOptions options;
  const std::string ready_file = dir_->path() + "/trap-installed";
  options.argv = {"/bin/sh", "-c",
                  "trap '' TERM; touch " + ready_file + "; while :; do sleep 1; done"};
  options.log_path = dir_->path() + "/stubborn.log";
  PGH_ASSERT_OK_AND_ASSIGN(auto child, ChildProcess::Start(options));
  PGH_ASSERT_OK(
      WaitFor("the trap", absl::Seconds(5), [&]() { return std::filesystem::exists(ready_file); }));
  PGH_ASSERT_OK(child->Signal(SIGSTOP));
  const absl::Time start = absl::Now();
  PGH_ASSERT_OK(child->Stop(absl::Milliseconds(500)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(450));
  EXPECT_FALSE(child->IsRunning());
}

TEST_F(FixtureSelfTest, PgClusterStartsAnswersQueriesAndStops) {
  PgClusterOptions options;
  options.name = "pg";
  options.port = 5433;
  options.initdb_args = {"--data-checksums", "--wal-segsize=32", "--encoding=UTF8",
                         "--locale=C.UTF-8"};
  pid_t postmaster = 0;
  {
    PGH_ASSERT_OK_AND_ASSIGN(auto cluster, PgCluster::Create(dir_->path(), options));
    EXPECT_FALSE(cluster->IsRunning());
    PGH_ASSERT_OK(cluster->Start());
    EXPECT_TRUE(cluster->IsRunning());
    EXPECT_EQ(cluster->Query("SELECT 40 + 2").value_or("?"), "42");
    EXPECT_EQ(cluster->Query("SHOW data_checksums").value_or("?"), "on");
    EXPECT_EQ(cluster->Query("SHOW wal_segment_size").value_or("?"), "32MB");
    EXPECT_EQ(cluster->Query("SHOW server_encoding").value_or("?"), "UTF8");
    EXPECT_EQ(cluster->Query("SHOW lc_collate").value_or("?"), "C.UTF-8");
    EXPECT_EQ(cluster->Query("SHOW port").value_or("?"), "5433");
    EXPECT_EQ(cluster->Query("SHOW data_directory").value_or("?"), cluster->data_dir());
    EXPECT_EQ(
        cluster->Query("SELECT current_setting('server_version_num')::int / 10000").value_or("?"),
        "15");

    auto error = cluster->Query("SELECT no_such_column");
    EXPECT_FALSE(error.ok());
    EXPECT_TRUE(absl::StrContains(error.status().message(), "does not exist")) << error.status();

    PGH_ASSERT_OK(cluster->Stop("fast"));
    EXPECT_FALSE(cluster->IsRunning());
    EXPECT_FALSE(cluster->Query("SELECT 1").ok());
    PGH_ASSERT_OK(cluster->Start());
    postmaster = cluster->PostmasterPid();
    ASSERT_GT(postmaster, 0);
    ASSERT_TRUE(ProcessExists(postmaster));
  }
  // The destructor stopped the running cluster.
  PGH_EXPECT_OK(WaitFor("the postmaster to be gone", absl::Seconds(10),
                        [&]() { return !ProcessExists(postmaster); }));
}

TEST_F(FixtureSelfTest, NamespacedHostsTalkOverTheBridgeUntilTheLinkIsCut) {
  PGH_ASSERT_OK_AND_ASSIGN(auto network, NetworkNamespaces::Create());
  PGH_ASSERT_OK_AND_ASSIGN(std::string server_ns, network->AddHost("server", 11));
  PGH_ASSERT_OK_AND_ASSIGN(std::string client_ns, network->AddHost("client", 12));
  EXPECT_EQ(network->Address("server"), "198.18.0.11");
  EXPECT_EQ(network->Namespace("client"), client_ns);

  PgClusterOptions options;
  options.name = "server";
  options.netns = server_ns;
  options.listen_address = network->Address("server");
  PGH_ASSERT_OK_AND_ASSIGN(auto cluster, PgCluster::Create(dir_->path(), options));
  PGH_ASSERT_OK(cluster->Start());

  // psql over TCP from `netns` to the server's address.
  auto query_over_tcp = [&](const std::string& netns) {
    CommandOptions command;
    command.launch.netns = netns;
    command.launch.env = {"PGCONNECT_TIMEOUT=2"};
    command.timeout = absl::Seconds(20);
    return RunChecked(
        {absl::StrCat(kPostgresBinDir, "/psql"), "-XAtq", "-h", "198.18.0.11", "-p", "5432", "-U",
         "postgres", "-d", "postgres", "-c", "SELECT inet_server_addr()"},
        command);
  };
  auto answer = query_over_tcp(client_ns);
  PGH_ASSERT_OK(answer);
  EXPECT_EQ(*answer, "198.18.0.11\n");
  // The test network is private: the root namespace has no route to it.
  EXPECT_FALSE(query_over_tcp("").ok());

  PGH_ASSERT_OK(network->CutLink("server"));
  auto cut = query_over_tcp(client_ns);
  EXPECT_FALSE(cut.ok());
  PGH_ASSERT_OK(network->RestoreLink("server"));
  PGH_EXPECT_OK(WaitFor("the server to be reachable again", absl::Seconds(20),
                        [&]() { return query_over_tcp(client_ns).status(); }));
}

TEST_F(FixtureSelfTest, NetworkNamespacesLeaveNothingBehindEvenWhenATestThrows) {
  const std::set<std::string> before = NamespacesNow();
  std::vector<std::string> created;
  try {
    auto network = NetworkNamespaces::Create();
    ASSERT_TRUE(network.ok()) << network.status();
    created.push_back((*network)->bridge_namespace());
    for (auto [host, octet] : std::vector<std::pair<std::string, int>>{{"a", 21}, {"b", 22}}) {
      auto netns = (*network)->AddHost(host, octet);
      ASSERT_TRUE(netns.ok()) << netns.status();
      created.push_back(*netns);
    }
    std::set<std::string> during = NamespacesNow();
    for (const std::string& name : created) EXPECT_TRUE(during.count(name)) << name;
    EXPECT_EQ((*network)->AddHost("a", 23).status().code(), absl::StatusCode::kAlreadyExists);
    EXPECT_EQ((*network)->AddHost("c", 21).status().code(), absl::StatusCode::kAlreadyExists);
    throw std::runtime_error("a test failing half way");
  } catch (const std::runtime_error&) {
  }
  ASSERT_EQ(created.size(), 3u);
  std::set<std::string> after = NamespacesNow();
  for (const std::string& name : created) EXPECT_FALSE(after.count(name)) << name;
  EXPECT_EQ(after, before);
}

}  // namespace
}  // namespace pghaul::integration
