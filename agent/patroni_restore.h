// Handing a restored data directory over to Patroni (docs/patroni.md, "Rehearsal restore"):
// the PatroniAction tasks PREPARE_RESTORED and CLEAR_INITIALIZE.
//
// Patroni cannot take a foreign backup as pgBackRest leaves it: it strips restore_command (so
// its own start cannot finish the recovery), it logs in as its configured superuser (which the
// source's catalogue lacks), and it exits with "system ID mismatch" against the `initialize`
// key it keeps in the DCS. So, with Patroni stopped, the agent:
//
//   PREPARE_RESTORED
//     recovery.signal present?  yes -> pg_ctl start with private settings (no TCP, a socket and
//        |                             a trust pg_hba.conf in <state_dir>/patroni-restore/,
//        |                             archive_mode off), wait until pg_controldata says
//        |                             "in production" (the promotion after the immediate
//        |                             target), pg_ctl stop -m fast
//        v
//     postgres --single (the bootstrap superuser, whatever its name) on database postgres:
//        Patroni's superuser SUPERUSER LOGIN, replication user REPLICATION LOGIN, rewind user
//        LOGIN + the four grants pg_rewind needs, each with patroni.yml's password;
//        ALTER SYSTEM RESET of what pgBackRest wrote into postgresql.auto.conf
//   CLEAR_INITIALIZE
//     etcd v3 gateway: POST /v3/kv/deleterange {key: <namespace>/<scope>/initialize}
//
// after which Patroni's own start adopts the directory (it writes the new identifier into
// `initialize` and takes the leader lock), keeping its postgresql.conf, postgresql.base.conf and
// pg_hba.conf, which the restore kept (agent/restore_kept_config.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/patroni_config.h"
#include "agent/service_control.h"

namespace pghaul::agent {

// What PREPARE_RESTORED needs besides Patroni's configuration.
struct RestoredDataEnvironment {
  std::string data_directory;
  std::string pg_bin_dir;                  // holding pg_ctl, pg_controldata and postgres
  std::string state_dir;                   // the private directory is <state_dir>/patroni-restore
  std::vector<std::string> run_as_prefix;  // as the service section's (agent/service_control.h)
  uint32_t wait_seconds = 3600;            // for the private recovery
};

// pg_ctl on env's data directory (service_control.h's method kPgCtl, with env's run_as_prefix),
// for the private server and for a PostgreSQL a killed Patroni left running.
ServiceControlConfig PgCtlService(const RestoredDataEnvironment& env);

// pg_controldata's output, the lines read here.
struct ControlData {
  std::string state;  // "Database cluster state", e.g. "in production", "shut down"
  uint64_t system_identifier = 0;
  uint32_t timeline = 0;  // "Latest checkpoint's TimeLineID"
};
// Errors: InvalidArgument when a line is missing or malformed.
absl::StatusOr<ControlData> ParseControlData(absl::string_view text);

// The single-user script that gives Patroni its roles, one statement per line (single-user
// mode ends a statement at a newline). Roles not named in `settings` are skipped; a role
// without a password keeps the one it has. Errors: InvalidArgument when a name or password
// holds a control character (newline, NUL, ...), named without the password itself.
absl::StatusOr<std::string> PatroniRolesScript(const PatroniFileSettings& settings);

// PREPARE_RESTORED, as above. Errors: FailedPrecondition when Patroni's REST API answers, a
// postmaster.pid exists, the directory holds standby.signal (a standby is not prepared this
// way), the private server fails to start or to reach production (with the end of its log),
// or single-user mode reports an error (its message); DeadlineExceeded after wait_seconds;
// Cancelled; those of reading patroni.yml.
absl::StatusOr<std::map<std::string, std::string>> PrepareRestoredData(
    const PatroniConfig& config, const RestoredDataEnvironment& env,
    const std::function<void(absl::string_view)>& on_line, const std::function<bool()>& cancelled);

// The value of the last `name = '...'` line of a postgresql.auto.conf text ('' and \\ escapes
// undone), as ALTER SYSTEM and pgBackRest write them; nullopt when there is none.
std::optional<std::string> AutoConfSetting(absl::string_view text, absl::string_view name);

// Patroni's dynamic configuration (the JSON text of <prefix>config, "" when absent) with
// standby_cluster set to {restore_command}, everything else kept. Errors: FailedPrecondition
// when `current` is not a JSON object.
absl::StatusOr<std::string> StandbyClusterConfig(absl::string_view current,
                                                 absl::string_view restore_command);

// ROLE_VERIFIERS (tasks.proto). Errors: those of reading patroni.yml; Internal without random
// bytes.
absl::StatusOr<std::map<std::string, std::string>> RoleVerifiers(const PatroniConfig& config);

// FOLLOW_ARCHIVE (tasks.proto): standby_cluster.restore_command is the restore_command
// pgBackRest wrote into postgresql.auto.conf (it names the migration's pgBackRest configuration,
// which holds pg1-path of this data directory). Errors: FailedPrecondition when Patroni's REST
// API answers, without standby.signal or restore_command, when etcd cannot be used or reached
// (what to do by hand is said), or the configuration in etcd is not JSON.
absl::StatusOr<std::map<std::string, std::string>> FollowArchive(
    const PatroniConfig& config, const RestoredDataEnvironment& env,
    const std::function<void(absl::string_view)>& on_line);

// The JSON body of an etcd v3 DeleteRange of exactly `key`, asking for the previous value.
std::string EtcdDeleteRangeBody(absl::string_view key);

// CLEAR_INITIALIZE, as above, trying each etcd3 host of patroni.yml in turn. Errors:
// FailedPrecondition when Patroni's REST API answers, patroni.yml names no etcd3 hosts or asks
// for what the agent cannot do (TLS, authentication: the key to delete by hand is named), or no
// host answered (each host's error).
absl::StatusOr<std::map<std::string, std::string>> ClearInitializeKey(
    const PatroniConfig& config, const std::function<void(absl::string_view)>& on_line);

}  // namespace pghaul::agent
