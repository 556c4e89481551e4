// `pghaul agents` and `pghaul agents show ID`: ask the controller, format the answer.
//
// Each command returns the text for stdout, or a Status whose message is the one line for
// stderr (without the "pghaul: " prefix) and whose code picks the exit status (exit_codes.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "cli/controller_client.h"
#include "cli/json_output.h"

namespace pghaul::cli {

// Lists every agent sorted by id: a table (agent_table.h), or the ListAgentsResponse as JSON
// ({"agents":[...]}). Errors: those of ControllerClient::ListAgents.
absl::StatusOr<std::string> RunListAgents(ControllerClient& client, OutputFormat format,
                                          absl::Time now);

// Shows one agent: every fact as grouped "Key: value" lines, or the AgentInfo as JSON. With
// `task_limit`, also the agent's newest tasks (at most that many): a "Recent tasks" table after
// the facts, or JSON {"agent": AgentInfo, "tasks": [TaskInfo...]} instead of the bare AgentInfo.
// Errors: InvalidArgument for an empty id; NotFound ("no agent 'x' is registered; ...") when the
// controller does not know the id; otherwise those of ControllerClient::GetAgent and ListTasks.
absl::StatusOr<std::string> RunShowAgent(ControllerClient& client, absl::string_view agent_id,
                                         OutputFormat format, absl::Time now,
                                         std::optional<uint32_t> task_limit = std::nullopt);

}  // namespace pghaul::cli
