#include "agent/path_confinement.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/agent_config.h"
#include "agent/pgbackrest_config.h"
#include "agent/task_executors.h"
#include "agent/task_manager.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::agent {
namespace {

using ::testing::HasSubstr;

// A temporary directory holding `roots/` (the only root), `outside/`, and whatever a test adds.
class PathConfinementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pghaul-confinement-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    // The temporary directory itself may sit behind a link (e.g. /tmp on some systems): the
    // expected resolved paths below are built from its resolved form.
    dir_ = std::filesystem::canonical(pattern).string();
    root_ = dir_ + "/roots";
    outside_ = dir_ + "/outside";
    ASSERT_TRUE(MakeDirectories(root_, 0700).ok());
    ASSERT_TRUE(MakeDirectories(outside_, 0700).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Link(const std::string& target, const std::string& link) {
    ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0) << link;
  }

  PathConfinement Confinement() const { return PathConfinement({root_}); }

  std::string dir_;
  std::string root_;
  std::string outside_;
};

TEST_F(PathConfinementTest, APathInsideARootIsAllowedAndResolved) {
  ASSERT_TRUE(MakeDirectories(root_ + "/repo", 0700).ok());
  absl::StatusOr<std::string> checked = Confinement().Check(root_ + "/repo", "repository path");
  ASSERT_TRUE(checked.ok()) << checked.status();
  EXPECT_EQ(*checked, root_ + "/repo");
}

TEST_F(PathConfinementTest, TheRootItselfIsAllowed) {
  absl::StatusOr<std::string> checked = Confinement().Check(root_, "repository path");
  ASSERT_TRUE(checked.ok()) << checked.status();
  EXPECT_EQ(*checked, root_);
}

TEST_F(PathConfinementTest, ANonExistentTailBelowARootIsAllowed) {
  absl::StatusOr<std::string> checked =
      Confinement().Check(root_ + "/not/made/yet", "repository path");
  ASSERT_TRUE(checked.ok()) << checked.status();
  EXPECT_EQ(*checked, root_ + "/not/made/yet");
}

TEST_F(PathConfinementTest, APathOutsideEveryRootIsRefused) {
  absl::Status status = Confinement().Check(outside_ + "/repo", "repository path").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("outside the agent's allowed roots"));
  EXPECT_THAT(std::string(status.message()), HasSubstr(root_));
  // A sibling whose name merely starts with the root's is outside too.
  EXPECT_FALSE(Confinement().Check(root_ + "2", "repository path").ok());
}

TEST_F(PathConfinementTest, DotDotAndRelativePathsAreRefused) {
  for (const std::string& path :
       {root_ + "/../outside", root_ + "/./repo", std::string("roots/repo"), std::string(""),
        root_ + "/repo/", root_ + "//repo"}) {
    absl::Status status = Confinement().Check(path, "repository path").status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << path << ": " << status;
  }
}

TEST_F(PathConfinementTest, ASymlinkInsideARootPointingOutIsRefused) {
  Link(outside_, root_ + "/escape");
  for (const std::string& path : {root_ + "/escape", root_ + "/escape/repo"}) {
    absl::Status status = Confinement().Check(path, "repository path").status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << path << ": " << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("symbolic link")) << path;
    EXPECT_THAT(std::string(status.message()), HasSubstr(outside_)) << path;
  }
  // A link to a file outside (a "CA file") as well.
  ASSERT_TRUE(WriteFileAtomically(outside_ + "/ca.pem", "x", 0600).ok());
  Link(outside_ + "/ca.pem", root_ + "/ca.pem");
  EXPECT_EQ(Confinement().Check(root_ + "/ca.pem", "S3 CA file").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PathConfinementTest, ASymlinkInsideARootPointingInsideIsAllowed) {
  ASSERT_TRUE(MakeDirectories(root_ + "/real/repo", 0700).ok());
  Link(root_ + "/real", root_ + "/alias");
  absl::StatusOr<std::string> checked =
      Confinement().Check(root_ + "/alias/repo", "repository path");
  ASSERT_TRUE(checked.ok()) << checked.status();
  EXPECT_EQ(*checked, root_ + "/real/repo");
  // A relative link target resolves the same way.
  Link("real", root_ + "/relative");
  EXPECT_TRUE(Confinement().Check(root_ + "/relative/repo", "repository path").ok());
}

TEST_F(PathConfinementTest, ADanglingSymlinkIsRefusedBecauseCreatingItWouldFollowIt) {
  Link(outside_ + "/not-there", root_ + "/dangling");
  for (const std::string& path : {root_ + "/dangling", root_ + "/dangling/repo"}) {
    absl::Status status = Confinement().Check(path, "repository path").status();
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << path << ": " << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("symbolic link to something that does"))
        << path;
  }
  EXPECT_FALSE(std::filesystem::exists(outside_ + "/not-there"));
}

TEST_F(PathConfinementTest, ASymlinkLoopIsRefused) {
  Link(root_ + "/b", root_ + "/a");
  Link(root_ + "/a", root_ + "/b");
  EXPECT_EQ(Confinement().Check(root_ + "/a/repo", "repository path").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(PathConfinementTest, ARootThatIsItselfALinkConfinesToWhereItLeads) {
  const std::string real = dir_ + "/mnt-backups";
  ASSERT_TRUE(MakeDirectories(real, 0700).ok());
  const std::string root_link = dir_ + "/backups";
  Link(real, root_link);
  PathConfinement confinement({root_link});
  absl::StatusOr<std::string> checked = confinement.Check(root_link + "/repo", "repository path");
  ASSERT_TRUE(checked.ok()) << checked.status();
  EXPECT_EQ(*checked, real + "/repo");
  // Named by its real path it is the same place, so allowed too.
  EXPECT_TRUE(confinement.Check(real + "/repo", "repository path").ok());
  EXPECT_FALSE(confinement.Check(outside_ + "/repo", "repository path").ok());
}

TEST_F(PathConfinementTest, AReservedAreaInsideARootIsRefusedAlsoThroughALink) {
  const std::string data = root_ + "/pg/15/main";
  ASSERT_TRUE(MakeDirectories(data, 0700).ok());
  PathConfinement confinement({root_}, {{data, "PostgreSQL's data directory"}});
  for (const std::string& path : {data, data + "/repo"}) {
    absl::Status status = confinement.Check(path, "repository path").status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << path << ": " << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("PostgreSQL's data directory"));
  }
  Link(data, root_ + "/innocent");
  EXPECT_THAT(
      std::string(
          confinement.Check(root_ + "/innocent/repo", "repository path").status().message()),
      HasSubstr("PostgreSQL's data directory"));
  // Next to it, or above it, is fine.
  EXPECT_TRUE(confinement.Check(root_ + "/pg/repo", "repository path").ok());
  EXPECT_TRUE(confinement.Check(root_ + "/pg", "repository path").ok());
}

TEST_F(PathConfinementTest, NoRootsAllowNothing) {
  PathConfinement confinement({});
  EXPECT_EQ(confinement.Check(root_, "repository path").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PathConfinementTest, ResolvedPathIsWithinSeesThroughLinks) {
  Link(outside_, root_ + "/escape");
  EXPECT_FALSE(*ResolvedPathIsWithin(root_ + "/escape/x", root_));
  EXPECT_TRUE(*ResolvedPathIsWithin(root_ + "/escape/x", outside_));
  EXPECT_TRUE(*ResolvedPathIsWithin(root_, root_));
  EXPECT_FALSE(ResolvedPathIsWithin("relative", root_).ok());
}

// The no-follow file helpers the agent uses for its own files (common/files.h).
TEST_F(PathConfinementTest, MakeDirectoriesBelowRefusesALinkAndCreatesNothingThroughIt) {
  const std::string state = dir_ + "/state";
  ASSERT_TRUE(MakeDirectories(state, 0700).ok());
  Link(outside_, state + "/pgbackrest");
  absl::Status made = MakeDirectoriesBelow(state, state + "/pgbackrest/m1/log", 0750);
  EXPECT_EQ(made.code(), absl::StatusCode::kFailedPrecondition) << made;
  EXPECT_TRUE(std::filesystem::is_empty(outside_));
  // Without the link it creates every level.
  ASSERT_EQ(::unlink((state + "/pgbackrest").c_str()), 0);
  ASSERT_TRUE(MakeDirectoriesBelow(state, state + "/pgbackrest/m1/log", 0750).ok());
  EXPECT_TRUE(std::filesystem::is_directory(state + "/pgbackrest/m1/log"));
  // A path not below the base is a caller's error.
  EXPECT_EQ(MakeDirectoriesBelow(state, outside_ + "/x").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeDirectoriesBelow(state, state + "/../outside/x").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PathConfinementTest, CheckNoSymlinksBelowFindsALinkAtAnyLevel) {
  const std::string state = dir_ + "/state";
  ASSERT_TRUE(MakeDirectories(state + "/pgbackrest", 0700).ok());
  EXPECT_TRUE(CheckNoSymlinksBelow(state, state + "/pgbackrest/m1/archiving-before.json").ok());
  Link(outside_, state + "/pgbackrest/m1");
  EXPECT_EQ(CheckNoSymlinksBelow(state, state + "/pgbackrest/m1/archiving-before.json").code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(WriteFileAtomically(outside_ + "/saved.json", "{}", 0600).ok());
  Link(outside_ + "/saved.json", state + "/pgbackrest/saved.json");
  EXPECT_EQ(CheckNoSymlinksBelow(state, state + "/pgbackrest/saved.json").code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(PathConfinementTest, ReadRegularFileRefusesLinksAndFifos) {
  ASSERT_TRUE(WriteFileAtomically(outside_ + "/secret", "secret", 0600).ok());
  Link(outside_ + "/secret", root_ + "/result");
  absl::StatusOr<std::string> read = ReadRegularFile(root_ + "/result");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kFailedPrecondition) << read.status();
  EXPECT_TRUE(ReadFile(root_ + "/result").ok()) << "ReadFile follows links, as documented";
  ASSERT_EQ(::mkfifo((root_ + "/fifo").c_str(), 0600), 0);
  EXPECT_EQ(ReadRegularFile(root_ + "/fifo").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReadRegularFile(root_ + "/missing").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(WriteFileAtomically(root_ + "/plain", "text", 0600).ok());
  EXPECT_EQ(ReadRegularFile(root_ + "/plain").value_or(""), "text");
}

TEST_F(PathConfinementTest, WriteFileAtomicallyReplacesALinkInsteadOfWritingThroughIt) {
  ASSERT_TRUE(WriteFileAtomically(outside_ + "/target", "original", 0600).ok());
  Link(outside_ + "/target", root_ + "/file");
  ASSERT_TRUE(WriteFileAtomically(root_ + "/file", "new", 0600).ok());
  EXPECT_EQ(ReadFile(outside_ + "/target").value_or(""), "original");
  struct stat st;
  ASSERT_EQ(::lstat((root_ + "/file").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(ReadFile(root_ + "/file").value_or(""), "new");
  // The exact-mode variant ignores the umask.
  const mode_t old_umask = ::umask(077);
  ASSERT_TRUE(WriteFileAtomicallyWithMode(root_ + "/shared", "x", 0644).ok());
  ::umask(old_umask);
  ASSERT_EQ(::stat((root_ + "/shared").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  // No temporary is left behind.
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(root_)) ++entries;
  EXPECT_EQ(entries, 2);
}

// At the task level: the agent's executor factory, which refuses a task before anything runs.
class TaskPathConfinementTest : public PathConfinementTest {
 protected:
  void SetUp() override {
    PathConfinementTest::SetUp();
    config_.agent_id = "db1";
    config_.data_directory = dir_ + "/data";
    config_.state_dir = dir_ + "/state";
    config_.roots = {root_};
    ASSERT_TRUE(MakeDirectories(config_.data_directory, 0700).ok());
    ASSERT_TRUE(MakeDirectories(config_.state_dir, 0700).ok());
    factory_ = MakeExecutorFactory(&config_);
  }

  static v1::Task ConfigureTask(const std::string& repo_path) {
    v1::Task task;
    task.set_task_id("configure-1");
    v1::ConfigurePgBackRest* configure = task.mutable_configure_pgbackrest();
    configure->set_migration_id("m1");
    configure->set_stanza("main");
    configure->mutable_repository()->mutable_posix()->set_path(repo_path);
    return task;
  }

  static v1::Task InfoTask() {
    v1::Task task;
    task.set_task_id("info-1");
    task.mutable_pgbackrest()->set_migration_id("m1");
    task.mutable_pgbackrest()->mutable_info();
    return task;
  }

  AgentConfig config_;
  ExecutorFactory factory_;
};

// Runs an executor to its end, keeping nothing.
class QuietContext : public TaskContext {
 public:
  void Log(absl::string_view, absl::string_view) override {}
  void ReportProgress(const v1::Progress&) override {}
  bool cancelled() const override { return false; }
  void OnCancel(std::function<void()>) override {}
};

TEST_F(TaskPathConfinementTest, ARepositoryPathThroughASymlinkOutOfTheRootsIsRefused) {
  Link(outside_, root_ + "/escape");
  absl::StatusOr<std::unique_ptr<TaskExecutor>> made =
      factory_(ConfigureTask(root_ + "/escape/repo"));
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().code(), absl::StatusCode::kInvalidArgument) << made.status();
  EXPECT_THAT(std::string(made.status().message()), HasSubstr("repository path"));
  EXPECT_THAT(std::string(made.status().message()), HasSubstr("symbolic link"));
  // Nothing was written: no migration directory, nothing outside.
  EXPECT_FALSE(std::filesystem::exists(config_.state_dir + "/pgbackrest"));
  EXPECT_TRUE(std::filesystem::is_empty(outside_));
}

TEST_F(TaskPathConfinementTest, TheTaskManagerReportsSuchATaskRefused) {
  Link(outside_, root_ + "/escape");
  TaskManager manager(config_.state_dir, factory_);
  ASSERT_TRUE(manager.LoadPersisted().ok());
  absl::Mutex mu;
  std::vector<v1::TaskEvent> events;
  manager.SetSink([&](const v1::TaskEvent& event) {
    absl::MutexLock lock(&mu);
    events.push_back(event);
  });
  manager.Submit(ConfigureTask(root_ + "/escape/repo"));
  ASSERT_TRUE(manager.WaitFinished("configure-1", absl::Seconds(10)));
  absl::MutexLock lock(&mu);
  ASSERT_EQ(events.size(), 1u);
  ASSERT_TRUE(events[0].has_result());
  EXPECT_EQ(events[0].result().state(), v1::TaskResult::REFUSED);
  EXPECT_THAT(events[0].result().message(), HasSubstr("outside the agent's allowed roots"));
}

TEST_F(TaskPathConfinementTest, ARepositoryInsideTheDataDirectoryIsRefusedEvenInsideARoot) {
  config_.roots = {dir_};  // holds the data directory and the agent's state
  factory_ = MakeExecutorFactory(&config_);
  for (const std::string& path :
       {config_.data_directory + "/repo", config_.state_dir + "/pgbackrest/m2",
        config_.state_dir + "/tasks"}) {
    absl::StatusOr<std::unique_ptr<TaskExecutor>> made = factory_(ConfigureTask(path));
    EXPECT_EQ(made.status().code(), absl::StatusCode::kInvalidArgument) << path;
  }
  EXPECT_TRUE(factory_(ConfigureTask(dir_ + "/repo")).ok());
}

TEST_F(TaskPathConfinementTest, ALinkSwappedInAfterConfigureRefusesTheNextPgBackRestCommand) {
  ASSERT_TRUE(MakeDirectories(root_ + "/repo", 0700).ok());
  absl::StatusOr<std::unique_ptr<TaskExecutor>> configure =
      factory_(ConfigureTask(root_ + "/repo"));
  ASSERT_TRUE(configure.ok()) << configure.status();
  QuietContext context;
  v1::TaskResult configured = (*configure)->Run(context);
  ASSERT_EQ(configured.state(), v1::TaskResult::SUCCEEDED) << configured.message();
  // Accepted while the repository is where it was.
  EXPECT_TRUE(factory_(InfoTask()).ok());

  std::filesystem::remove_all(root_ + "/repo");
  Link(outside_, root_ + "/repo");
  absl::StatusOr<std::unique_ptr<TaskExecutor>> info = factory_(InfoTask());
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument) << info.status();
  EXPECT_THAT(std::string(info.status().message()), HasSubstr("checked again"));
}

TEST(AgentConfigPathsTest, RefusesStateDirOrARootInsideTheDataDirectoryAlsoThroughALink) {
  char pattern[] = "/tmp/pghaul-config-paths-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string dir = pattern;
  const std::string data = dir + "/data";
  ASSERT_TRUE(MakeDirectories(data, 0700).ok());
  ASSERT_EQ(::symlink(data.c_str(), (dir + "/data-link").c_str()), 0);
  const std::string base =
      absl::StrCat("agent_id: db1\ncontroller: {address: 'c.example.com:7443', insecure: true}\n",
                   "data_directory: ", data, "\n");
  auto error_of = [&](const std::string& extra) {
    absl::StatusOr<AgentConfig> config = ParseAgentConfig(base + extra, "agent.yaml");
    return config.ok() ? std::string("accepted") : std::string(config.status().message());
  };
  EXPECT_THAT(error_of(absl::StrCat("state_dir: ", data, "/pghaul\n")),
              HasSubstr("key 'state_dir'"));
  EXPECT_THAT(error_of(absl::StrCat("state_dir: ", dir, "/data-link/pghaul\n")),
              HasSubstr("is inside data_directory"));
  EXPECT_THAT(error_of(absl::StrCat("state_dir: ", dir, "\n")), HasSubstr("key 'data_directory'"));
  EXPECT_THAT(
      error_of(absl::StrCat("state_dir: ", dir, "/state\nroots: [", dir, "/data-link/repo]\n")),
      HasSubstr("key 'roots'"));
  EXPECT_EQ(error_of(absl::StrCat("state_dir: ", dir, "/state\nroots: [", dir, "]\n")), "accepted");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pghaul::agent
