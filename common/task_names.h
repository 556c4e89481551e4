// Names and ids of tasks, shared by the agent (which runs them) and the controller (which
// journals them).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "pghaul/v1/agent_link.pb.h"

namespace pghaul {

// The pgBackRest command a PgBackRestCommand runs ("backup", "stanza-create", ...); "" if none.
std::string PgBackRestCommandName(const v1::PgBackRestCommand& command);

// "pgbackrest backup", "sql SWITCH_WAL", ...: a short, secret-free name of a task's operation.
std::string DescribeOperation(const v1::Task& task);

// Task ids: 1 to 64 characters of [A-Za-z0-9_.-], not starting with '.' or '-' (they name files
// in the agent's state directory).
absl::Status ValidateTaskId(absl::string_view task_id);

}  // namespace pghaul
