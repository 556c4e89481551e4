#include "cli/task_input.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "google/protobuf/util/json_util.h"

namespace pghaul::cli {
namespace {

constexpr absl::string_view kOperations =
    "gather_facts, configure_pgbackrest, pgbackrest, sql, service, check or patroni";

// protobuf writes "invalid value <the input's value> for type <type>".
std::string RedactInvalidValue(absl::string_view headline) {
  constexpr absl::string_view kStart = "invalid value ";
  constexpr absl::string_view kEnd = " for type ";
  size_t start = headline.find(kStart);
  if (start == absl::string_view::npos) return std::string(headline);
  size_t end = headline.find(kEnd, start + kStart.size());
  if (end == absl::string_view::npos) {
    return absl::StrCat(headline.substr(0, start), "invalid value (not shown)");
  }
  return absl::StrCat(headline.substr(0, start), "invalid value (not shown)", headline.substr(end));
}

}  // namespace

std::string DescribeJsonError(absl::string_view message, bool redact) {
  std::vector<absl::string_view> lines = absl::StrSplit(message, '\n');
  std::string headline(absl::StripTrailingAsciiWhitespace(lines[0]));
  if (redact) return RedactInvalidValue(headline);
  // A syntax error comes with two more lines: an excerpt of the input and a caret under the spot.
  absl::string_view excerpt;
  absl::string_view caret;
  for (size_t i = 1; i + 1 < lines.size(); ++i) {
    if (absl::StrContains(lines[i + 1], '^') && !lines[i].empty()) {
      excerpt = lines[i];
      caret = lines[i + 1];
    }
  }
  if (excerpt.empty()) return headline;
  size_t at = std::min(caret.find('^'), excerpt.size());
  return absl::StrCat(headline, " (at: ", excerpt.substr(0, at), "<HERE>", excerpt.substr(at), ")");
}

absl::StatusOr<v1::Task> ParseTaskJson(absl::string_view json, absl::string_view source) {
  if (absl::StripAsciiWhitespace(json).empty()) {
    return absl::InvalidArgumentError(absl::StrCat("the task in ", source,
                                                   " is empty; give a JSON object such as "
                                                   "{\"sql\":{\"query\":\"CURRENT_WAL_LSN\"}}"));
  }
  if (json.size() > kMaxTaskJsonBytes) {
    return absl::InvalidArgumentError(absl::StrCat("the task in ", source, " is ", json.size(),
                                                   " bytes; a task is at most ", kMaxTaskJsonBytes,
                                                   " bytes"));
  }
  v1::Task task;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;  // a misspelt field must not be dropped silently
  auto status = google::protobuf::util::JsonStringToMessage(std::string(json), &task, options);
  if (!status.ok()) {
    // A key spelt with \u escapes could hide "secrets" from the first test.
    std::string lowered = absl::AsciiStrToLower(json);
    bool redact = absl::StrContains(lowered, "secret") || absl::StrContains(lowered, "\\u");
    return absl::InvalidArgumentError(
        absl::StrCat("the task in ", source, " is not a valid pghaul.v1.Task in JSON: ",
                     DescribeJsonError(status.message().as_string(), redact),
                     redact ? " (the input mentions secrets, so none of it is quoted)" : ""));
  }
  if (task.op_case() == v1::Task::OP_NOT_SET) {
    return absl::InvalidArgumentError(
        absl::StrCat("the task in ", source, " names no operation; give one of ", kOperations));
  }
  return task;
}

absl::StatusOr<v1::Task> LoadTask(const std::optional<std::string>& file,
                                  const std::optional<std::string>& json, std::istream* in) {
  if (file.has_value() == json.has_value()) {
    return absl::InvalidArgumentError("give the task either with --file FILE or with --json TEXT");
  }
  if (json.has_value()) {
    PGH_ASSIGN_OR_RETURN(v1::Task task, ParseTaskJson(*json, "--json"));
    // Safety rule: secrets never travel in argv, where every user of the host can read them
    // (ps, /proc/PID/cmdline) and the shell keeps them in its history.
    const v1::Secrets& secrets = task.configure_pgbackrest().secrets();
    if (!secrets.s3_key().empty() || !secrets.s3_key_secret().empty() ||
        !secrets.cipher_pass().empty()) {
      return absl::InvalidArgumentError(
          "secrets are not accepted on the command line (--json), where other users of this "
          "host can read them; put the task in a file only you can read and use --file FILE, "
          "or pipe it in with --file -");
    }
    return task;
  }
  if (*file == "-") {
    if (in == nullptr) {
      return absl::InvalidArgumentError("--file -: there is no standard input to read from");
    }
    std::string text;
    char buffer[4096];
    while (text.size() <= kMaxTaskJsonBytes && in->read(buffer, sizeof(buffer)).gcount() > 0) {
      text.append(buffer, static_cast<size_t>(in->gcount()));
    }
    if (in->bad()) return absl::InvalidArgumentError("cannot read the task from standard input");
    return ParseTaskJson(text, "standard input");
  }
  absl::StatusOr<std::string> text = ReadFile(*file, kMaxTaskJsonBytes);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot use the task file: ", text.status().message()));
  }
  return ParseTaskJson(*text, absl::StrCat("file ", *file));
}

}  // namespace pghaul::cli
