// Executors for the pgBackRest tasks: ConfigurePgBackRest (write the agent-owned config and the
// migration's conf.d/secrets.conf, keep stanza and secrets in memory too) and PgBackRestCommand
// (run one pgBackRest command of the closed catalogue).
//
// Lifecycle of a command task:
//
//   Make*Executor: validate every field, look up the migration's stanza and secrets
//        | error -> REFUSED (nothing ran)
//        v
//   Run: spawn pgBackRest (own process group, --config-include-path to the secrets file, and an
//        explicit environment holding the same secrets)
//        |-- every stdout/stderr line -> context.Log (info's JSON stdout goes to info_json)
//        |-- backup/restore: per-file lines and the backup lock file -> context.ReportProgress
//        |-- context cancelled -> SIGTERM to the group, SIGKILL after the grace period
//        |-- task timeout      -> the same
//        v
//   SUCCEEDED | FAILED (exit code or signal, and pgBackRest's last ERROR line) | CANCELLED
//
// `info` exits 0 even when the repository is broken: its result carries info_json and
// repository_status_code, and is FAILED whenever the stanza's status.code is not 0.
//
// `restore` keeps the target's own configuration: postgresql.conf, pg_hba.conf and
// pg_ident.conf found inside the data directory before the restore are copied to
// KeptConfigDirectory and put back once pgBackRest has ended (restore_kept_config.h), so the
// source's port, listen_addresses, socket directory and access rules restored from the backup do
// not replace the target's. One log line names the files kept. A failure to keep them fails the
// task before pgBackRest runs; a failure to put them back fails it, leaving the copies for the
// next restore.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/pgbackrest_config.h"
#include "agent/task_manager.h"
#include "common/clock.h"
#include "pghaul/v1/agent_link.pb.h"

namespace pghaul::agent {

// <state_dir>/pgbackrest/<migration_id>/kept-config: the target's own configuration files while
// a restore runs.
std::string KeptConfigDirectory(const PgBackRestEnvironment& env, absl::string_view migration_id);

// For a task whose op is configure_pgbackrest. Validates and renders the config now (error:
// InvalidArgument, i.e. REFUSED); Run writes it and the secrets file (WritePgBackRestConfig) and
// then stores the stanza and secrets in `secrets` under the migration id. Result values:
// config_path, config_include_path. `secrets` must outlive the executor.
absl::StatusOr<std::unique_ptr<TaskExecutor>> MakeConfigureExecutor(
    const PgBackRestEnvironment& env, const v1::Task& task, SecretStore* secrets);

// For a task whose op is pgbackrest. Validates the command and builds its argv now. Errors
// (REFUSED): InvalidArgument for a bad field; FailedPrecondition when the migration was not
// configured since this agent started (send ConfigurePgBackRest again). `version` needs no
// configuration. `secrets` and `clock` must outlive the executor.
absl::StatusOr<std::unique_ptr<TaskExecutor>> MakePgBackRestExecutor(
    const PgBackRestEnvironment& env, const v1::Task& task, SecretStore* secrets,
    Clock* clock = Clock::Real());

}  // namespace pghaul::agent
