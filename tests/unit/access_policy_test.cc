#include "controller/access_policy.h"

#include "common/access_tokens.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::controller {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kToken[] = "pghaul_token-of-the-release-bot";

AccessConfig Configured() {
  return {.configured = true,
          .default_role = Role::kReadOnly,
          .users = {{"alice", Role::kAdmin}},
          .tokens = {{"release", Role::kOperator, AccessTokenDigest(kToken)}}};
}

CertificateNames Cli(const std::string& name) {
  CertificateNames names;
  names.common_name = "cli:" + name;
  return names;
}

TEST(AccessPolicyTest, RolesAreOrdered) {
  EXPECT_TRUE(AccessPolicy::Authorize({"x", Role::kAdmin}, Role::kOperator, "run").ok());
  EXPECT_TRUE(AccessPolicy::Authorize({"x", Role::kOperator}, Role::kOperator, "run").ok());
  EXPECT_FALSE(AccessPolicy::Authorize({"x", Role::kReadOnly}, Role::kOperator, "run").ok());
  EXPECT_FALSE(AccessPolicy::Authorize({"x", Role::kOperator}, Role::kAdmin, "cut over").ok());
  for (Role role : {Role::kReadOnly, Role::kOperator, Role::kAdmin}) {
    EXPECT_EQ(ParseRole(RoleName(role)), role);
  }
  EXPECT_EQ(ParseRole("root"), std::nullopt);
}

TEST(AccessPolicyTest, ListedUsersGetTheirRoleAndOthersTheDefault) {
  AccessPolicy policy(Configured(), /*require_cli_certificates=*/true);
  CertificateNames alice = Cli("alice");
  CertificateNames zoe = Cli("zoe");
  EXPECT_EQ(policy.Identify(&alice, "")->Describe(), "cli:alice (admin)");
  EXPECT_EQ(policy.Identify(&zoe, "")->Describe(), "cli:zoe (read-only)");
  CertificateNames agent;
  agent.common_name = "db1";
  EXPECT_EQ(policy.Identify(&agent, "").status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(policy.Identify(nullptr, "").status().code(), absl::StatusCode::kPermissionDenied);
}

TEST(AccessPolicyTest, ATokenOverridesTheCertificatesRole) {
  AccessPolicy policy(Configured(), /*require_cli_certificates=*/true);
  CertificateNames zoe = Cli("zoe");
  absl::StatusOr<Caller> caller = policy.Identify(&zoe, std::string("Bearer ") + kToken);
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->Describe(), "token:release (operator)");
}

TEST(AccessPolicyTest, BadTokensAreUnauthenticatedAndNeverEchoed) {
  AccessPolicy policy(Configured(), /*require_cli_certificates=*/false);
  for (const char* authorization :
       {"Bearer pghaul_a-guess-at-the-token", "Basic YWxpY2U6c2VjcmV0", "Bearer short",
        "Bearer has spaces inside it ok"}) {
    absl::StatusOr<Caller> caller = policy.Identify(nullptr, authorization);
    EXPECT_EQ(caller.status().code(), absl::StatusCode::kUnauthenticated) << authorization;
    EXPECT_THAT(caller.status().message(), Not(HasSubstr("guess"))) << authorization;
    EXPECT_THAT(caller.status().message(), Not(HasSubstr("YWxpY2U"))) << authorization;
  }
}

TEST(AccessPolicyTest, APlaintextCallerWithoutATokenHasTheDefaultRole) {
  AccessPolicy configured(Configured(), /*require_cli_certificates=*/false);
  EXPECT_EQ(configured.Identify(nullptr, "")->Describe(), "anonymous (read-only)");
  AccessPolicy open(AccessConfig{}, /*require_cli_certificates=*/false);
  EXPECT_EQ(open.Identify(nullptr, "")->Describe(), "anonymous (admin)");
}

TEST(AccessPolicyTest, ARefusalSaysWhichRoleIsNeededAndHowToGetIt) {
  absl::Status status =
      AccessPolicy::Authorize({"cli:bob", Role::kOperator}, Role::kAdmin, "start cutover of m1");
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(status.message(),
            "cli:bob (operator) may not start cutover of m1: it needs the admin role; an admin "
            "can list bob under access.admin in controller.yaml and restart the controller");
  status = AccessPolicy::Authorize({"token:ci", Role::kReadOnly}, Role::kOperator, "x");
  EXPECT_THAT(status.message(), HasSubstr("use a token made with --role operator"));
  status = AccessPolicy::Authorize({"anonymous", Role::kReadOnly}, Role::kOperator, "x");
  EXPECT_THAT(status.message(), HasSubstr("access.default_role is read-only"));
}

// Cancelling a step of a running cutover fails it, and the fence is lifted: that is the
// admin's call, as the cutover is.
TEST(AccessPolicyTest, CancellingACutoverOrFinishStepNeedsAdmin) {
  EXPECT_EQ(AccessPolicy::RoleToCancel("m1.cutover.1.final-replay.1e802f62"), Role::kAdmin);
  EXPECT_EQ(AccessPolicy::RoleToCancel("m1.cutover.2.fence"), Role::kAdmin);
  EXPECT_EQ(AccessPolicy::RoleToCancel("legacy-to-new.finish.1.new-stanza-backup"), Role::kAdmin);
  EXPECT_EQ(AccessPolicy::RoleToCancel("m1.backup.1.backup"), Role::kOperator);
  EXPECT_EQ(AccessPolicy::RoleToCancel("m1.restore.3.restore"), Role::kOperator);
  EXPECT_EQ(AccessPolicy::RoleToCancel("cutover"), Role::kOperator);
  EXPECT_EQ(AccessPolicy::RoleToCancel("adhoc-cutover-check"), Role::kOperator);
  EXPECT_EQ(AccessPolicy::RoleToCancel("m1.cutover.x.fence"), Role::kOperator);
  // A migration named "cutover" is not a cutover step unless its phase is.
  EXPECT_EQ(AccessPolicy::RoleToCancel("cutover.verify.1.checksums"), Role::kOperator);
}

TEST(AccessTokensTest, NewTokensAreDistinctWellFormedAndHashToADigest) {
  absl::StatusOr<std::string> a = NewAccessToken();
  absl::StatusOr<std::string> b = NewAccessToken();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_TRUE(ValidateAccessToken(*a).ok());
  EXPECT_EQ(a->size(), 7u + 43u);
  EXPECT_TRUE(IsAccessTokenDigest(AccessTokenDigest(*a)));
  // sha256("abc"), the FIPS 180-2 example.
  EXPECT_EQ(AccessTokenDigest("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_FALSE(IsAccessTokenDigest("sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
  EXPECT_TRUE(DigestsEqual("sha256:ab", "sha256:ab"));
  EXPECT_FALSE(DigestsEqual("sha256:ab", "sha256:ac"));
}

}  // namespace
}  // namespace pghaul::controller
