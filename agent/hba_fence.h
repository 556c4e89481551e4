// The hard part of the source's fence: a block of `reject` lines at the top of the server's
// pg_hba.conf, so that nothing but the agent's own role can open a new session while the
// cutover runs. A read-only default alone is not a fence: any session can
// `SET transaction_read_only = off` and write a transaction that would then be lost.
//
// The block, marked with the migration id so that UNFENCE removes exactly what FENCE added:
//
//   # BEGIN pghaul fence m1: ... (an explanation, one line)
//   local all "app" reject              one line per other login role (pg_hba has no negation)
//   local all "report" reject
//   host all all all reject             every TCP login, the agent's role too (it only ever
//   local replication all reject        uses the Unix socket) and every replication session
//   host replication all all reject
//   # END pghaul fence m1
//
// pg_hba.conf is read top down and the first matching line decides, so lines put first win
// over whatever the file allowed before. The agent's own role keeps the file's own lines for
// `local` connections, so its authentication method is untouched.
//
// The text functions are pure (tested without a server); the file functions keep the file's
// owner and mode and replace it atomically (temporary file, fsync, rename, fsync of the
// directory), so the server never reads a half-written file.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pghaul::agent {

// The role as one pg_hba.conf token: always in double quotes, so keywords (all, sameuser,
// replication) and the + and @ prefixes lose their meaning and commas and spaces stay inside.
// Errors: InvalidArgument for an empty name, or one holding a double quote or a control
// character (pg_hba.conf cannot name such a role reliably).
absl::StatusOr<std::string> QuoteHbaRole(absl::string_view role);

// The fence block for `migration_id` (already validated by the caller) rejecting
// `rejected_roles` on the Unix socket, and every TCP and replication login. Ends with '\n'.
// Errors: those of QuoteHbaRole, naming the role.
absl::StatusOr<std::string> HbaFenceBlock(absl::string_view migration_id,
                                          const std::vector<std::string>& rejected_roles);

// Whether `hba` holds the fence block of `migration_id`.
bool HasHbaFence(absl::string_view hba, absl::string_view migration_id);

// `hba` with the fence block of `migration_id` at the very top. An earlier block of the same
// migration is removed first, so fencing twice leaves one block (with the current roles).
// Errors: those of HbaFenceBlock and RemoveHbaFence.
absl::StatusOr<std::string> AddHbaFence(absl::string_view hba, absl::string_view migration_id,
                                        const std::vector<std::string>& rejected_roles);

// `hba` without the fence block of `migration_id` (its lines from the BEGIN marker through the
// END marker, newline included), and every other byte as it was; `hba` unchanged when there is
// no block. `removed`, when not null, says whether there was one.
// Errors: DataLoss when the BEGIN marker has no END marker after it (the block was edited by
// hand: nothing is removed, so nothing else is lost).
absl::StatusOr<std::string> RemoveHbaFence(absl::string_view hba, absl::string_view migration_id,
                                           bool* removed = nullptr);

// Replaces the file at `path` (symbolic links followed) with `contents`, keeping its owner,
// group and permission bits: a temporary file of a unique name in the same directory, created
// O_EXCL | O_NOFOLLOW, fsync, rename, fsync of the directory. `path` comes from the server
// (SHOW hba_file), not from a task. Errors: NotFound or PermissionDenied or Internal naming the
// path and errno; FailedPrecondition when it is not a regular file.
absl::Status ReplaceFileKeepingOwner(const std::string& path, absl::string_view contents);

}  // namespace pghaul::agent
