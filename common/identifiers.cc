#include "common/identifiers.h"

#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pghaul {

absl::Status ValidateAgentId(absl::string_view id) {
  auto allowed = [](char c, bool first) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    return alnum || (!first && (c == '.' || c == '_' || c == '-'));
  };
  bool ok = !id.empty() && id.size() <= 63;
  for (size_t i = 0; ok && i < id.size(); ++i) ok = allowed(id[i], i == 0);
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "agent id '", absl::CHexEscape(id.substr(0, 80)),
      "' is not valid: use 1 to 63 characters of a-z, 0-9, '.', '_' or '-', starting with a "
      "letter or digit"));
}

std::string RandomHexId() {
  std::random_device device;
  std::mt19937_64 rng((static_cast<uint64_t>(device()) << 32) ^ device());
  return absl::StrFormat("%016x%016x", rng(), rng());
}

}  // namespace pghaul
