// Reading the task given to `pghaul task submit`: a pghaul.v1.Task in protobuf JSON.
//
// The text may hold secrets (configure_pgbackrest.secrets): nothing here logs it, and error
// messages about a text that mentions secrets never quote any part of it.
#pragma once

#include <istream>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pghaul/v1/agent_link.pb.h"

namespace pghaul::cli {

// Largest task text accepted; real tasks are well under a kilobyte.
inline constexpr size_t kMaxTaskJsonBytes = 1 << 20;

// Parses `json`, a Task in proto3 JSON. Field names may be the .proto ones (migration_id) or
// camelCase (migrationId); enums by name ("CURRENT_WAL_LSN") or number. Unknown fields are
// errors. `source` names the text's origin in messages: "--json", "file task.json", "standard
// input". InvalidArgument, naming the problem and the field, for text that is not a Task, and for
// a Task without an operation.
absl::StatusOr<v1::Task> ParseTaskJson(absl::string_view json, absl::string_view source);

// Reads and parses the task of `task submit`: from `file` (a path, or "-" for `in`) or from
// `json` (the text itself); exactly one of them is set. InvalidArgument, naming the file, for a
// file that cannot be read or is larger than kMaxTaskJsonBytes; for secrets given in `json` (they
// would be in argv); and as ParseTaskJson.
absl::StatusOr<v1::Task> LoadTask(const std::optional<std::string>& file,
                                  const std::optional<std::string>& json, std::istream* in);

// Protobuf's JSON parse error `message` reworded as one line: the excerpt of the input that
// protobuf prints under the error, with a caret, becomes "(at: ...<HERE>...)". With `redact`, no
// part of the input is kept: neither the excerpt nor an "invalid value X" in the message.
std::string DescribeJsonError(absl::string_view message, bool redact);

}  // namespace pghaul::cli
