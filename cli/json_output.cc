#include "cli/json_output.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"

namespace pghaul::cli {

absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view text) {
  if (text == "table") return OutputFormat::kTable;
  if (text == "json") return OutputFormat::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown output format '", text, "'; use 'table' or 'json'"));
}

absl::StatusOr<std::string> MessageToJsonObject(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot convert ", message.GetTypeName(), " to JSON: ", status.ToString()));
  }
  return json;
}

absl::StatusOr<std::string> MessageToJson(const google::protobuf::Message& message) {
  absl::StatusOr<std::string> json = MessageToJsonObject(message);
  if (json.ok()) *json += '\n';
  return json;
}

}  // namespace pghaul::cli
