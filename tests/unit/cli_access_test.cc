#include "cli/commands_access.h"

#include <sys/stat.h>

#include <filesystem>

#include "common/access_tokens.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

class TokenCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pghaul-token-test-XXXXXX";
    dir_ = mkdtemp(pattern);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(TokenCommandTest, WritesAPrivateTokenAndPrintsItsDigestLine) {
  const std::string path = dir_ + "/ci.token";
  absl::StatusOr<std::string> text =
      RunTokenCreate({.name = "ci-bot", .role = "operator", .out = path}, OutputFormat::kTable);
  ASSERT_TRUE(text.ok()) << text.status();
  struct stat info;
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  absl::StatusOr<std::string> token = ReadAccessTokenFile(path);
  ASSERT_TRUE(token.ok()) << token.status();
  // The line for controller.yaml holds the digest, never the token.
  EXPECT_THAT(*text, HasSubstr("- \"ci-bot operator " + AccessTokenDigest(*token) + "\""));
  EXPECT_THAT(*text, ::testing::Not(HasSubstr(*token)));

  // Never over an existing file without --force.
  absl::StatusOr<std::string> again =
      RunTokenCreate({.name = "ci-bot", .role = "operator", .out = path}, OutputFormat::kJson);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  again = RunTokenCreate({.name = "ci-bot", .role = "operator", .out = path, .force = true},
                         OutputFormat::kJson);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_THAT(*again, HasSubstr("{\"name\":\"ci-bot\",\"role\":\"operator\",\"token_file\":\"" +
                                path + "\",\"config_line\":\"ci-bot operator sha256:"));
  EXPECT_THAT(*again, MatchesRegex(".*sha256:[0-9a-f]{64}\"}\n"));
  EXPECT_NE(*ReadAccessTokenFile(path), *token);
}

TEST_F(TokenCommandTest, RefusesBadNamesAndRoles) {
  EXPECT_EQ(RunTokenCreate({.name = "Bad Name", .role = "admin", .out = dir_ + "/t"},
                           OutputFormat::kTable)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::string> text =
      RunTokenCreate({.name = "ci", .role = "root", .out = dir_ + "/t"}, OutputFormat::kTable);
  EXPECT_THAT(text.status().message(), HasSubstr("expected read-only, operator or admin"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/t"));
}

TEST_F(TokenCommandTest, ATokenFileOthersCanReadIsRefused) {
  const std::string path = dir_ + "/t";
  ASSERT_TRUE(WriteFileAtomically(path, "pghaul_0123456789abcdef\n", 0644).ok());
  absl::StatusOr<std::string> token = ResolveToken(path, nullptr);
  EXPECT_EQ(token.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(token.status().message(), HasSubstr("chmod 600 " + path));
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  EXPECT_EQ(*ResolveToken(path, "pghaul_ignored-when-a-file-is-given"), "pghaul_0123456789abcdef");
}

TEST_F(TokenCommandTest, TheEnvironmentTokenIsUsedWithoutAFileAndChecked) {
  EXPECT_EQ(*ResolveToken("", nullptr), "");
  EXPECT_EQ(*ResolveToken("", ""), "");
  EXPECT_EQ(*ResolveToken("", "pghaul_0123456789abcdef"), "pghaul_0123456789abcdef");
  absl::StatusOr<std::string> bad = ResolveToken("", "two words here, long enough");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("PGHAUL_TOKEN"));
  EXPECT_EQ(ResolveToken(dir_ + "/missing", nullptr).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace pghaul::cli
