#include "agent/scram_verifier.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace pghaul::agent {
namespace {

using Digest = std::array<unsigned char, SHA256_DIGEST_LENGTH>;

Digest Hmac(const Digest& key, absl::string_view message) {
  Digest out{};
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), out.data(), &length);
  return out;
}

absl::string_view View(const Digest& digest) {
  return absl::string_view(reinterpret_cast<const char*>(digest.data()), digest.size());
}

}  // namespace

std::string ScramSha256Verifier(absl::string_view password, absl::string_view salt,
                                int iterations) {
  Digest salted{};
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()),
                    static_cast<int>(salt.size()), iterations, EVP_sha256(),
                    static_cast<int>(salted.size()), salted.data());
  const Digest client_key = Hmac(salted, "Client Key");
  Digest stored_key{};
  SHA256(client_key.data(), client_key.size(), stored_key.data());
  const Digest server_key = Hmac(salted, "Server Key");
  return absl::StrCat("SCRAM-SHA-256$", iterations, ":", absl::Base64Escape(salt), "$",
                      absl::Base64Escape(View(stored_key)), ":",
                      absl::Base64Escape(View(server_key)));
}

absl::StatusOr<std::string> NewScramSha256Verifier(absl::string_view password) {
  std::array<unsigned char, kScramSaltBytes> salt{};
  if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1) {
    return absl::InternalError("OpenSSL could not give random bytes for a SCRAM salt");
  }
  return ScramSha256Verifier(
      password, absl::string_view(reinterpret_cast<const char*>(salt.data()), salt.size()));
}

}  // namespace pghaul::agent
