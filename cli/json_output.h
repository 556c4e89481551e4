// Machine-readable output: protobuf messages as proto3 JSON, for `--output json`.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace pghaul::cli {

enum class OutputFormat { kTable, kJson };

// Parses "table" or "json"; anything else is InvalidArgument naming both.
absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view text);

// `message` as one line of proto3 JSON followed by a newline. Field names are those of the .proto
// files (snake_case: "agent_id", not "agentId"); fields holding their default value (false, 0, "",
// []) are printed too, so scripts see every field; 64-bit integers are JSON strings and
// timestamps RFC 3339 strings, as proto3 JSON specifies. Unset sub-messages are omitted.
// Returns Internal if the message cannot be converted (which would be a bug).
absl::StatusOr<std::string> MessageToJson(const google::protobuf::Message& message);

// The same JSON object without the newline, to embed in a larger document.
absl::StatusOr<std::string> MessageToJsonObject(const google::protobuf::Message& message);

}  // namespace pghaul::cli
