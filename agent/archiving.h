// ENABLE_ARCHIVING and RESTORE_ARCHIVING (tasks.proto): pointing the source's WAL archiving at
// the migration's stanza, and putting back what was there before.
//
// Lifecycle of one migration's archiving settings on the source:
//
//   ConfigurePgBackRest (the migration's config and stanza exist on this agent)
//        |
//   EnableArchiving: saves archive_mode and archive_command as found (once: a later call keeps
//        |           the first save) to <state_dir>/pgbackrest/<migration_id>/
//        |           archiving-before.json (0600), then ALTER SYSTEM SET archive_mode = on and
//        |           archive_command = '<pgbackrest> --config=... --config-include-path=...
//        |           --stanza=... archive-push %p', reload. archive_mode needs a restart to
//        |           change: restart_needed says so. The include path (conf.d) holds the
//        |           repository secrets, which PostgreSQL's archiver needs whether the agent
//        |           runs or not.
//        v
//   RestoreArchiving: for each setting, ALTER SYSTEM SET it back to the saved value when it came
//                     from postgresql.auto.conf before, or ALTER SYSTEM RESET it (so the value
//                     comes again from postgresql.conf or the default) when it did not; reload.
//                     The saved file stays, so a retried RESTORE does the same again and a later
//                     ENABLE keeps the original values.
//
// ALTER SYSTEM takes no bind parameters: every value goes into the statement as a literal quoted
// by libpq (PQescapeLiteral), never as raw text.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/agent_config.h"
#include "agent/pgbackrest_config.h"

namespace pghaul::agent {

// <state_dir>/pgbackrest/<migration_id>/archiving-before.json
std::string SavedArchivingPath(const PgBackRestEnvironment& env, absl::string_view migration_id);

// `<binary> --config=<config_path> --config-include-path=<config_include_path> --stanza=<stanza>
// archive-push %p`. PostgreSQL runs it through /bin/sh after expanding its %-escapes, so a word
// holding anything but [A-Za-z0-9_./=:,+-] is single-quoted for the shell, and every '%' of the
// paths is doubled. Only paths: the secrets stay in the file under the include path.
std::string ArchiveCommandFor(absl::string_view binary, absl::string_view config_path,
                              absl::string_view config_include_path, absl::string_view stanza);

// ENABLE_ARCHIVING for `migration_id`, whose pgBackRest config (ConfigPath) and include path
// (ConfigIncludePath) must exist and whose stanza is `stanza` (from the SecretStore). Values:
// restart_needed ("true" while the running archive_mode is neither on nor always),
// archive_mode_before, archive_command_before (the running values found by this call), changed
// ("false" when archive_command already was this one and archive_mode already on, so a second call
// before the restart says "true" again). An archive_mode of `always` is kept as it is. Errors:
//   InvalidArgument     a bad migration id or stanza, or a binary path that is not absolute.
//   FailedPrecondition  no config or include path for the migration; a symbolic link where the
//                       saved settings file or its directory should be; archive_library is set
//                       (pghaul archives through archive_command, which archive_library would
//                       override); the server refused ALTER SYSTEM (e.g. not a superuser); the new
//                       archive_command is not in effect after the reload; the settings are not
//                       visible to the agent's database user.
//   Unavailable, DeadlineExceeded, Internal: as RunSqlQuery; Internal/PermissionDenied when
//                       the saved settings cannot be written or read.
absl::StatusOr<std::map<std::string, std::string>> EnableArchiving(const PostgresConnection& conn,
                                                                   const PgBackRestEnvironment& env,
                                                                   absl::string_view migration_id,
                                                                   absl::string_view stanza);

// RESTORE_ARCHIVING for `migration_id`: needs only the saved file, so it works after an agent
// restart (when the stanza is no longer known). Values: restart_needed ("true" when the running
// archive_mode differs from the saved one, so putting it back waits for a restart). Errors:
//   NotFound            nothing was saved for the migration (ENABLE_ARCHIVING never ran here).
//   InvalidArgument     a bad migration id; DataLoss when the saved file cannot be parsed.
//   FailedPrecondition, Unavailable, DeadlineExceeded, Internal: as EnableArchiving.
absl::StatusOr<std::map<std::string, std::string>> RestoreArchiving(
    const PostgresConnection& conn, const PgBackRestEnvironment& env,
    absl::string_view migration_id);

}  // namespace pghaul::agent
