#include "agent/pgbackrest_config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/path_confinement.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/validators.h"

namespace pghaul::agent {
namespace {

constexpr uint32_t kMaxRetentionFull = 9999999;  // pgBackRest 2.45's upper bound

absl::Status Annotated(absl::Status status, absl::string_view context) {
  return Annotate(status, context);
}

constexpr char kSecretsFileName[] = "secrets.conf";
// Temporaries are "secrets.conf.tmp.XXXXXX": not "*.conf", so pgBackRest never reads one.
constexpr char kSecretsTempInfix[] = ".tmp.";  // as WriteFileAtomicallyWith names its temporaries

// Secrets are checked without ever echoing them. They must survive both an environment variable
// (no NUL) and a line of secrets.conf (no line break; pgBackRest trims whitespace around values).
absl::Status ValidateSecret(absl::string_view value, absl::string_view name) {
  if (absl::StrContains(value, '\0')) {
    return absl::InvalidArgumentError(
        absl::StrCat("secret ", name, " contains a NUL byte, which no environment can carry"));
  }
  if (absl::StrContains(value, '\n') || absl::StrContains(value, '\r')) {
    return absl::InvalidArgumentError(absl::StrCat(
        "secret ", name,
        " contains a line break, which pgBackRest's configuration file (read by PostgreSQL's "
        "archive_command and restore_command) cannot hold"));
  }
  if (!value.empty() && (absl::ascii_isspace(static_cast<unsigned char>(value.front())) ||
                         absl::ascii_isspace(static_cast<unsigned char>(value.back())))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "secret ", name,
        " starts or ends with whitespace, which pgBackRest drops when it reads the secret from "
        "its configuration file (as PostgreSQL's archive_command and restore_command do)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateSecrets(const v1::Secrets& secrets) {
  PGH_RETURN_IF_ERROR(ValidateSecret(secrets.s3_key(), "s3_key"));
  PGH_RETURN_IF_ERROR(ValidateSecret(secrets.s3_key_secret(), "s3_key_secret"));
  return ValidateSecret(secrets.cipher_pass(), "cipher_pass");
}

absl::Status RequireSecret(absl::string_view value, absl::string_view name, absl::string_view why) {
  if (value.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("secret ", name, " is required ", why, " but the task has none"));
  }
  return absl::OkStatus();
}

class IniWriter {
 public:
  void Section(absl::string_view name) {
    if (!text_.empty()) text_ += "\n";
    absl::StrAppend(&text_, "[", name, "]\n");
  }
  void Set(absl::string_view key, absl::string_view value) {
    absl::StrAppend(&text_, key, "=", value, "\n");
  }
  void Comment(absl::string_view comment) { absl::StrAppend(&text_, "# ", comment, "\n"); }
  std::string Take() { return std::move(text_); }

 private:
  std::string text_;
};

// Every value was validated against a grammar without control characters; this guards the INI
// structure itself should a future field skip validation.
absl::Status CheckIniSafe(absl::string_view text) {
  for (char c : text) {
    if (c == '\0' || c == '\r') {
      return absl::InternalError("rendered pgBackRest config holds a control character");
    }
  }
  return absl::OkStatus();
}

absl::Status RenderRepository(const PgBackRestEnvironment& env, const v1::RepositorySpec& repo,
                              const v1::Secrets& secrets, IniWriter& ini) {
  switch (repo.kind_case()) {
    case v1::RepositorySpec::kPosix: {
      const std::string& path = repo.posix().path();
      PGH_RETURN_IF_ERROR(TaskPathConfinement(env).Check(path, "repository path").status());
      if (!repo.path().empty() && repo.path() != path) {
        return absl::InvalidArgumentError(
            "repository.path and repository.posix.path differ: for a posix repository give the "
            "path once, in repository.posix.path");
      }
      ini.Set("repo1-type", "posix");
      ini.Set("repo1-path", path);
      break;
    }
    case v1::RepositorySpec::kS3: {
      const v1::S3Repository& s3 = repo.s3();
      PGH_RETURN_IF_ERROR(ValidateAbsolutePath(repo.path(), "repository path (inside the bucket)"));
      PGH_RETURN_IF_ERROR(ValidateS3Endpoint(s3.endpoint()));
      PGH_RETURN_IF_ERROR(ValidateS3Bucket(s3.bucket()));
      PGH_RETURN_IF_ERROR(ValidateS3Region(s3.region()));
      if (!s3.uri_style().empty()) PGH_RETURN_IF_ERROR(ValidateUriStyle(s3.uri_style()));
      if (s3.port() != 0) PGH_RETURN_IF_ERROR(ValidatePort(s3.port(), "S3 port"));
      if (!s3.ca_file().empty()) {
        PGH_RETURN_IF_ERROR(TaskPathConfinement(env).Check(s3.ca_file(), "S3 CA file").status());
      }
      PGH_RETURN_IF_ERROR(RequireSecret(secrets.s3_key(), "s3_key", "for an S3 repository"));
      PGH_RETURN_IF_ERROR(
          RequireSecret(secrets.s3_key_secret(), "s3_key_secret", "for an S3 repository"));
      ini.Set("repo1-type", "s3");
      ini.Set("repo1-path", repo.path());
      ini.Set("repo1-s3-endpoint", s3.endpoint());
      ini.Set("repo1-s3-bucket", s3.bucket());
      ini.Set("repo1-s3-region", s3.region());
      if (!s3.uri_style().empty()) ini.Set("repo1-s3-uri-style", s3.uri_style());
      if (s3.port() != 0) ini.Set("repo1-storage-port", absl::StrCat(s3.port()));
      ini.Set("repo1-storage-verify-tls", s3.skip_tls_verify() ? "n" : "y");
      if (!s3.ca_file().empty()) ini.Set("repo1-storage-ca-file", s3.ca_file());
      break;
    }
    case v1::RepositorySpec::kHost: {
      const v1::RepositoryHost& host = repo.host();
      PGH_RETURN_IF_ERROR(ValidateAbsolutePath(repo.path(), "repository path (on the host)"));
      PGH_RETURN_IF_ERROR(ValidateHostName(host.host(), "repository host"));
      if (IsIpv4Address(host.host())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "repository host '", host.host(),
            "' is an IP address: pgBackRest 2.45 does not match IP addresses in TLS certificates; "
            "give the DNS name in the repository host's certificate"));
      }
      if (host.port() != 0) PGH_RETURN_IF_ERROR(ValidatePort(host.port(), "repository host port"));
      if (host.cert_file().empty() || host.key_file().empty()) {
        return absl::InvalidArgumentError(
            "a TLS repository host needs repository.host.cert_file and repository.host.key_file "
            "(the client certificate pgBackRest presents)");
      }
      const PathConfinement confinement = TaskPathConfinement(env);
      PGH_RETURN_IF_ERROR(
          confinement.Check(host.cert_file(), "repository host cert file").status());
      PGH_RETURN_IF_ERROR(confinement.Check(host.key_file(), "repository host key file").status());
      if (!host.ca_file().empty()) {
        PGH_RETURN_IF_ERROR(confinement.Check(host.ca_file(), "repository host CA file").status());
      }
      ini.Set("repo1-host", host.host());
      ini.Set("repo1-host-type", "tls");
      if (host.port() != 0) ini.Set("repo1-host-port", absl::StrCat(host.port()));
      if (!host.ca_file().empty()) ini.Set("repo1-host-ca-file", host.ca_file());
      ini.Set("repo1-host-cert-file", host.cert_file());
      ini.Set("repo1-host-key-file", host.key_file());
      ini.Set("repo1-path", repo.path());
      break;
    }
    case v1::RepositorySpec::KIND_NOT_SET:
      return absl::InvalidArgumentError(
          "repository: exactly one of posix, s3 or host must be given");
  }

  if (repo.retention_full() != 0) {
    if (repo.retention_full() > kMaxRetentionFull) {
      return absl::InvalidArgumentError(absl::StrCat("repository.retention_full ",
                                                     repo.retention_full(),
                                                     " is invalid: expected 1 to 9999999"));
    }
    ini.Set("repo1-retention-full", absl::StrCat(repo.retention_full()));
  }
  if (!repo.cipher_type().empty()) {
    PGH_RETURN_IF_ERROR(ValidateCipherType(repo.cipher_type()));
    if (repo.cipher_type() != "none") {
      PGH_RETURN_IF_ERROR(
          RequireSecret(secrets.cipher_pass(), "cipher_pass", "for an encrypted repository"));
      ini.Set("repo1-cipher-type", repo.cipher_type());
    }
  }
  return absl::OkStatus();
}

// lchown: the path was checked not to be a link, and a link swapped in since is not followed.
absl::Status Chown(const std::string& path, const PgBackRestEnvironment& env) {
  if (env.run_as_uid == static_cast<uid_t>(-1)) return absl::OkStatus();
  if (lchown(path.c_str(), env.run_as_uid, env.run_as_gid) != 0) {
    int err = errno;
    return absl::PermissionDeniedError(absl::StrCat("cannot chown '", path, "' to ", env.run_as_uid,
                                                    ":", env.run_as_gid, ": ",
                                                    strerrordesc_np(err)));
  }
  return absl::OkStatus();
}

absl::Status ErrnoStatus(absl::string_view what, const std::string& path, int err) {
  std::string message = absl::StrCat(what, " '", path, "': ", strerrordesc_np(err));
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

// fsync of a directory, so that a rename or unlink in it survives a crash.
absl::Status SyncDirectory(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot open directory", dir, errno);
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0) return ErrnoStatus("cannot fsync directory", dir, err);
  return absl::OkStatus();
}

// conf.d, created if missing and forced to 0700 and the run-as owner if it was there already.
// Neither it nor a directory between state_dir and it may be a link.
absl::Status MakePrivateDirectory(const std::string& dir, const PgBackRestEnvironment& env) {
  PGH_RETURN_IF_ERROR(MakeDirectoriesBelow(env.state_dir, dir, 0700));
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) return ErrnoStatus("cannot stat", dir, errno);
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "'", dir, "' is not a directory (a symbolic link?): remove it and configure again"));
  }
  if (chmod(dir.c_str(), 0700) != 0) return ErrnoStatus("cannot chmod", dir, errno);
  return Chown(dir, env);
}

// Writes `contents` to `path` (in `dir`) so that no other user can ever read it: the temporary
// is created 0600, made exactly that whatever the umask and given to the run-as user before
// anything is written; then fsync, rename, fsync of `dir`. Its name has kSecretsTempInfix, so a
// crash's leftover is found by RemoveSecretsFiles.
absl::Status WritePrivateFile(const std::string& path, absl::string_view contents,
                              const PgBackRestEnvironment& env) {
  AtomicWriteOptions options{.mode = 0600, .exact_mode = true, .sync_directory = true};
  if (env.run_as_uid != static_cast<uid_t>(-1)) {
    options.set_owner = true;
    options.uid = env.run_as_uid;
    options.gid = env.run_as_gid;
  }
  return WriteFileAtomicallyWith(path, contents, options);
}

// Removes secrets.conf and any temporary of it a crash left behind.
absl::Status RemoveSecretsFiles(const std::string& dir) {
  DIR* listing = opendir(dir.c_str());
  if (listing == nullptr) return ErrnoStatus("cannot list", dir, errno);
  const std::string temp_prefix = absl::StrCat(kSecretsFileName, kSecretsTempInfix);
  std::vector<std::string> doomed;
  while (dirent* entry = readdir(listing)) {
    absl::string_view name = entry->d_name;
    if (name == kSecretsFileName || absl::StartsWith(name, temp_prefix)) {
      doomed.push_back(absl::StrCat(dir, "/", name));
    }
  }
  closedir(listing);
  if (doomed.empty()) return absl::OkStatus();
  for (const std::string& path : doomed) {
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus("cannot remove", path, errno);
    }
  }
  return SyncDirectory(dir);
}

}  // namespace

absl::Status ValidateEnvironment(const PgBackRestEnvironment& env) {
  PGH_RETURN_IF_ERROR(ValidateAbsolutePath(env.binary, "pgbackrest binary"));
  PGH_RETURN_IF_ERROR(ValidateAbsolutePath(env.state_dir, "agent state directory"));
  PGH_RETURN_IF_ERROR(ValidateAbsolutePath(env.pg_path, "PostgreSQL data directory"));
  PGH_RETURN_IF_ERROR(ValidatePort(static_cast<uint32_t>(env.pg_port), "PostgreSQL port"));
  PGH_RETURN_IF_ERROR(ValidateAbsolutePath(env.pg_socket_path, "PostgreSQL socket directory"));
  PGH_RETURN_IF_ERROR(ValidatePostgresUser(env.pg_user));
  for (const std::string& root : env.allowed_roots) {
    PGH_RETURN_IF_ERROR(ValidateAbsolutePath(root, "allowed root"));
  }
  if (!env.run_as_prefix.empty()) {
    PGH_RETURN_IF_ERROR(ValidateAbsolutePath(env.run_as_prefix[0], "run-as program"));
  }
  return absl::OkStatus();
}

PathConfinement TaskPathConfinement(const PgBackRestEnvironment& env) {
  std::vector<ReservedArea> reserved = {
      {env.pg_path, "PostgreSQL's data directory"},
      {absl::StrCat(env.state_dir, "/pgbackrest"), "the agent's own pgBackRest configuration"},
      {absl::StrCat(env.state_dir, "/tasks"), "the agent's own task results"},
  };
  return PathConfinement(env.allowed_roots, std::move(reserved));
}

absl::Status RecheckConfiguredPaths(const PgBackRestEnvironment& env,
                                    const ConfiguredMigration& configured) {
  if (configured.posix_repo_path.empty()) return absl::OkStatus();
  absl::Status checked =
      TaskPathConfinement(env).Check(configured.posix_repo_path, "repository path").status();
  if (checked.ok()) return checked;
  return absl::Status(checked.code(),
                      absl::StrCat(checked.message(),
                                   " (checked again before this task: it was accepted when the "
                                   "migration was configured, and has changed since)"));
}

std::string MigrationDirectory(const PgBackRestEnvironment& env, absl::string_view migration_id) {
  return absl::StrCat(env.state_dir, "/pgbackrest/", migration_id);
}

std::string ConfigPath(const PgBackRestEnvironment& env, absl::string_view migration_id) {
  return absl::StrCat(MigrationDirectory(env, migration_id), "/pgbackrest.conf");
}

std::string LockPath(const PgBackRestEnvironment& env, absl::string_view migration_id) {
  return absl::StrCat(MigrationDirectory(env, migration_id), "/lock");
}

std::string LogPath(const PgBackRestEnvironment& env, absl::string_view migration_id) {
  return absl::StrCat(MigrationDirectory(env, migration_id), "/log");
}

std::string ConfigIncludePath(const PgBackRestEnvironment& env, absl::string_view migration_id) {
  return absl::StrCat(MigrationDirectory(env, migration_id), "/conf.d");
}

std::string SecretsConfigPath(const PgBackRestEnvironment& env, absl::string_view migration_id) {
  return absl::StrCat(ConfigIncludePath(env, migration_id), "/", kSecretsFileName);
}

absl::StatusOr<std::string> RenderPgBackRestConfig(const PgBackRestEnvironment& env,
                                                   const v1::ConfigurePgBackRest& task) {
  PGH_RETURN_IF_ERROR(Annotated(ValidateEnvironment(env), "agent configuration"));
  PGH_RETURN_IF_ERROR(ValidateMigrationId(task.migration_id()));
  PGH_RETURN_IF_ERROR(ValidateStanza(task.stanza()));
  if (!task.new_stanza().empty()) {
    PGH_RETURN_IF_ERROR(ValidateStanza(task.new_stanza()));
    if (task.new_stanza() == task.stanza()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the new stanza must differ from the migration's stanza '", task.stanza(),
          "': a promoted target must never archive into the source's stanza"));
    }
  }
  PGH_RETURN_IF_ERROR(ValidateSecrets(task.secrets()));
  uint32_t process_max = task.process_max() == 0 ? 1 : task.process_max();
  PGH_RETURN_IF_ERROR(ValidateProcessMax(process_max));
  std::string compress_type = task.compress_type().empty() ? "lz4" : task.compress_type();
  PGH_RETURN_IF_ERROR(ValidateCompressType(compress_type));

  const std::string dir = MigrationDirectory(env, task.migration_id());
  IniWriter ini;
  ini.Comment(absl::StrCat("Written by pghaul-agent for migration ", task.migration_id(),
                           ". Do not edit: ConfigurePgBackRest rewrites it."));
  ini.Comment(
      "Secrets are not here: they are in conf.d/secrets.conf (0600), read through "
      "--config-include-path.");
  ini.Section("global");
  PGH_RETURN_IF_ERROR(RenderRepository(env, task.repository(), task.secrets(), ini));
  ini.Set("log-path", absl::StrCat(dir, "/log"));
  ini.Set("lock-path", absl::StrCat(dir, "/lock"));
  ini.Set("spool-path", absl::StrCat(dir, "/spool"));
  ini.Set("log-level-file", "detail");
  ini.Set("log-level-console", "info");
  ini.Set("log-level-stderr", "warn");
  ini.Set("start-fast", "y");
  ini.Set("process-max", absl::StrCat(process_max));
  ini.Set("compress-type", compress_type);
  ini.Set("archive-async", task.archive_async() ? "y" : "n");

  // Per-file "(size, pct%)" lines: the source of progress.
  ini.Section("global:backup");
  ini.Set("log-level-console", "detail");
  ini.Section("global:restore");
  ini.Set("log-level-console", "detail");
  // PostgreSQL runs these for every WAL segment; their console output lands in its server log.
  ini.Section("global:archive-push");
  ini.Set("log-level-console", "warn");
  ini.Section("global:archive-get");
  ini.Set("log-level-console", "warn");

  // The new stanza (the promoted target's own) describes the same local cluster.
  for (const std::string& stanza : {task.stanza(), task.new_stanza()}) {
    if (stanza.empty()) continue;
    ini.Section(stanza);
    ini.Set("pg1-path", env.pg_path);
    ini.Set("pg1-port", absl::StrCat(env.pg_port));
    ini.Set("pg1-socket-path", env.pg_socket_path);
    ini.Set("pg1-user", env.pg_user);
  }

  std::string text = ini.Take();
  PGH_RETURN_IF_ERROR(CheckIniSafe(text));
  return text;
}

absl::StatusOr<std::string> WritePgBackRestConfig(const PgBackRestEnvironment& env,
                                                  const v1::ConfigurePgBackRest& task) {
  PGH_ASSIGN_OR_RETURN(std::string text, RenderPgBackRestConfig(env, task));
  const std::string base = absl::StrCat(env.state_dir, "/pgbackrest");
  const std::string dir = MigrationDirectory(env, task.migration_id());
  for (const std::string& path : {base, dir, absl::StrCat(dir, "/log"), absl::StrCat(dir, "/lock"),
                                  absl::StrCat(dir, "/spool")}) {
    // No link below state_dir: pgBackRest writes its logs, locks and spool there, and the
    // agent its config and secrets.
    PGH_RETURN_IF_ERROR(MakeDirectoriesBelow(env.state_dir, path, 0750));
    PGH_RETURN_IF_ERROR(Chown(path, env));
  }
  PGH_RETURN_IF_ERROR(WriteSecretsConfig(env, task.migration_id(), task.secrets()));
  const std::string path = ConfigPath(env, task.migration_id());
  PGH_RETURN_IF_ERROR(WriteFileAtomically(path, text, 0600));
  PGH_RETURN_IF_ERROR(Chown(path, env));
  return path;
}

absl::StatusOr<std::string> RenderSecretsConfig(const v1::Secrets& secrets) {
  PGH_RETURN_IF_ERROR(ValidateSecrets(secrets));
  if (secrets.s3_key().empty() && secrets.s3_key_secret().empty() &&
      secrets.cipher_pass().empty()) {
    return std::string();
  }
  IniWriter ini;
  ini.Comment(
      "Written by pghaul-agent: the repository secrets, for PostgreSQL's archive_command and "
      "restore_command.");
  ini.Comment(
      "Readable by the database's OS user only. ConfigurePgBackRest rewrites or removes it.");
  ini.Section("global");
  if (!secrets.s3_key().empty()) ini.Set("repo1-s3-key", secrets.s3_key());
  if (!secrets.s3_key_secret().empty()) ini.Set("repo1-s3-key-secret", secrets.s3_key_secret());
  if (!secrets.cipher_pass().empty()) ini.Set("repo1-cipher-pass", secrets.cipher_pass());
  std::string text = ini.Take();
  PGH_RETURN_IF_ERROR(CheckIniSafe(text));
  return text;
}

absl::Status WriteSecretsConfig(const PgBackRestEnvironment& env, absl::string_view migration_id,
                                const v1::Secrets& secrets) {
  PGH_RETURN_IF_ERROR(ValidateMigrationId(migration_id));
  PGH_ASSIGN_OR_RETURN(std::string text, RenderSecretsConfig(secrets));
  const std::string dir = ConfigIncludePath(env, migration_id);
  PGH_RETURN_IF_ERROR(MakePrivateDirectory(dir, env));
  if (text.empty()) return RemoveSecretsFiles(dir);
  return WritePrivateFile(SecretsConfigPath(env, migration_id), text, env);
}

std::vector<std::string> SecretEnvironment(const v1::Secrets& secrets) {
  std::vector<std::string> env;
  if (!secrets.s3_key().empty()) {
    env.push_back(absl::StrCat("PGBACKREST_REPO1_S3_KEY=", secrets.s3_key()));
  }
  if (!secrets.s3_key_secret().empty()) {
    env.push_back(absl::StrCat("PGBACKREST_REPO1_S3_KEY_SECRET=", secrets.s3_key_secret()));
  }
  if (!secrets.cipher_pass().empty()) {
    env.push_back(absl::StrCat("PGBACKREST_REPO1_CIPHER_PASS=", secrets.cipher_pass()));
  }
  return env;
}

void SecretStore::Put(absl::string_view migration_id, ConfiguredMigration configured) {
  absl::MutexLock lock(&mu_);
  migrations_[std::string(migration_id)] = std::move(configured);
}

std::optional<ConfiguredMigration> SecretStore::Get(absl::string_view migration_id) const {
  absl::MutexLock lock(&mu_);
  auto it = migrations_.find(migration_id);
  if (it == migrations_.end()) return std::nullopt;
  return it->second;
}

void SecretStore::Erase(absl::string_view migration_id) {
  absl::MutexLock lock(&mu_);
  auto it = migrations_.find(migration_id);
  if (it != migrations_.end()) migrations_.erase(it);
}

}  // namespace pghaul::agent
