#include "common/subprocess.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern "C" {
#include <sys/pidfd.h>
}

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// /bin/sh is used only as a test child, to script behaviour.
SubprocessSpec Shell(const std::string& script) {
  SubprocessSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.env = {"PATH=/usr/bin:/bin"};
  return spec;
}

struct Lines {
  std::vector<std::string> out;
  std::vector<std::string> err;
  Subprocess::LineCallback Callback() {
    return [this](Stream stream, absl::string_view line) {
      (stream == Stream::kStdout ? out : err).emplace_back(line);
    };
  }
};

absl::StatusOr<SubprocessResult> RunToEnd(const SubprocessSpec& spec, Lines& lines) {
  Subprocess process(spec);
  absl::Status started = process.Start();
  if (!started.ok()) return started;
  return process.Wait(lines.Callback());
}

// Makes this test process the reaper of orphaned descendants for the scope, so a grandchild
// killed by Subprocess can be reaped here and then verified gone with kill(pid, 0) (PID 1 in a
// container may never reap it, leaving a zombie that kill(pid, 0) still finds).
class ScopedSubreaper {
 public:
  ScopedSubreaper() {
    prctl(PR_GET_CHILD_SUBREAPER, &previous_);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
  }
  ~ScopedSubreaper() { prctl(PR_SET_CHILD_SUBREAPER, previous_); }

 private:
  int previous_ = 0;
};

// Waits (bounded, 5 s) for the process behind `pidfd` to end, reaps it if it became our child,
// and reports whether `pid` is gone. Kills it if it is not, so no test leaves it behind.
bool ProcessEndsWithinFiveSeconds(pid_t pid, int pidfd) {
  pollfd fd{pidfd, POLLIN, 0};
  int ready = poll(&fd, 1, 5000);
  if (ready == 1) waitpid(pid, nullptr, 0);  // ECHILD if its parent reaped it: fine
  close(pidfd);
  bool gone = kill(pid, 0) != 0 && errno == ESRCH;
  if (!gone) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  return gone;
}

TEST(SubprocessTest, ReportsTheExitCode) {
  Lines lines;
  absl::StatusOr<SubprocessResult> result = RunToEnd(Shell("exit 3"), lines);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_EQ(result->term_signal, 0);
  EXPECT_FALSE(result->Succeeded());
  EXPECT_EQ(result->Describe(), "exited 3");

  result = RunToEnd(Shell("true"), lines);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->Succeeded());
}

TEST(SubprocessTest, StdinIsTheNamedFile) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/stdin-", getpid(), ".txt");
  FILE* file = fopen(path.c_str(), "w");
  ASSERT_NE(file, nullptr);
  fputs("first\nsecond\n", file);
  fclose(file);
  SubprocessSpec spec = Shell("cat");
  spec.stdin_path = path;
  absl::StatusOr<CapturedOutput> read = RunAndCapture(spec);
  unlink(path.c_str());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->stdout_text, "first\nsecond\n");

  spec.stdin_path = path + ".missing";
  Subprocess missing(spec);
  absl::Status started = missing.Start();
  EXPECT_TRUE(absl::IsFailedPrecondition(started)) << started;
}

TEST(SubprocessTest, ReportsTheSignalThatEndedTheChild) {
  Lines lines;
  absl::StatusOr<SubprocessResult> result = RunToEnd(Shell("kill -KILL $$"), lines);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->term_signal, SIGKILL);
  EXPECT_EQ(result->exit_code, -1);
  EXPECT_FALSE(result->Succeeded());
  EXPECT_EQ(result->Describe(), "killed by signal 9 (SIGKILL)");
}

TEST(SubprocessTest, DeliversStdoutAndStderrLinesInOrderPerStream) {
  Lines lines;
  absl::StatusOr<SubprocessResult> result =
      RunToEnd(Shell("echo one; echo uno >&2; echo two; echo dos >&2; echo three"), lines);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->Succeeded());
  EXPECT_THAT(lines.out, ElementsAre("one", "two", "three"));
  EXPECT_THAT(lines.err, ElementsAre("uno", "dos"));
}

TEST(SubprocessTest, ReadsTenMegabytesOnBothStreamsWithoutDeadlock) {
  // Both streams are written at once, so a reader that drained only one would block the child.
  const std::string line(63, 'x');  // 64 bytes with '\n'
  const int kOutLines = 10 * 1024 * 1024 / 64;
  const int kErrLines = 100000;
  Lines lines;
  absl::StatusOr<SubprocessResult> result =
      RunToEnd(Shell(absl::StrCat("yes ", line, " | head -n ", kOutLines, " & yes e | head -n ",
                                  kErrLines, " >&2; wait")),
               lines);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->Succeeded()) << result->Describe();
  ASSERT_EQ(lines.out.size(), static_cast<size_t>(kOutLines));
  ASSERT_EQ(lines.err.size(), static_cast<size_t>(kErrLines));
  for (const std::string& l : lines.out) ASSERT_EQ(l, line);
  for (const std::string& l : lines.err) ASSERT_EQ(l, "e");
}

TEST(SubprocessTest, PassesNonUtf8BytesThroughUntouched) {
  Lines lines;
  absl::StatusOr<SubprocessResult> result =
      RunToEnd(Shell("printf 'a\\377\\376b\\200\\000z\\n'"), lines);
  ASSERT_TRUE(result.ok()) << result.status();
  const std::string expected{'a', '\xff', '\xfe', 'b', '\x80', '\0', 'z'};
  ASSERT_THAT(lines.out, ElementsAre(expected));
}

TEST(SubprocessTest, DeliversAFinalLineWithoutNewlineAtEof) {
  Lines lines;
  absl::StatusOr<SubprocessResult> result = RunToEnd(Shell("printf 'one\\ntwo'"), lines);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(lines.out, ElementsAre("one", "two"));

  absl::StatusOr<CapturedOutput> captured = RunAndCapture(Shell("printf 'one\\ntwo'"));
  ASSERT_TRUE(captured.ok()) << captured.status();
  EXPECT_EQ(captured->stdout_text, "one\ntwo");
}

TEST(SubprocessTest, SplitsLinesLongerThan64KiB) {
  const std::string script = "head -c 70000 /dev/zero | tr '\\0' a; echo; echo short";
  Lines lines;
  absl::StatusOr<SubprocessResult> result = RunToEnd(Shell(script), lines);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(lines.out.size(), 3u);
  EXPECT_EQ(lines.out[0], std::string(kMaxLineBytes, 'a'));
  EXPECT_EQ(lines.out[1], std::string(70000 - kMaxLineBytes, 'a'));
  EXPECT_EQ(lines.out[2], "short");

  // The capture still has the exact bytes: split pieces are joined without a '\n'.
  absl::StatusOr<CapturedOutput> captured = RunAndCapture(Shell(script));
  ASSERT_TRUE(captured.ok()) << captured.status();
  EXPECT_EQ(captured->stdout_text, std::string(70000, 'a') + "\nshort\n");
}

TEST(SubprocessTest, RunAndCaptureKeepsAtMostMaxBytesPerStream) {
  absl::StatusOr<CapturedOutput> captured =
      RunAndCapture(Shell("yes | head -n 1000; echo small >&2"), /*max_bytes=*/100);
  ASSERT_TRUE(captured.ok()) << captured.status();
  EXPECT_TRUE(captured->result.Succeeded());
  EXPECT_EQ(captured->stdout_text.size(), 100u);
  EXPECT_TRUE(captured->stdout_truncated);
  EXPECT_EQ(captured->stderr_text, "small\n");
  EXPECT_FALSE(captured->stderr_truncated);
}

TEST(SubprocessTest, TimeoutEndsAChildThatRespectsSigterm) {
  SubprocessSpec spec = Shell("exec sleep 1000");
  spec.timeout = absl::Milliseconds(200);
  Lines lines;
  absl::StatusOr<SubprocessResult> result = RunToEnd(spec, lines);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->timed_out);
  EXPECT_FALSE(result->cancelled);
  EXPECT_EQ(result->term_signal, SIGTERM);
  EXPECT_FALSE(result->Succeeded());
  EXPECT_EQ(result->Describe(), "killed by signal 15 (SIGTERM) after timing out");
}

TEST(SubprocessTest, TimeoutKillsAChildIgnoringSigtermAfterTheGracePeriod) {
  SubprocessSpec spec = Shell("trap '' TERM; echo ready; sleep 1000; echo survived");
  // Long enough for the shell to install its trap first, even on a loaded machine.
  spec.timeout = absl::Seconds(1);
  spec.kill_grace = absl::Milliseconds(500);
  Lines lines;
  absl::Time start = absl::Now();
  absl::StatusOr<SubprocessResult> result = RunToEnd(spec, lines);
  absl::Duration elapsed = absl::Now() - start;
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->timed_out);
  EXPECT_EQ(result->term_signal, SIGKILL);
  EXPECT_THAT(lines.out, ElementsAre("ready"));
  // SIGKILL came only after the grace period.
  EXPECT_GE(elapsed, absl::Milliseconds(1500));
  EXPECT_LT(elapsed, absl::Seconds(30));
}

TEST(SubprocessTest, CancelFromAnotherThreadEndsTheGrandchildToo) {
  ScopedSubreaper subreaper;
  Subprocess process(Shell("sleep 1000 & echo $!; wait"));
  ASSERT_TRUE(process.Start().ok());

  absl::Notification got_pid;
  pid_t grandchild = -1;
  absl::StatusOr<SubprocessResult> result;
  std::thread waiter([&] {
    result = process.Wait([&](Stream stream, absl::string_view line) {
      if (stream == Stream::kStdout && !got_pid.HasBeenNotified()) {
        int pid = -1;
        if (absl::SimpleAtoi(line, &pid)) grandchild = pid;
        got_pid.Notify();
      }
    });
  });
  bool notified = got_pid.WaitForNotificationWithTimeout(absl::Seconds(10));
  int grandchild_pidfd = grandchild > 0 ? pidfd_open(grandchild, 0) : -1;
  process.Cancel();
  waiter.join();

  ASSERT_TRUE(notified);
  ASSERT_GT(grandchild, 0);
  ASSERT_GE(grandchild_pidfd, 0) << "grandchild " << grandchild << " gone before the cancel";
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->cancelled);
  EXPECT_FALSE(result->timed_out);
  EXPECT_FALSE(result->Succeeded());
  EXPECT_TRUE(ProcessEndsWithinFiveSeconds(grandchild, grandchild_pidfd));
}

TEST(SubprocessTest, GrandchildLeftInTheGroupDoesNotOutliveANormalExit) {
  ScopedSubreaper subreaper;
  pid_t grandchild = -1;
  int grandchild_pidfd = -1;
  Subprocess process(Shell("sleep 1000 & echo $!; exit 0"));
  ASSERT_TRUE(process.Start().ok());
  absl::StatusOr<SubprocessResult> result =
      process.Wait([&](Stream stream, absl::string_view line) {
        int pid = -1;
        if (stream == Stream::kStdout && absl::SimpleAtoi(line, &pid)) {
          grandchild = pid;
          grandchild_pidfd = pidfd_open(pid, 0);
        }
      });
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->Succeeded()) << result->Describe();
  ASSERT_GT(grandchild, 0);
  ASSERT_GE(grandchild_pidfd, 0);
  EXPECT_TRUE(ProcessEndsWithinFiveSeconds(grandchild, grandchild_pidfd));
}

TEST(SubprocessTest, CancelBeforeStartEndsTheChildAtOnce) {
  SubprocessSpec spec = Shell("exec sleep 1000");
  Subprocess process(spec);
  process.Cancel();
  ASSERT_TRUE(process.Start().ok());
  absl::StatusOr<SubprocessResult> result = process.Wait([](Stream, absl::string_view) {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->cancelled);
  EXPECT_EQ(result->term_signal, SIGTERM);
}

TEST(SubprocessTest, RefusesARelativeOrMissingProgram) {
  SubprocessSpec spec;
  spec.argv = {"sh", "-c", "true"};
  absl::Status status = Subprocess(spec).Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("absolute path"));

  spec.argv = {};
  EXPECT_EQ(Subprocess(spec).Start().code(), absl::StatusCode::kInvalidArgument);

  spec.argv = {"/nonexistent/pghaul-test-binary"};
  status = Subprocess(spec).Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("/nonexistent/pghaul-test-binary"));
  EXPECT_THAT(status.message(), HasSubstr("No such file or directory"));
}

TEST(SubprocessTest, ChildSeesOnlyTheGivenEnvironment) {
  ASSERT_EQ(setenv("PGHAUL_TEST_PARENT_ONLY", "leaked", 1), 0);
  SubprocessSpec spec;
  spec.argv = {"/usr/bin/env"};
  spec.env = {"FOO=bar baz", "LANG=C"};
  Lines lines;
  absl::StatusOr<SubprocessResult> result = RunToEnd(spec, lines);
  unsetenv("PGHAUL_TEST_PARENT_ONLY");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(lines.out, UnorderedElementsAre("FOO=bar baz", "LANG=C"));
}

TEST(SubprocessTest, RunsInTheWorkingDirectoryAndReportsOneThatDoesNotExist) {
  SubprocessSpec spec;
  spec.argv = {"/bin/pwd"};
  spec.working_directory = "/usr/share";
  Lines lines;
  absl::StatusOr<SubprocessResult> result = RunToEnd(spec, lines);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(lines.out, ElementsAre("/usr/share"));

  spec.working_directory = "/nonexistent/pghaul-test-dir";
  absl::Status status = Subprocess(spec).Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("/nonexistent/pghaul-test-dir"));
}

TEST(SubprocessTest, StdinIsDevNull) {
  SubprocessSpec spec;
  spec.argv = {"/bin/cat"};
  absl::StatusOr<CapturedOutput> captured = RunAndCapture(spec);
  ASSERT_TRUE(captured.ok()) << captured.status();
  EXPECT_TRUE(captured->result.Succeeded());
  EXPECT_EQ(captured->stdout_text, "");
}

TEST(SubprocessTest, ChildDoesNotInheritIgnoredSignals) {
  struct sigaction ignore = {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction previous = {};
  ASSERT_EQ(sigaction(SIGUSR1, &ignore, &previous), 0);
  Lines lines;
  absl::StatusOr<SubprocessResult> result = RunToEnd(Shell("kill -USR1 $$; echo survived"), lines);
  sigaction(SIGUSR1, &previous, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->term_signal, SIGUSR1);
  EXPECT_TRUE(lines.out.empty());
}

TEST(SubprocessTest, DestroyingWithoutWaitKillsAndReapsTheChild) {
  pid_t pid = -1;
  int pidfd = -1;
  {
    Subprocess process(Shell("exec sleep 1000"));
    ASSERT_TRUE(process.Start().ok());
    pid = process.pid();
    pidfd = pidfd_open(pid, 0);
    ASSERT_GE(pidfd, 0);
  }
  // Already reaped by the destructor: no zombie is left for kill() to find.
  EXPECT_TRUE(ProcessEndsWithinFiveSeconds(pid, pidfd));
}

TEST(SubprocessTest, WaitBeforeStartIsAnError) {
  Subprocess process(Shell("true"));
  absl::StatusOr<SubprocessResult> result = process.Wait([](Stream, absl::string_view) {});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace pghaul
