#include "cli/exit_codes.h"

#include <sysexits.h>

namespace pghaul::cli {

// The constants are spelled out in the header so that readers need not open <sysexits.h>; make
// sure they agree with it.
static_assert(kExitUsage == EX_USAGE);
static_assert(kExitDataError == EX_DATAERR);
static_assert(kExitUnavailable == EX_UNAVAILABLE);
static_assert(kExitSoftware == EX_SOFTWARE);
static_assert(kExitTempFail == EX_TEMPFAIL);
static_assert(kExitProtocol == EX_PROTOCOL);
static_assert(kExitNoPermission == EX_NOPERM);

int ExitCodeForStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
      return kExitDataError;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kExitUnavailable;
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kCancelled:
      return kExitTempFail;
    case absl::StatusCode::kUnimplemented:
      return kExitProtocol;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return kExitNoPermission;
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kDataLoss:
      return kExitSoftware;
    default:
      // absl::StatusCode is open: a code added in a later Abseil is a surprise, hence a bug.
      return kExitSoftware;
  }
}

}  // namespace pghaul::cli
