// Logging for pghaul's processes, over spdlog.
//
// Daemons log JSON lines ({"ts":..,"level":..,"logger":..,"msg":..}) so logs can be shipped and
// searched; people get readable text. Logs go to stderr (systemd's journal picks them up).
// Never log a secret.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "spdlog/spdlog.h"

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
