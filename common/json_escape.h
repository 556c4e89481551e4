// JSON string escaping for hand-written JSON (log lines, CLI output).
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace pghaul {

// Escapes `text` for use inside a JSON string literal. Control characters become \uXXXX and
// bytes that are not valid UTF-8 become U+FFFD, so the result is always valid JSON.
std::string JsonEscape(absl::string_view text);

}  // namespace pghaul
