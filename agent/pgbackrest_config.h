// The pgBackRest configuration that the agent owns: one file per migration at
// <state_dir>/pgbackrest/<migration_id>/pgbackrest.conf, next to that migration's own log, lock
// and spool directories, so two migrations (or two hosts sharing a repository filesystem) never
// share a lock or a log.
//
// Secrets (S3 keys, the cipher passphrase) are never written: pgBackRest gets them from the
// child's environment (PGBACKREST_REPO1_S3_KEY, ...), and the agent keeps them in memory only, in
// a SecretStore, for as long as it runs.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "pghaul/v1/tasks.pb.h"

namespace pghaul::agent {

// What the agent knows about its host, filled from the agent's own configuration (never from a
// task).
struct PgBackRestEnvironment {
  std::string binary = "/usr/bin/pgbackrest";  // absolute
  std::string state_dir;                       // absolute; configs under <state_dir>/pgbackrest/
  std::string pg_path;                         // the local data directory (pg1-path)
  int pg_port = 5432;
  std::string pg_socket_path = "/var/run/postgresql";
  std::string pg_user = "postgres";
  // Repository paths and CA/certificate files named by tasks must lie inside one of these.
  std::vector<std::string> allowed_roots;

  // For tests and for agents started as root only: an argv prefix that runs pgBackRest as the
  // database user (e.g. {"/usr/sbin/runuser", "-u", "postgres", "--"}), and the uid/gid that then
  // must own the migration's directories and config file so that user (and PostgreSQL's
  // archive_command) can use them. Empty / -1: pgBackRest runs as the agent's own user, which
  // owns the files.
  std::vector<std::string> run_as_prefix;
  uid_t run_as_uid = static_cast<uid_t>(-1);
  gid_t run_as_gid = static_cast<gid_t>(-1);
};

// Checks the environment itself (absolute normalized paths, port, user name). Errors:
// InvalidArgument naming the field; these are agent configuration errors, not task errors.
absl::Status ValidateEnvironment(const PgBackRestEnvironment& env);

// <state_dir>/pgbackrest/<migration_id>
std::string MigrationDirectory(const PgBackRestEnvironment& env, absl::string_view migration_id);
// <state_dir>/pgbackrest/<migration_id>/pgbackrest.conf
std::string ConfigPath(const PgBackRestEnvironment& env, absl::string_view migration_id);
// <state_dir>/pgbackrest/<migration_id>/lock (pgBackRest's lock-path)
std::string LockPath(const PgBackRestEnvironment& env, absl::string_view migration_id);
// <state_dir>/pgbackrest/<migration_id>/log (pgBackRest's log-path)
std::string LogPath(const PgBackRestEnvironment& env, absl::string_view migration_id);

// Validates `task` (every field against its grammar, paths against env.allowed_roots, secrets
// present where the repository needs them) and renders the INI text. The text holds no secret.
//
// [global] carries the repository (repo1-*), log-path, lock-path and spool-path under the
// migration directory, log-level-file=detail, log-level-console=info, start-fast=y, process-max,
// compress-type and archive-async. [global:backup] and [global:restore] raise the console level
// to detail, which prints the per-file "(size, pct%)" lines that progress comes from, without
// making archive-push (run by PostgreSQL for every WAL segment) chatty: [global:archive-push] and
// [global:archive-get] keep the console at warn. [<stanza>] has pg1-path, pg1-port,
// pg1-socket-path and pg1-user from `env`.
//
// Errors: InvalidArgument saying which field is wrong and what was expected (never echoing a
// secret).
absl::StatusOr<std::string> RenderPgBackRestConfig(const PgBackRestEnvironment& env,
                                                   const v1::ConfigurePgBackRest& task);

// Renders and writes the config (atomically, mode 0600) and creates the migration's log, lock and
// spool directories (0750); with env.run_as_uid set, chowns all of them (and
// <state_dir>/pgbackrest) to that user. Returns the config's path. Errors: those of
// RenderPgBackRestConfig; Internal/PermissionDenied naming the path that could not be written.
absl::StatusOr<std::string> WritePgBackRestConfig(const PgBackRestEnvironment& env,
                                                  const v1::ConfigurePgBackRest& task);

// The secrets as child environment entries ("PGBACKREST_REPO1_S3_KEY=..."), only the non-empty
// ones: PGBACKREST_REPO1_S3_KEY, PGBACKREST_REPO1_S3_KEY_SECRET, PGBACKREST_REPO1_CIPHER_PASS.
std::vector<std::string> SecretEnvironment(const v1::Secrets& secrets);

// What the ConfigurePgBackRest step leaves for later commands of the same migration.
struct ConfiguredMigration {
  std::string stanza;
  v1::Secrets secrets;
};

// Migration id -> its stanza and secrets, in memory only (an agent restart forgets them and the
// controller must send ConfigurePgBackRest again). Thread-safe.
class SecretStore {
 public:
  void Put(absl::string_view migration_id, ConfiguredMigration configured);
  std::optional<ConfiguredMigration> Get(absl::string_view migration_id) const;
  void Erase(absl::string_view migration_id);

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, ConfiguredMigration, std::less<>> migrations_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pghaul::agent
