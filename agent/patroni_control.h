// PatroniAction tasks (tasks.proto): start, stop, pause and resume the Patroni that manages the
// local PostgreSQL, each waiting for its effect with a bound, and STATUS.
//
//   START   REST API answers?  yes -> "already running"
//           no -> systemd: systemctl --no-ask-password start UNIT
//                 command: the configured argv, detached (own session, stdin /dev/null, output
//                          appended to log_file, environment PATH/LANG/HOME/USER only)
//           then poll GET /patroni until state is "running" (PostgreSQL up under Patroni).
//   STOP    REST API answers?  no -> "already stopped"
//           yes -> systemd: systemctl --no-ask-password stop UNIT
//                  command: SIGTERM to the process listening on the REST API port
//           then poll until the REST API no longer answers and that process has exited.
//           Patroni stops PostgreSQL (fast) before it exits; a PostgreSQL still running
//           after that (a killed Patroni's: postmaster.pid names a live process) gets
//           pg_ctl stop -m fast. postgres_stopped says whether
//           <data_directory>/postmaster.pid is gone afterwards.
//   PAUSE / RESUME  PATCH /config, then poll GET /patroni until "pause" matches.
//   PROMOTE  role master already -> "already primary"; else PATCH /config
//            {"standby_cluster": null} and poll GET /patroni every 10 ms until role master.
//   RESTART  POST /restart (Patroni answers once PostgreSQL is back; 503 "... already in
//            progress" is asked again), then poll until running.
//   REJOIN   PAUSE, STOP (PostgreSQL left running), START, RESUME, POST /reload, then poll
//            until postgresql.conf has no restore_command: Patroni's in-memory recovery
//            parameters dropped without restarting PostgreSQL.
//   PREPARE_RESTORED / CLEAR_INITIALIZE / ROLE_VERIFIERS / FOLLOW_ARCHIVE
//            agent/patroni_restore.h.
// Every other wait polls every 100 ms, up to wait_seconds (0: 60), and stops early on cancel.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/patroni_config.h"
#include "agent/patroni_restore.h"
#include "pghaul/v1/tasks.pb.h"

namespace pghaul::agent {

// Checks an action before anything runs. Errors: InvalidArgument for ACTION_UNSPECIFIED or an
// unknown action, or wait_seconds above 3600.
absl::Status ValidatePatroniAction(const v1::PatroniAction& action);

// Runs `action` (validated again) and returns the values documented in tasks.proto.
// `env.data_directory` is PostgreSQL's (for postgres_stopped); the rest of `env` serves
// PREPARE_RESTORED (agent/patroni_restore.h). `on_line` gets a line per step (may be empty);
// `cancelled` is polled during waits (may be empty).
// Errors: InvalidArgument (ValidatePatroniAction); FailedPrecondition when systemctl fails,
// when the started command exits early (with the end of its log), when no process or more than
// one listens on the REST API port, or when the REST API refuses PATCH; DeadlineExceeded when
// the effect did not show within wait_seconds (the state is then unknown: ask STATUS);
// Cancelled.
absl::StatusOr<std::map<std::string, std::string>> RunPatroniAction(
    const PatroniConfig& config, const RestoredDataEnvironment& env,
    const v1::PatroniAction& action, const std::function<void(absl::string_view)>& on_line,
    const std::function<bool()>& cancelled);

// The PIDs of the processes that hold a TCP socket listening on `port` (IPv4 or IPv6, any
// address) in this network namespace: from /proc/net/tcp{,6}, then /proc/*/fd. Processes whose
// descriptors this user cannot read are not seen. Errors: Internal when /proc/net/tcp cannot be
// read.
absl::StatusOr<std::vector<pid_t>> FindProcessesListeningOn(int port);

// Starts `argv` detached: a new session, stdin from /dev/null, stdout and stderr appended to
// `log_file` (created 0640), `env` as the whole environment, working directory "/". Returns
// its PID; the caller reaps it (waitpid) if it ever waits for it. Errors: InvalidArgument
// without argv, FailedPrecondition when argv[0] is not executable or the log cannot be opened,
// Internal when posix_spawn fails.
absl::StatusOr<pid_t> StartDetached(const std::vector<std::string>& argv,
                                    const std::vector<std::string>& env,
                                    const std::string& log_file);

}  // namespace pghaul::agent
