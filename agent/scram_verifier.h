// SCRAM-SHA-256 password verifiers (RFC 5802, RFC 7677) as PostgreSQL stores them in
// pg_authid.rolpassword, so that a role can be created on another server with a password it
// never sees: `CREATE ROLE x PASSWORD 'SCRAM-SHA-256$4096:...'` stores the verifier as is.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pghaul::agent {

// PostgreSQL's default (scram_iterations does not exist before PostgreSQL 16).
inline constexpr int kScramIterations = 4096;
inline constexpr size_t kScramSaltBytes = 16;

// "SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>" for
// `password` (used as is: PostgreSQL's SASLprep leaves ASCII passwords unchanged, and the
// verifier of a non-ASCII one may differ from what PostgreSQL computes) and `salt`.
std::string ScramSha256Verifier(absl::string_view password, absl::string_view salt,
                                int iterations = kScramIterations);

// The same with a fresh random salt (OpenSSL's RAND_bytes). Errors: Internal when OpenSSL
// cannot give random bytes.
absl::StatusOr<std::string> NewScramSha256Verifier(absl::string_view password);

}  // namespace pghaul::agent
