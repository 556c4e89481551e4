// Fuzzes the YAML configuration parsers of both daemons (agent/agent_config.h,
// controller/controller_config.h, over common/config_reader.h): each input is given to both.
// They must return a configuration or InvalidArgument, never crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "agent/agent_config.h"
#include "controller/controller_config.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  pghaul::fuzz::QuietLogging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view yaml(reinterpret_cast<const char*>(data), size);

  absl::StatusOr<pghaul::agent::AgentConfig> agent =
      pghaul::agent::ParseAgentConfig(yaml, "agent.yaml");
  if (!agent.ok() && !absl::IsInvalidArgument(agent.status())) std::abort();
  if (agent.ok()) {
    (void)agent->postgres.ConnInfo();
    // Documented: roots default to state_dir, so an accepted configuration always has one.
    if (agent->roots.empty()) std::abort();
  }

  absl::StatusOr<pghaul::controller::ControllerConfig> controller =
      pghaul::controller::ParseControllerConfig(yaml, "controller.yaml");
  if (!controller.ok() && !absl::IsInvalidArgument(controller.status())) std::abort();
  if (controller.ok() && !pghaul::controller::IsValidControllerId(controller->controller_id)) {
    std::abort();
  }
  return 0;
}
