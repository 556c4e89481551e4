// The agent never runs pgBackRest, SQL or pg_ctl as root: whoever controls the controller could
// otherwise act as root on the database host. Started as root, it either drops to the OS user its
// config names (`run_as`, normally the database's owner, e.g. postgres) before doing anything
// else, or refuses to start.
#pragma once

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pghaul::agent {

// What the process should do about its identity, decided from its effective uid and the config.
enum class PrivilegeAction {
  kKeep,  // not root, and run_as is empty or names the current user
  kDrop,  // root: switch to run_as
};

// Decides without side effects. `current_user` is the name of `euid` ("" when unknown).
// Errors: FailedPrecondition when root without run_as (or run_as: root), and when not root
// but run_as names another user (only root can switch); each message says how to fix it.
absl::StatusOr<PrivilegeAction> DecidePrivileges(uid_t euid, const std::string& current_user,
                                                 const std::string& run_as);

// Applies DecidePrivileges to this process: for kDrop, the supplementary groups, gid and uid
// of `run_as` (initgroups, setgid, setuid), then checks that root cannot be regained, and sets
// HOME and USER. Errors: FailedPrecondition from DecidePrivileges, NotFound for an unknown user,
// Internal when a system call fails.
absl::Status ApplyPrivileges(const std::string& run_as);

}  // namespace pghaul::agent
