#include "agent/privileges.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace pghaul::agent {
namespace {

TEST(DecidePrivilegesTest, RootWithoutRunAsIsRefusedWithTheFix) {
  absl::StatusOr<PrivilegeAction> decided = DecidePrivileges(0, "root", "");
  ASSERT_FALSE(decided.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(decided.status()));
  EXPECT_TRUE(absl::StrContains(decided.status().message(), "refusing to run as root"));
  EXPECT_TRUE(absl::StrContains(decided.status().message(), "run_as: postgres"));
  EXPECT_TRUE(absl::StrContains(decided.status().message(), "User=postgres"));
}

TEST(DecidePrivilegesTest, RootWithRunAsDrops) {
  EXPECT_EQ(DecidePrivileges(0, "root", "postgres").value(), PrivilegeAction::kDrop);
}

TEST(DecidePrivilegesTest, RunAsRootIsRefused) {
  EXPECT_TRUE(absl::IsFailedPrecondition(DecidePrivileges(0, "root", "root").status()));
}

TEST(DecidePrivilegesTest, UnprivilegedUserKeepsItsIdentity) {
  EXPECT_EQ(DecidePrivileges(110, "postgres", "").value(), PrivilegeAction::kKeep);
  EXPECT_EQ(DecidePrivileges(110, "postgres", "postgres").value(), PrivilegeAction::kKeep);
}

TEST(DecidePrivilegesTest, UnprivilegedUserCannotSwitchToAnother) {
  absl::StatusOr<PrivilegeAction> decided = DecidePrivileges(1000, "alice", "postgres");
  ASSERT_FALSE(decided.ok());
  EXPECT_TRUE(absl::StrContains(decided.status().message(), "started as 'alice'"));
  EXPECT_TRUE(absl::StrContains(decided.status().message(), "only root can switch"));
}

TEST(ApplyPrivilegesTest, UnknownUserIsNamed) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to reach the user lookup";
  absl::Status applied = ApplyPrivileges("no-such-user-pghaul");
  EXPECT_TRUE(absl::IsNotFound(applied)) << applied;
  EXPECT_TRUE(absl::StrContains(applied.message(), "no-such-user-pghaul"));
}

}  // namespace
}  // namespace pghaul::agent
