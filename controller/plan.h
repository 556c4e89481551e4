// A migration plan: the YAML file an operator writes to say what moves where
// (docs/plan.md describes every key). The controller parses and validates it before anything
// runs, so that a plan which reaches the phases is complete and self-consistent; facts that only
// the hosts know (is this really the target's data directory?) are checked later, in preflight.
//
// Secrets are never part of a plan. The plan names where they are (an environment variable of
// the controller, or a key in a secrets file), ResolveSecrets() fetches them when they are
// needed, and they then travel only inside ConfigurePgBackRest over the link. A plan that holds a
// key named `key`, `secret`, `passphrase` or `password` is refused without echoing its value.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pghaul/v1/tasks.pb.h"

namespace pghaul::controller {

// Where one secret comes from: exactly one of `env` or `file` (with `file_key`) is set.
struct SecretSource {
  std::string env;   // {env: NAME}: the controller's environment variable NAME
  std::string file;  // {file: PATH, key: NAME}: entry NAME of the YAML secrets file PATH
  std::string file_key;
  std::string plan_key;  // the plan key it was read from ("repository.s3.key_from"), for errors
};

enum class RepositoryKind { kPosix, kS3, kRepoHost };

struct PosixRepositoryPlan {
  std::string path;  // the repository directory (repo1-path), seen at the same path by both hosts
};

struct S3RepositoryPlan {
  std::string endpoint;  // DNS name or IPv4 address; pgBackRest 2.45 always uses HTTPS
  int port = 443;
  std::string bucket;
  std::string region;
  std::string uri_style = "host";  // host | path
  std::string path;                // repo1-path inside the bucket
  bool verify_tls = true;
  std::string ca_file;  // "" when unset
  SecretSource key_from;
  SecretSource secret_from;
};

struct RepoHostPlan {
  std::string host;  // a DNS name: pgBackRest 2.45 does not match IP addresses in certificates
  int port = 8432;
  std::string path;     // repo1-path on the repository host; clients must send the same one
  std::string ca_file;  // "" when unset: the system's CAs
  std::string cert_file;
  std::string key_file;
};

struct RepositoryPlan {
  RepositoryKind kind = RepositoryKind::kPosix;
  PosixRepositoryPlan posix;  // only the member named by `kind` is filled in
  S3RepositoryPlan s3;
  RepoHostPlan repo_host;
  int retention_full = 2;
  // pgBackRest archive-async for archive-push and archive-get. Off by default: each segment then
  // reaches the repository (and the standby) in one pgBackRest process, tens of milliseconds on
  // a fast repository, where the asynchronous queue's own waits add 0.2 to 0.5 s to the last
  // segment of a cutover. On for WAL rates one process per segment cannot keep up with.
  bool archive_async = false;
  std::string cipher_type = "none";                    // none | aes-256-cbc
  std::optional<SecretSource> cipher_passphrase_from;  // set exactly when aes-256-cbc
};

struct BackupPlan {
  int process_max = 1;                // 1..64
  std::string compress_type = "lz4";  // none | gz | lz4 | zst | bz2
  std::string type = "full";          // full | diff | incr
};

enum class FenceMethod {
  kReadOnly,  // hard read-only fence: new connections refused, sessions ended, read-only default
  kStop,      // the source is stopped cleanly (pg_ctl stop -m fast)
};

// An off-peak window, in local time of `zone`. When `end_minute` < `start_minute` the window
// spans midnight (22:00 to 04:00).
struct WindowPlan {
  int start_minute = 0;  // minutes after midnight, 0..1439
  int end_minute = 0;    // never equal to start_minute
  std::string timezone = "UTC";
  absl::TimeZone zone = absl::UTCTimeZone();

  // Whether `when` falls inside the window: start inclusive, end exclusive.
  bool Contains(absl::Time when) const;
};

struct CutoverPlan {
  uint64_t max_lag_bytes = 64 << 20;  // the target's replay lag below which the fence may begin
  absl::Duration max_downtime = absl::Seconds(30);  // abort (unfence) beyond this, before promote
  bool verify_checksums = true;
  // The stanza the promoted target archives into and takes its first full backup in, in the
  // same repository; never the source's stanza. Default: "<stanza>-new".
  std::string new_stanza;
};

struct Plan {
  std::string name;  // the migration id: ^[a-z0-9][a-z0-9_-]{0,62}$
  std::string source_agent;
  std::string target_agent;
  std::string target_data_directory;
  bool target_allow_overwrite = false;
  std::string stanza;
  RepositoryPlan repository;
  BackupPlan backup;
  bool source_restart_allowed = false;
  // A standby restore into a Patroni target may create Patroni's roles on the source
  // (docs/patroni.md); abort drops them.
  bool source_patroni_roles_allowed = false;
  FenceMethod fence = FenceMethod::kReadOnly;
  std::optional<WindowPlan> window;
  CutoverPlan cutover;
  std::vector<std::string> checks;  // absolute paths of application check SQL files
};

// Parses and validates the YAML text of a plan. `source_name` (usually the file's path) starts
// every error message. Errors: InvalidArgument listing every problem at once, each naming the
// full key path and what was expected (an unknown key with the known key it most resembles).
// A plan holding an inline secret is refused with only the secret problems, and never with the
// secret's value.
absl::StatusOr<Plan> ParsePlan(absl::string_view yaml, absl::string_view source_name);

// Reads the plan file at `path` and parses it. Errors: those of reading the file (naming the
// path), or of ParsePlan.
absl::StatusOr<Plan> LoadPlan(const std::string& path);

// Fetches the secrets the plan points at: environment variables through `env` (::getenv in the
// controller, a fake in tests), secrets files from disk. A secrets file is a YAML mapping of
// names to strings that must be a regular file not accessible by group or others. Errors
// (naming the plan key and the variable or file, never a secret value): FailedPrecondition for
// an unset or empty variable, an empty value or a file with group/other permissions (with the
// chmod to run); NotFound for a missing file or a name missing from it; InvalidArgument for a
// file that is not such a mapping.
absl::StatusOr<v1::Secrets> ResolveSecrets(const Plan& plan,
                                           std::function<const char*(const char*)> env);

// The ConfigurePgBackRest task sent to each agent: the same stanza and repository for both, so
// that the target restores exactly what the source backed up. For a posix repository the path is
// set both in PosixRepository.path and in RepositorySpec.path (both are repo1-path).
v1::ConfigurePgBackRest MakeConfigureTask(const Plan& plan, const v1::Secrets& secrets);

// Parses a byte size: a non-negative integer, optional spaces, and a unit: B, kB, MB, GB, TB
// (multiples of 1024, as in postgresql.conf) or KiB, MiB, GiB, TiB (the same values). Errors:
// InvalidArgument saying what was expected (the caller adds which key).
absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text);

}  // namespace pghaul::controller
