// Logging for pghaul's processes, over spdlog.
//
// Daemons log JSON lines ({"ts":..,"level":..,"logger":..,"msg":..}) so logs can be shipped and
// searched; people get readable text. Logs go to stderr (systemd's journal picks them up).
// Never log a secret.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

// Debian's Abseil has its own absl::string_view (not std::string_view): teach fmt to print it,
// and absl::Status too, so log statements can take either directly.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view text, FormatContext& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(text.data(), text.size()),
                                                    ctx);
  }
};

template <>
struct fmt::formatter<absl::Status> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(const absl::Status& status, FormatContext& ctx) const {
    std::string text = status.ToString();
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(text), ctx);
  }
};

namespace pghaul {

enum class LogFormat { kText, kJson };

// Parses "text" or "json".
absl::Status ParseLogFormat(absl::string_view text, LogFormat* format);

// Installs the default logger for this process. `level` is one of trace, debug, info, warn,
// error; an unknown level is an InvalidArgument error naming the accepted ones.
absl::Status InitLogging(absl::string_view program, LogFormat format, absl::string_view level);

}  // namespace pghaul

#define PGH_LOG_TRACE(...) SPDLOG_TRACE(__VA_ARGS__)
#define PGH_LOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define PGH_LOG_INFO(...) SPDLOG_INFO(__VA_ARGS__)
#define PGH_LOG_WARN(...) SPDLOG_WARN(__VA_ARGS__)
#define PGH_LOG_ERROR(...) SPDLOG_ERROR(__VA_ARGS__)
