#include "common/logging.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/json_escape.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_sinks.h"

namespace pghaul {
namespace {

// One JSON object per line; the message is escaped, so any text (including non-UTF-8 bytes from
// a child process) yields valid JSON.
class JsonFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    absl::Time ts = absl::FromChrono(msg.time);
    std::string line = absl::StrCat(
        "{\"ts\":\"", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", ts, absl::UTCTimeZone()),
        "\",\"level\":\"", spdlog::level::to_string_view(msg.level).data(), "\",\"logger\":\"",
        JsonEscape(absl::string_view(msg.logger_name.data(), msg.logger_name.size())),
        "\",\"msg\":\"", JsonEscape(absl::string_view(msg.payload.data(), msg.payload.size())),
        "\"}\n");
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

absl::Status ParseLogFormat(absl::string_view text, LogFormat* format) {
  if (text == "text") {
    *format = LogFormat::kText;
  } else if (text == "json") {
    *format = LogFormat::kJson;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("log format '", text, "' is not one of: text, json"));
  }
  return absl::OkStatus();
}

absl::Status InitLogging(absl::string_view program, LogFormat format, absl::string_view level) {
  spdlog::level::level_enum parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(absl::StrCat(
        "log level '", level, "' is not one of: trace, debug, info, warn, error, off"));
  }
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>(std::string(program), sink);
  if (format == LogFormat::kJson) {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %n: %v");
  }
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  spdlog::set_level(parsed);
  return absl::OkStatus();
}

}  // namespace pghaul
