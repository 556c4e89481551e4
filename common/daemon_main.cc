#include "common/daemon_main.h"

#include <sysexits.h>

#include <iostream>

#include "CLI/CLI.hpp"
#include "common/logging.h"
#include "common/signals.h"
#include "common/version.h"

namespace pghaul {

int DaemonMain(int argc, char** argv, const std::string& description,
               const std::string& default_config,
               const std::function<int(const std::string&)>& run) {
  BlockShutdownSignals();
  CLI::App app{description};
  std::string config_path = default_config;
  app.add_option("-c,--config", config_path, "configuration file (YAML)")->capture_default_str();
  app.set_version_flag("--version", std::string(kPghaulVersion));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? EX_OK : EX_USAGE;
  }
  return run(config_path);
}

int StartDaemonLogging(const std::string& program, const std::string& logger_name,
                       const std::string& format, const std::string& level) {
  LogFormat parsed = LogFormat::kJson;
  absl::Status status = ParseLogFormat(format, &parsed);
  if (status.ok()) status = InitLogging(logger_name, parsed, level);
  if (status.ok()) return 0;
  std::cerr << program << ": " << status.message() << "\n";
  return EX_CONFIG;
}

}  // namespace pghaul
