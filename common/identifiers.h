// Validation of the identifiers that cross the link (agent ids, and later stanzas, task ids).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace pghaul {

// An agent id: 1 to 63 characters of [a-z0-9._-], starting with a letter or digit. It names the
// agent in logs, in the CLI and (later) in its TLS certificate.
absl::Status ValidateAgentId(absl::string_view id);

// A fresh random 128-bit identifier as 32 lowercase hex digits (incarnations, task ids).
std::string RandomHexId();

}  // namespace pghaul
