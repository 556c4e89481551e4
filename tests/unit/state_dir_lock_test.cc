#include "common/state_dir_lock.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

class StateDirLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pghaul-lock-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
};

TEST_F(StateDirLockTest, ASecondHolderIsRefusedWithTheFirstOnesPidAndWhatToDo) {
  auto first = StateDirLock::Acquire(dir_, "controller", "pghaul-controller");
  ASSERT_TRUE(first.ok()) << first.status();
  // flock(2) locks belong to the open file description, so a second open in this same process
  // conflicts exactly as a second process would.
  auto second = StateDirLock::Acquire(dir_, "controller", "pghaul-controller");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(),
              AllOf(HasSubstr("another pghaul-controller (PID " + std::to_string(getpid()) + ")"),
                    HasSubstr(dir_), HasSubstr("Stop the other one first")));
}

TEST_F(StateDirLockTest, TheLockIsFreeAgainOnceItsHolderIsGone) {
  {
    auto first = StateDirLock::Acquire(dir_, "controller", "pghaul-controller");
    ASSERT_TRUE(first.ok()) << first.status();
  }
  auto again = StateDirLock::Acquire(dir_, "controller", "pghaul-controller");
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST_F(StateDirLockTest, AHolderKilledWithoutCleaningUpLeavesNoStaleLock) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto held = StateDirLock::Acquire(dir_, "controller", "pghaul-controller");
    const char byte = held.ok() ? 'y' : 'n';
    (void)!write(ready[1], &byte, 1);
    pause();  // until SIGKILL
    _exit(0);
  }
  char byte = 0;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  ASSERT_EQ(byte, 'y');
  auto while_held = StateDirLock::Acquire(dir_, "controller", "pghaul-controller");
  ASSERT_FALSE(while_held.ok());
  EXPECT_THAT(while_held.status().message(), HasSubstr(absl::StrCat("(PID ", child, ")")));
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  close(ready[0]);
  close(ready[1]);
  auto after = StateDirLock::Acquire(dir_, "controller", "pghaul-controller");
  EXPECT_TRUE(after.ok()) << after.status();
}

TEST_F(StateDirLockTest, ALinkPlantedAsTheLockFileIsRefusedNotFollowed) {
  const std::string outside = dir_ + "/elsewhere";
  std::ofstream(outside) << "x";
  ASSERT_EQ(symlink(outside.c_str(), (dir_ + "/controller.lock").c_str()), 0);
  auto lock = StateDirLock::Acquire(dir_, "controller", "pghaul-controller");
  ASSERT_FALSE(lock.ok());
  EXPECT_THAT(lock.status().message(), HasSubstr("symbolic link"));
  std::ifstream in(outside);
  std::string contents;
  in >> contents;
  EXPECT_EQ(contents, "x");
}

TEST_F(StateDirLockTest, DifferentNamesInOneDirectoryDoNotConflict) {
  auto controller = StateDirLock::Acquire(dir_, "controller", "pghaul-controller");
  auto other = StateDirLock::Acquire(dir_, "agent", "pghaul-agent");
  EXPECT_TRUE(controller.ok()) << controller.status();
  EXPECT_TRUE(other.ok()) << other.status();
}

}  // namespace
}  // namespace pghaul
