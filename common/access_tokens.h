// Bearer tokens that name a CLI caller to the controller (docs/security.md, "Roles and tokens").
//
// A token is "pghaul_" and 43 base64url characters (32 random bytes). The controller's
// configuration holds only its digest, "sha256:<64 hex digits>", so a leaked controller.yaml
// gives no token away. The CLI reads a token from a file or the environment, never from its
// command line (which every user of the host can read in /proc), and sends it as the gRPC
// metadata "authorization: Bearer <token>".
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pghaul {

inline constexpr absl::string_view kAccessTokenPrefix = "pghaul_";
// gRPC metadata keys are lower case.
inline constexpr absl::string_view kAuthorizationMetadataKey = "authorization";
inline constexpr absl::string_view kBearerPrefix = "Bearer ";

// A new token from OpenSSL's random generator. Errors: Internal when it has no entropy.
absl::StatusOr<std::string> NewAccessToken();

// Whether `token` can be a token: 16 to 512 printable ASCII characters without spaces (tokens
// made elsewhere are accepted too, not only NewAccessToken's). The error never repeats the token.
absl::Status ValidateAccessToken(absl::string_view token);

// "sha256:" and the lower-case hex SHA-256 of `token`.
std::string AccessTokenDigest(absl::string_view token);

// Whether `text` is a digest as AccessTokenDigest writes it.
bool IsAccessTokenDigest(absl::string_view text);

// Compares two digests in time independent of where they differ.
bool DigestsEqual(absl::string_view a, absl::string_view b);

// Reads a token from the file at `path`: its first line, surrounding white space removed. The
// file must not be readable by group or others. Errors: NotFound/PermissionDenied naming the
// path, FailedPrecondition for a file others may read (with the chmod that fixes it),
// InvalidArgument for an empty or malformed token.
absl::StatusOr<std::string> ReadAccessTokenFile(const std::string& path);

}  // namespace pghaul
