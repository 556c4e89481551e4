// Turns a Task from the controller into a validated executor: the agent's closed catalogue of
// operations. Anything not in the catalogue, or with a field that fails validation, is refused
// here, before anything runs.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "agent/agent_config.h"
#include "agent/pgbackrest_config.h"
#include "agent/task_manager.h"

namespace pghaul::agent {

// The pgBackRest environment the agent's configuration describes.
PgBackRestEnvironment PgBackRestEnvironmentFor(const AgentConfig& config);

// `config` must outlive the returned factory. Every path a task names (ConfigurePgBackRest's
// repository path, CA, certificate and key files) is checked with TaskPathConfinement before
// its executor is made, and the repository path again before each later pgBackRest command or
// ENABLE_ARCHIVING of its migration; a path outside the roots (also through a symbolic link) makes
// the factory refuse the task.
ExecutorFactory MakeExecutorFactory(const AgentConfig* config);

}  // namespace pghaul::agent
