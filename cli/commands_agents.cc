#include "cli/commands_agents.h"

#include <algorithm>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/agent_table.h"
#include "cli/task_table.h"
#include "common/status_macros.h"

namespace pghaul::cli {

absl::StatusOr<std::string> RunListAgents(ControllerClient& client, OutputFormat format,
                                          absl::Time now) {
  PGH_ASSIGN_OR_RETURN(v1::ListAgentsResponse response, client.ListAgents());
  // Sorted for JSON too, so that scripts diffing two runs see only real changes.
  std::sort(
      response.mutable_agents()->begin(), response.mutable_agents()->end(),
      [](const v1::AgentInfo& a, const v1::AgentInfo& b) { return a.agent_id() < b.agent_id(); });
  if (format == OutputFormat::kJson) return MessageToJson(response);
  return FormatAgentTable(response, now);
}

absl::StatusOr<std::string> RunShowAgent(ControllerClient& client, absl::string_view agent_id,
                                         OutputFormat format, absl::Time now,
                                         std::optional<uint32_t> task_limit) {
  if (agent_id.empty()) {
    return absl::InvalidArgumentError(
        "the agent id is empty; `pghaul agents` lists the known ones");
  }
  absl::StatusOr<v1::AgentInfo> agent = client.GetAgent(agent_id);
  if (absl::IsNotFound(agent.status())) {
    return absl::NotFoundError(
        absl::StrCat("no agent '", Printable(agent_id),
                     "' is registered; `pghaul agents` lists the known ones"));
  }
  if (!agent.ok()) return agent.status();
  if (!task_limit.has_value()) {
    if (format == OutputFormat::kJson) return MessageToJson(*agent);
    return FormatAgentDetails(*agent, now);
  }

  PGH_ASSIGN_OR_RETURN(v1::ListTasksResponse tasks, client.ListTasks(agent_id, *task_limit));
  if (format == OutputFormat::kJson) {
    PGH_ASSIGN_OR_RETURN(std::string agent_json, MessageToJsonObject(*agent));
    std::vector<std::string> task_json;
    for (const v1::TaskInfo& task : tasks.tasks()) {
      PGH_ASSIGN_OR_RETURN(task_json.emplace_back(), MessageToJsonObject(task));
    }
    return absl::StrCat("{\"agent\":", agent_json, ",\"tasks\":[", absl::StrJoin(task_json, ","),
                        "]}\n");
  }
  std::string out = FormatAgentDetails(*agent, now);
  absl::StrAppend(&out, "\nRecent tasks (newest first)\n");
  if (tasks.tasks().empty()) {
    absl::StrAppend(&out, "  (none)\n");
  } else {
    absl::StrAppend(&out, FormatTaskTable(tasks.tasks(), now, /*show_agent=*/false, "  "));
  }
  return out;
}

}  // namespace pghaul::cli
