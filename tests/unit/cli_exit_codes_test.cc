#include "absl/status/status.h"
#include "cli/exit_codes.h"
#include "gtest/gtest.h"

namespace pghaul::cli {
namespace {

TEST(ExitCodesTest, SuccessIsZero) { EXPECT_EQ(ExitCodeForStatus(absl::OkStatus()), 0); }

TEST(ExitCodesTest, RejectedInputIsDataError) {
  EXPECT_EQ(ExitCodeForStatus(absl::NotFoundError("no agent 'x'")), 65);
  EXPECT_EQ(ExitCodeForStatus(absl::InvalidArgumentError("bad id")), 65);
  EXPECT_EQ(ExitCodeForStatus(absl::AlreadyExistsError("dup")), 65);
  EXPECT_EQ(ExitCodeForStatus(absl::FailedPreconditionError("wrong phase")), 65);
}

TEST(ExitCodesTest, UnreachableOrSlowControllerIsUnavailable) {
  EXPECT_EQ(ExitCodeForStatus(absl::UnavailableError("connection refused")), 69);
  EXPECT_EQ(ExitCodeForStatus(absl::DeadlineExceededError("no answer")), 69);
}

TEST(ExitCodesTest, BugsAreSoftwareErrors) {
  EXPECT_EQ(ExitCodeForStatus(absl::InternalError("oops")), 70);
  EXPECT_EQ(ExitCodeForStatus(absl::UnknownError("?")), 70);
  EXPECT_EQ(ExitCodeForStatus(absl::DataLossError("torn")), 70);
}

TEST(ExitCodesTest, RetryableVersionAndPermissionErrorsHaveTheirOwnCodes) {
  EXPECT_EQ(ExitCodeForStatus(absl::AbortedError("conflict")), 75);
  EXPECT_EQ(ExitCodeForStatus(absl::ResourceExhaustedError("busy")), 75);
  EXPECT_EQ(ExitCodeForStatus(absl::UnimplementedError("old controller")), 76);
  EXPECT_EQ(ExitCodeForStatus(absl::PermissionDeniedError("no")), 77);
  EXPECT_EQ(ExitCodeForStatus(absl::UnauthenticatedError("who?")), 77);
}

}  // namespace
}  // namespace pghaul::cli
