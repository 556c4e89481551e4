#include "common/access_tokens.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace pghaul {
namespace {

constexpr absl::string_view kDigestPrefix = "sha256:";

}  // namespace

absl::StatusOr<std::string> NewAccessToken() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError("OpenSSL's random generator failed: no token was made");
  }
  std::string encoded;
  absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)), &encoded);
  OPENSSL_cleanse(bytes, sizeof(bytes));
  return absl::StrCat(kAccessTokenPrefix, encoded);
}

absl::Status ValidateAccessToken(absl::string_view token) {
  if (token.size() < 16 || token.size() > 512) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a token must be 16 to 512 characters, this one has ", token.size(),
        " (make one with: pghaul token create)"));
  }
  for (char c : token) {
    if (c <= ' ' || c > '~') {
      return absl::InvalidArgumentError(
          "a token holds printable ASCII characters only, without spaces (make one with: "
          "pghaul token create)");
    }
  }
  return absl::OkStatus();
}

std::string AccessTokenDigest(absl::string_view token) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(token.data(), token.size(), digest, &length, EVP_sha256(), nullptr);
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) absl::StrAppendFormat(&hex, "%02x", digest[i]);
  return absl::StrCat(kDigestPrefix, hex);
}

bool IsAccessTokenDigest(absl::string_view text) {
  if (!absl::StartsWith(text, kDigestPrefix)) return false;
  absl::string_view hex = text.substr(kDigestPrefix.size());
  if (hex.size() != 64) return false;
  for (char c : hex) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) && (c < 'a' || c > 'f')) return false;
  }
  return true;
}

bool DigestsEqual(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

absl::StatusOr<std::string> ReadAccessTokenFile(const std::string& path) {
  struct stat info;
  if (::stat(path.c_str(), &info) == 0 && (info.st_mode & 0077) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "token file %s is readable by other users (mode %04o): chmod 600 %s", path,
        info.st_mode & 07777, path));
  }
  PGH_ASSIGN_OR_RETURN(std::string text, ReadFile(path, /*max_bytes=*/4096));
  absl::string_view token = text;
  if (size_t newline = token.find('\n'); newline != absl::string_view::npos) {
    token = token.substr(0, newline);
  }
  token = absl::StripAsciiWhitespace(token);
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("token file ", path, " is empty"));
  }
  if (absl::Status s = ValidateAccessToken(token); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("token file ", path, ": ", s.message()));
  }
  return std::string(token);
}

}  // namespace pghaul
