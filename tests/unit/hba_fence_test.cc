#include "agent/hba_fence.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/fixture/temp_dir.h"

namespace pghaul::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kDebianHba[] =
    "# PostgreSQL Client Authentication Configuration File\n"
    "local   all             postgres                                peer\n"
    "local   all             all                                     peer\n"
    "host    all             all             127.0.0.1/32            scram-sha-256\n"
    "host    replication     all             ::1/128                 scram-sha-256\n";

TEST(HbaFenceTest, BlockRejectsEachOtherRoleOnTheSocketAndEveryTcpAndReplicationLogin) {
  absl::StatusOr<std::string> block = HbaFenceBlock("m1", {"app", "report"});
  ASSERT_TRUE(block.ok()) << block.status();
  EXPECT_THAT(*block, StartsWith("# BEGIN pghaul fence m1: "));
  EXPECT_THAT(*block, HasSubstr("\nlocal all \"app\" reject\nlocal all \"report\" reject\n"
                                "host all all all reject\nlocal replication all reject\n"
                                "host replication all all reject\n# END pghaul fence m1\n"));
  // Only the marker line is a comment; every other line is a rule.
  EXPECT_EQ(std::count(block->begin(), block->end(), '#'), 2);
}

TEST(HbaFenceTest, RoleNamesAreQuotedSoKeywordsAndPrefixesAreLiteral) {
  EXPECT_EQ(QuoteHbaRole("all").value_or("?"), "\"all\"");
  EXPECT_EQ(QuoteHbaRole("+group").value_or("?"), "\"+group\"");
  EXPECT_EQ(QuoteHbaRole("a b,c").value_or("?"), "\"a b,c\"");
  EXPECT_EQ(QuoteHbaRole("with\"quote").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(QuoteHbaRole("new\nline").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(QuoteHbaRole("").status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::string> refused = HbaFenceBlock("m1", {"ok", "bad\"one"});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("bad\"one"));
}

TEST(HbaFenceTest, FenceGoesFirstAndRemovingItGivesBackTheSameBytes) {
  absl::StatusOr<std::string> fenced = AddHbaFence(kDebianHba, "m1", {"app"});
  ASSERT_TRUE(fenced.ok()) << fenced.status();
  EXPECT_THAT(*fenced, StartsWith("# BEGIN pghaul fence m1:"));
  EXPECT_TRUE(absl::EndsWith(*fenced, kDebianHba));
  EXPECT_TRUE(HasHbaFence(*fenced, "m1"));
  bool removed = false;
  absl::StatusOr<std::string> unfenced = RemoveHbaFence(*fenced, "m1", &removed);
  ASSERT_TRUE(unfenced.ok()) << unfenced.status();
  EXPECT_TRUE(removed);
  EXPECT_EQ(*unfenced, kDebianHba);
}

TEST(HbaFenceTest, FencingTwiceLeavesOneBlockWithTheCurrentRoles) {
  absl::StatusOr<std::string> once = AddHbaFence(kDebianHba, "m1", {"app"});
  ASSERT_TRUE(once.ok());
  absl::StatusOr<std::string> same = AddHbaFence(*once, "m1", {"app"});
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(*same, *once);
  absl::StatusOr<std::string> more = AddHbaFence(*once, "m1", {"app", "late"});
  ASSERT_TRUE(more.ok());
  EXPECT_EQ(more->find("# BEGIN pghaul fence m1:"), more->rfind("# BEGIN pghaul fence m1:"));
  EXPECT_THAT(*more, HasSubstr("local all \"late\" reject\n"));
  EXPECT_EQ(RemoveHbaFence(*more, "m1").value_or("?"), kDebianHba);
}

TEST(HbaFenceTest, UnfenceWithoutABlockChangesNothing) {
  bool removed = true;
  absl::StatusOr<std::string> unfenced = RemoveHbaFence(kDebianHba, "m1", &removed);
  ASSERT_TRUE(unfenced.ok());
  EXPECT_FALSE(removed);
  EXPECT_EQ(*unfenced, kDebianHba);
}

TEST(HbaFenceTest, RemovesOnlyItsOwnMigrationsBlock) {
  absl::StatusOr<std::string> other = AddHbaFence(kDebianHba, "m10", {"app"});
  ASSERT_TRUE(other.ok());
  absl::StatusOr<std::string> both = AddHbaFence(*other, "m1", {"app"});
  ASSERT_TRUE(both.ok());
  EXPECT_TRUE(HasHbaFence(*both, "m10"));
  bool removed = false;
  absl::StatusOr<std::string> without = RemoveHbaFence(*both, "m1", &removed);
  ASSERT_TRUE(without.ok());
  EXPECT_TRUE(removed);
  EXPECT_EQ(*without, *other);
  EXPECT_FALSE(HasHbaFence(*other, "m1"));
}

TEST(HbaFenceTest, FileWithoutTrailingNewlineComesBackByteIdentical) {
  const std::string hba = "local all all trust";
  absl::StatusOr<std::string> fenced = AddHbaFence(hba, "m1", {});
  ASSERT_TRUE(fenced.ok());
  EXPECT_EQ(RemoveHbaFence(*fenced, "m1").value_or("?"), hba);
  absl::StatusOr<std::string> empty = AddHbaFence("", "m1", {});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(RemoveHbaFence(*empty, "m1").value_or("?"), "");
}

TEST(HbaFenceTest, BlockWithoutItsEndMarkerIsReportedAndLeftAlone) {
  const std::string damaged =
      absl::StrCat("# BEGIN pghaul fence m1: x\nlocal all \"app\" reject\n", kDebianHba);
  absl::StatusOr<std::string> result = RemoveHbaFence(damaged, "m1");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(result.status().message(), HasSubstr("# END pghaul fence m1"));
  // A longer id's END line does not close this block.
  const std::string wrong_end =
      absl::StrCat("# BEGIN pghaul fence m1: x\n# END pghaul fence m10\n", kDebianHba);
  EXPECT_EQ(RemoveHbaFence(wrong_end, "m1").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(AddHbaFence(wrong_end, "m1", {}).status().code(), absl::StatusCode::kDataLoss);
}

TEST(HbaFenceTest, ReplacingTheFileKeepsItsModeAndFollowsSymlinks) {
  absl::StatusOr<std::unique_ptr<integration::TempDir>> dir =
      integration::TempDir::Create("pghaul-hba-");
  ASSERT_TRUE(dir.ok()) << dir.status();
  const std::string real = (*dir)->path() + "/pg_hba.conf";
  ASSERT_TRUE(WriteFileAtomically(real, kDebianHba, 0604).ok());
  ASSERT_EQ(::chmod(real.c_str(), 0604), 0);
  const std::string link = (*dir)->path() + "/link.conf";
  ASSERT_EQ(::symlink(real.c_str(), link.c_str()), 0);

  ASSERT_TRUE(ReplaceFileKeepingOwner(link, "local all all reject\n").ok());
  struct stat st;
  ASSERT_EQ(::lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode)) << "the link was replaced instead of its target";
  ASSERT_EQ(::stat(real.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0604u);
  EXPECT_EQ(ReadFile(real).value_or("?"), "local all all reject\n");
  EXPECT_EQ(ReplaceFileKeepingOwner((*dir)->path() + "/missing", "x").code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace pghaul::agent
