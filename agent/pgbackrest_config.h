// The pgBackRest configuration that the agent owns: one file per migration at
// <state_dir>/pgbackrest/<migration_id>/pgbackrest.conf, next to that migration's own log, lock
// and spool directories, so two migrations (or two hosts sharing a repository filesystem) never
// share a lock or a log.
//
// Secrets (S3 keys, the cipher passphrase) are not in pgbackrest.conf. They are in
// <migration dir>/conf.d/secrets.conf (directory 0700, file 0600, owned by the database's OS
// user), which every pgBackRest command line of the migration reads through
// --config-include-path. They must be on disk because PostgreSQL runs pgBackRest by itself,
// whenever it wants and whether the agent runs or not: the source's archive_command
// (archive-push) and the restored target's restore_command (archive-get, which pgBackRest's
// restore writes with the options of its own command line). The children the agent starts also
// get them in their environment (PGBACKREST_REPO1_*, from the SecretStore), which changes nothing
// as the values are the same.
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
#include "agent/path_confinement.h"
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
  // Repository paths and CA/certificate files named by tasks must lie inside one of these
  // (TaskPathConfinement).
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

// Where the paths a task names may lie (agent/path_confinement.h): inside env.allowed_roots once
// links are resolved, and never inside the data directory (pg_path) or the agent's own
// <state_dir>/pgbackrest and <state_dir>/tasks, even when a root holds them (the default root is
// state_dir itself).
PathConfinement TaskPathConfinement(const PgBackRestEnvironment& env);

// <state_dir>/pgbackrest/<migration_id>
std::string MigrationDirectory(const PgBackRestEnvironment& env, absl::string_view migration_id);
// <state_dir>/pgbackrest/<migration_id>/pgbackrest.conf
std::string ConfigPath(const PgBackRestEnvironment& env, absl::string_view migration_id);
// <state_dir>/pgbackrest/<migration_id>/lock (pgBackRest's lock-path)
std::string LockPath(const PgBackRestEnvironment& env, absl::string_view migration_id);
// <state_dir>/pgbackrest/<migration_id>/log (pgBackRest's log-path)
std::string LogPath(const PgBackRestEnvironment& env, absl::string_view migration_id);
// <state_dir>/pgbackrest/<migration_id>/conf.d: pgBackRest's config-include-path for the
// migration. Always exists once the migration is configured (pgBackRest 2.45 fails with error 073
// when an explicit include path is missing), holding secrets.conf or nothing.
std::string ConfigIncludePath(const PgBackRestEnvironment& env, absl::string_view migration_id);
// <state_dir>/pgbackrest/<migration_id>/conf.d/secrets.conf
std::string SecretsConfigPath(const PgBackRestEnvironment& env, absl::string_view migration_id);

// Validates `task` (every field against its grammar, paths with TaskPathConfinement, secrets
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
// secret); FailedPrecondition when a path the task names cannot be resolved (a link to nothing).
absl::StatusOr<std::string> RenderPgBackRestConfig(const PgBackRestEnvironment& env,
                                                   const v1::ConfigurePgBackRest& task);

// Renders and writes the config (atomically, mode 0600), creates the migration's log, lock and
// spool directories (0750) and writes or removes its secrets (WriteSecretsConfig); with
// env.run_as_uid set, chowns all of them (and <state_dir>/pgbackrest) to that user. Returns the
// config's path. Errors: those of RenderPgBackRestConfig and WriteSecretsConfig;
// FailedPrecondition when a directory below state_dir is a symbolic link (nothing is created
// through it); Internal/PermissionDenied naming the path that could not be written.
absl::StatusOr<std::string> WritePgBackRestConfig(const PgBackRestEnvironment& env,
                                                  const v1::ConfigurePgBackRest& task);

// The text of secrets.conf: a comment, then [global] with repo1-s3-key, repo1-s3-key-secret and
// repo1-cipher-pass, only the non-empty ones (pgBackRest 2.45 ignores those its repository type
// does not use); "" when all are empty. Errors: InvalidArgument naming the secret (never its
// value) when it cannot be an INI value: a NUL, CR or LF anywhere, or whitespace at either end
// (pgBackRest trims values read from a file, so the archiver would use another secret than the
// agent's children).
absl::StatusOr<std::string> RenderSecretsConfig(const v1::Secrets& secrets);

// Creates ConfigIncludePath (and forces it to mode 0700) and, when `secrets` holds any, writes
// SecretsConfigPath: a temporary file in the same directory (whose name does not end in .conf,
// so pgBackRest never reads it half-written), mode exactly 0600 and with env.run_as_uid set
// chowned before it holds anything, fsync, rename over the old file (whatever that one's mode
// was), fsync of the directory. Without secrets the file (and any temporary left by a crash) is
// removed and the directory stays, empty. Errors: those of RenderSecretsConfig;
// FailedPrecondition when conf.d is not a directory (e.g. a symlink); Internal/PermissionDenied
// naming the path that could not be written, chowned or removed.
absl::Status WriteSecretsConfig(const PgBackRestEnvironment& env, absl::string_view migration_id,
                                const v1::Secrets& secrets);

// The secrets as child environment entries ("PGBACKREST_REPO1_S3_KEY=..."), only the non-empty
// ones: PGBACKREST_REPO1_S3_KEY, PGBACKREST_REPO1_S3_KEY_SECRET, PGBACKREST_REPO1_CIPHER_PASS.
std::vector<std::string> SecretEnvironment(const v1::Secrets& secrets);

// What the ConfigurePgBackRest step leaves for later commands of the same migration.
struct ConfiguredMigration {
  std::string stanza;
  v1::Secrets secrets;
  std::string new_stanza;  // "" when none (ConfigurePgBackRest.new_stanza)
  std::string posix_repo_path;  // the posix repository's path; "" for other kinds
};

// Checks the task-named paths of a configured migration again (TaskPathConfinement), before a
// later task uses them: a link inside a root may have been swapped in since ConfigurePgBackRest
// was accepted. Only the posix repository path is kept to check; CA and certificate files are
// only read. Errors: those of PathConfinement::Check, saying the path was checked again.
absl::Status RecheckConfiguredPaths(const PgBackRestEnvironment& env,
                                    const ConfiguredMigration& configured);

// Migration id -> its stanza and secrets, in memory (an agent restart forgets them and the
// controller must send ConfigurePgBackRest again; secrets.conf on disk is for PostgreSQL's own
// archive and restore commands). Thread-safe.
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
