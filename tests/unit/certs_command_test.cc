// `pghaul certs init` and `pghaul certs issue`, run through the whole CLI.
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "cli/app.h"
#include "common/clock.h"
#include "common/tls_certificates.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::cli {
namespace {

using ::testing::HasSubstr;

class CertsCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pghaul-certs-test-XXXXXX";
    root_ = mkdtemp(pattern);
    dir_ = root_ + "/ca";
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  int Run(std::vector<std::string> args) {
    args.insert(args.begin(), "pghaul");
    std::vector<const char*> argv;
    for (const std::string& arg : args) argv.push_back(arg.c_str());
    out_.str("");
    err_.str("");
    return RunPghaul(static_cast<int>(argv.size()), argv.data(), out_, err_, clock_);
  }

  static unsigned Mode(const std::string& path) {
    struct stat st;
    EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 0777;
  }

  FakeClock clock_{absl::Now()};
  std::string root_;
  std::string dir_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(CertsCommandTest, InitMakesAPrivateCaAndIssueMakesCertificatesThatLoad) {
  ASSERT_EQ(Run({"certs", "init", "--dir", dir_}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr(dir_ + "/ca.crt"));
  EXPECT_EQ(Mode(dir_), 0700u);
  EXPECT_EQ(Mode(dir_ + "/ca.key"), 0600u);

  ASSERT_EQ(Run({"certs", "issue", "--dir", dir_, "--agent", "legacy-db1"}), 0) << err_.str();
  EXPECT_EQ(Mode(dir_ + "/agent-legacy-db1.key"), 0600u);
  absl::StatusOr<TlsMaterial> agent = LoadTlsFiles(
      {dir_ + "/ca.crt", dir_ + "/agent-legacy-db1.crt", dir_ + "/agent-legacy-db1.key"});
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_EQ(agent->certificate.names.common_name, "legacy-db1");

  ASSERT_EQ(Run({"certs", "issue", "--dir", dir_, "--controller", "--name", "ctl.example.com",
                 "--name", "10.0.0.7", "--days", "30"}),
            0)
      << err_.str();
  absl::StatusOr<TlsMaterial> controller =
      LoadTlsFiles({dir_ + "/ca.crt", dir_ + "/controller.crt", dir_ + "/controller.key"});
  ASSERT_TRUE(controller.ok()) << controller.status();
  EXPECT_THAT(controller->certificate.names.alternative_names,
              testing::ElementsAre("ctl.example.com", "10.0.0.7"));
  EXPECT_LT(controller->certificate.not_after, absl::Now() + absl::Hours(24 * 31));

  ASSERT_EQ(Run({"certs", "issue", "--dir", dir_, "--cli", "alice"}), 0) << err_.str();
  absl::StatusOr<TlsMaterial> cli =
      LoadTlsFiles({dir_ + "/ca.crt", dir_ + "/cli-alice.crt", dir_ + "/cli-alice.key"});
  ASSERT_TRUE(cli.ok()) << cli.status();
  EXPECT_EQ(cli->certificate.names.common_name, "cli:alice");
}

TEST_F(CertsCommandTest, RefusesToOverwriteWithoutForce) {
  ASSERT_EQ(Run({"certs", "init", "--dir", dir_}), 0) << err_.str();
  std::string before = out_.str();
  EXPECT_EQ(Run({"certs", "init", "--dir", dir_}), 65);
  EXPECT_THAT(err_.str(), HasSubstr(dir_ + "/ca.crt and " + dir_ + "/ca.key exist; pass --force"));
  EXPECT_EQ(Run({"certs", "init", "--dir", dir_, "--force"}), 0) << err_.str();

  ASSERT_EQ(Run({"certs", "issue", "--dir", dir_, "--cli", "alice"}), 0) << err_.str();
  EXPECT_EQ(Run({"certs", "issue", "--dir", dir_, "--cli", "alice"}), 65);
  EXPECT_THAT(err_.str(), HasSubstr("exist; pass --force to replace"));
  EXPECT_EQ(Run({"certs", "issue", "--dir", dir_, "--cli", "alice", "--force"}), 0);
}

TEST_F(CertsCommandTest, PrintsTheWrittenPathsAsJson) {
  ASSERT_EQ(Run({"certs", "init", "--dir", dir_}), 0) << err_.str();
  ASSERT_EQ(Run({"certs", "issue", "--dir", dir_, "--agent", "db1", "-o", "json"}), 0)
      << err_.str();
  EXPECT_EQ(out_.str(), "{\"certificate\":\"" + dir_ + "/agent-db1.crt\",\"key\":\"" + dir_ +
                            "/agent-db1.key\",\"ca\":\"" + dir_ + "/ca.crt\"}\n");
}

TEST_F(CertsCommandTest, ExplainsBadRequests) {
  EXPECT_EQ(Run({"certs", "issue", "--dir", dir_, "--agent", "db1"}), 65);
  EXPECT_THAT(err_.str(), HasSubstr("no CA in " + dir_ +
                                    " (ca.crt and ca.key): run `pghaul "
                                    "certs init --dir " +
                                    dir_ + "` first"));
  ASSERT_EQ(Run({"certs", "init", "--dir", dir_}), 0) << err_.str();
  EXPECT_EQ(Run({"certs", "issue", "--dir", dir_}), 65);
  EXPECT_THAT(err_.str(), HasSubstr("exactly one of --agent ID, --controller or --cli NAME"));
  EXPECT_EQ(Run({"certs", "issue", "--dir", dir_, "--agent", "DB 1"}), 65);
  EXPECT_THAT(err_.str(), HasSubstr("agent id 'DB 1' is not valid"));
  EXPECT_EQ(Run({"certs", "issue", "--dir", dir_, "--controller", "--name", "a,DNS:evil"}), 65);
  EXPECT_THAT(err_.str(), HasSubstr("is neither a DNS name"));
  EXPECT_EQ(Run({"certs", "issue", "--dir", dir_, "--agent", "db1", "--cli", "alice"}), 64);
  EXPECT_EQ(Run({"certs", "issue", "--dir", dir_, "--agent", "db1", "--name", "x"}), 64);
  EXPECT_EQ(Run({"certs"}), 64);
}

TEST_F(CertsCommandTest, HelpDescribesBothSubcommands) {
  EXPECT_EQ(Run({"certs", "--help"}), 0);
  EXPECT_THAT(out_.str(), HasSubstr("init"));
  EXPECT_THAT(out_.str(), HasSubstr("issue"));
  EXPECT_THAT(out_.str(), HasSubstr("docs/security.md"));
}

}  // namespace
}  // namespace pghaul::cli
