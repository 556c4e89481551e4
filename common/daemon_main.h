// What pghaul-agent and pghaul-controller share at start-up: flags, logging, exit codes.
#pragma once

#include <functional>
#include <string>

namespace pghaul {

// Blocks the shutdown signals, parses `--config FILE` (default `default_config`) and
// `--version`, and calls `run(config_path)`. Returns the process exit code (sysexits): EX_USAGE
// for a bad flag, else what `run` returns.
int DaemonMain(int argc, char** argv, const std::string& description,
               const std::string& default_config,
               const std::function<int(const std::string&)>& run);

// Installs the process logger from the config's log.format and log.level. Returns 0, or
// EX_CONFIG after printing one line naming `program` and the problem to stderr.
int StartDaemonLogging(const std::string& program, const std::string& logger_name,
                       const std::string& format, const std::string& level);

}  // namespace pghaul
