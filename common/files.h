// Small file helpers with absl::Status errors that name the path.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pghaul {

// Creates `path` and its missing parents with `mode` (like mkdir -p).
absl::Status MakeDirectories(const std::string& path, unsigned mode = 0750);

// Writes `contents` to `path` atomically: a temporary file in the same directory, fsync, rename.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents,
                                 unsigned mode = 0640);

absl::StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes = 16 << 20);

}  // namespace pghaul
