// Command-line parsing of `pghaul`: flags, usage errors and their exit status. Calls that reach
// a controller are in cli_controller_test.cc.
#include <stdlib.h>

#include <sstream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "cli/app.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::cli {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class AppTest : public ::testing::Test {
 protected:
  int Run(std::vector<std::string> args) {
    args.insert(args.begin(), "pghaul");
    std::vector<const char*> argv;
    for (const std::string& arg : args) argv.push_back(arg.c_str());
    return RunPghaul(static_cast<int>(argv.size()), argv.data(), out_, err_, clock_);
  }

  FakeClock clock_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(AppTest, UnknownFlagIsAUsageErrorWithAHint) {
  EXPECT_EQ(Run({"agents", "--bogus"}), 64);
  EXPECT_EQ(out_.str(), "");
  EXPECT_THAT(err_.str(), StartsWith("pghaul: "));
  EXPECT_THAT(err_.str(), HasSubstr("--bogus"));
  EXPECT_THAT(err_.str(), EndsWith("\nRun 'pghaul --help'.\n"));
}

TEST_F(AppTest, UnknownCommandIsAUsageError) {
  EXPECT_EQ(Run({"migrate-everything"}), 64);
  EXPECT_THAT(err_.str(), HasSubstr("migrate-everything"));
  EXPECT_THAT(err_.str(), EndsWith("Run 'pghaul --help'.\n"));
}

TEST_F(AppTest, MissingCommandIsAUsageError) {
  EXPECT_EQ(Run({}), 64);
  EXPECT_THAT(err_.str(), EndsWith("Run 'pghaul --help'.\n"));
}

TEST_F(AppTest, AgentsShowWithoutAnIdIsAUsageError) {
  EXPECT_EQ(Run({"agents", "show"}), 64);
  EXPECT_THAT(err_.str(), HasSubstr("ID is required"));
}

TEST_F(AppTest, OutputFormatOtherThanTableOrJsonIsAUsageError) {
  EXPECT_EQ(Run({"--output", "yaml", "agents"}), 64);
  EXPECT_THAT(err_.str(), HasSubstr("yaml"));
}

TEST_F(AppTest, TimeoutThatIsNotADurationIsAUsageError) {
  EXPECT_EQ(Run({"--timeout", "soon", "agents"}), 64);
  EXPECT_THAT(err_.str(), HasSubstr("'soon' is not a duration"));
  EXPECT_EQ(Run({"--timeout", "-1s", "agents"}), 64);
}

TEST_F(AppTest, VersionAndHelpGoToStdoutAndSucceed) {
  EXPECT_EQ(Run({"--version"}), 0);
  EXPECT_EQ(out_.str(), "pghaul " PGHAUL_VERSION "\n");
  out_.str("");
  EXPECT_EQ(Run({"--help"}), 0);
  EXPECT_THAT(out_.str(), HasSubstr("--controller ADDR"));
  EXPECT_THAT(out_.str(), HasSubstr("PGHAUL_CONTROLLER"));
  EXPECT_THAT(out_.str(), HasSubstr("agents"));
  EXPECT_EQ(err_.str(), "");
}

TEST_F(AppTest, ControllerDefaultsToLoopbackPort7400) {
  EXPECT_EQ(Run({"--help"}), 0);
  EXPECT_THAT(out_.str(), HasSubstr("--controller ADDR=127.0.0.1:7400"));
}

TEST_F(AppTest, TaskWithoutASubcommandIsAUsageErrorNamingThem) {
  EXPECT_EQ(Run({"task"}), 64);
  EXPECT_EQ(err_.str(),
            "pghaul: task needs a subcommand: list, show, cancel or submit\n"
            "Run 'pghaul task --help'.\n");
}

TEST_F(AppTest, TaskSubmitNeedsExactlyOneOfFileAndJson) {
  EXPECT_EQ(Run({"task", "submit", "db1"}), 64);
  EXPECT_THAT(err_.str(), HasSubstr("task submit needs the task: --file FILE or --json TEXT"));
  err_.str("");
  EXPECT_EQ(Run({"task", "submit", "db1", "--file", "t.json", "--json", "{}"}), 64);
  EXPECT_THAT(err_.str(), HasSubstr("excludes"));
  err_.str("");
  EXPECT_EQ(Run({"task", "submit", "--json", "{}"}), 64);
  EXPECT_THAT(err_.str(), HasSubstr("AGENT is required"));
}

TEST_F(AppTest, TaskShowAndCancelNeedAnId) {
  EXPECT_EQ(Run({"task", "show"}), 64);
  EXPECT_THAT(err_.str(), HasSubstr("TASK_ID is required"));
  EXPECT_EQ(Run({"task", "cancel"}), 64);
}

TEST_F(AppTest, LimitsMustBeInRangeAndAgentsLimitNeedsTasks) {
  EXPECT_EQ(Run({"task", "list", "--limit", "0"}), 64);
  EXPECT_EQ(Run({"task", "list", "--limit", "1001"}), 64);
  EXPECT_EQ(Run({"task", "show", "t1", "--events", "0"}), 64);
  err_.str("");
  EXPECT_EQ(Run({"agents", "show", "db1", "--limit", "5"}), 64);
  EXPECT_THAT(err_.str(), HasSubstr("--tasks"));
}

TEST_F(AppTest, TaskHelpCallsItLowLevel) {
  EXPECT_EQ(Run({"task", "--help"}), 0);
  EXPECT_THAT(out_.str(), HasSubstr("Low-level task control, for operators debugging a host"));
  EXPECT_THAT(out_.str(), HasSubstr("submit"));
}

TEST(ParseTimeoutTest, AcceptsAbseilDurationsAndBareSeconds) {
  EXPECT_EQ(ParseTimeout("10s").value(), absl::Seconds(10));
  EXPECT_EQ(ParseTimeout("500ms").value(), absl::Milliseconds(500));
  EXPECT_EQ(ParseTimeout("1m30s").value(), absl::Seconds(90));
  EXPECT_EQ(ParseTimeout("2.5").value(), absl::Milliseconds(2500));
}

TEST(ParseTimeoutTest, RejectsZeroNegativeInfiniteAndGarbage) {
  EXPECT_FALSE(ParseTimeout("0").ok());
  EXPECT_FALSE(ParseTimeout("-3s").ok());
  EXPECT_FALSE(ParseTimeout("inf").ok());
  EXPECT_FALSE(ParseTimeout("nan").ok());
  EXPECT_FALSE(ParseTimeout("").ok());
  EXPECT_FALSE(ParseTimeout("ten seconds").ok());
}

}  // namespace
}  // namespace pghaul::cli

namespace pghaul::cli {
namespace {

// The link to the controller: mutual TLS files or an explicit --insecure, nothing implied.
class AppTransportTest : public AppTest {
 protected:
  int RunOnTerminal(std::vector<std::string> args) {
    args.insert(args.begin(), "pghaul");
    std::vector<const char*> argv;
    for (const std::string& arg : args) argv.push_back(arg.c_str());
    RunContext context;
    context.clock = &clock_;
    context.err_terminal_columns = 80;
    return RunPghaul(static_cast<int>(argv.size()), argv.data(), out_, err_, context);
  }
  // Nothing listens on port 1 of loopback: a call fails at once with "connection refused".
  const std::string kNobody = "127.0.0.1:1";
};

TEST_F(AppTransportTest, RefusesToCallTheControllerWithNeitherTlsNorInsecure) {
  EXPECT_EQ(Run({"--controller", kNobody, "agents"}), 64);
  EXPECT_THAT(err_.str(), HasSubstr("the link to the controller needs TLS: pass --tls-ca, "
                                    "--tls-cert and --tls-key"));
  EXPECT_THAT(err_.str(), HasSubstr("or --insecure for a plaintext link"));
}

TEST_F(AppTransportTest, InsecureAndTlsFlagsExcludeEachOtherAndTlsNeedsAllThreeFiles) {
  EXPECT_EQ(Run({"--insecure", "--tls-ca", "/ca.crt", "agents"}), 64);
  EXPECT_THAT(err_.str(), HasSubstr("--insecure and the --tls-* options"));
  err_.str("");
  EXPECT_EQ(Run({"--tls-ca", "/ca.crt", "agents"}), 64);
  EXPECT_THAT(err_.str(), HasSubstr("TLS needs --tls-cert and --tls-key too"));
}

TEST_F(AppTransportTest, NamesAnUnreadableTlsFile) {
  EXPECT_EQ(Run({"--controller", kNobody, "--tls-ca", "/nonexistent/ca.crt", "--tls-cert",
                 "/nonexistent/c.crt", "--tls-key", "/nonexistent/c.key", "agents"}),
            65);
  EXPECT_THAT(err_.str(), HasSubstr("--tls-ca"));
  EXPECT_THAT(err_.str(), HasSubstr("/nonexistent/ca.crt"));
}

TEST_F(AppTransportTest, InsecureWarnsOnATerminalOnly) {
  EXPECT_EQ(RunOnTerminal({"--insecure", "--controller", kNobody, "agents"}), 69);
  EXPECT_THAT(err_.str(), StartsWith("pghaul: warning: --insecure: the link to the controller at " +
                                     kNobody + " is plaintext and unauthenticated\n"));
  err_.str("");
  EXPECT_EQ(Run({"--insecure", "--controller", kNobody, "agents"}), 69);
  EXPECT_THAT(err_.str(), testing::Not(HasSubstr("warning")));
}

TEST_F(AppTransportTest, InsecureCanComeFromTheEnvironment) {
  setenv("PGHAUL_INSECURE", "true", /*overwrite=*/1);
  int exit_code = Run({"--controller", kNobody, "agents"});
  unsetenv("PGHAUL_INSECURE");
  EXPECT_EQ(exit_code, 69) << err_.str();
  EXPECT_THAT(err_.str(), HasSubstr("connection refused"));
}

}  // namespace
}  // namespace pghaul::cli
