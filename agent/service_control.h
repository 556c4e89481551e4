// Local service control of the PostgreSQL next to the agent (ServiceAction in tasks.proto), by
// one of three methods the agent's own configuration names: pg_ctl on a data directory, Debian's
// pg_ctlcluster, or a systemd unit. Commands run through pghaul::Subprocess, never a shell, with
// an explicit environment (PATH=/usr/bin:/bin, LANG=C.UTF-8, nothing else: no PGDATA, no PG*).
//
// The argv per action (W = wait_seconds, 0 -> 60; M = stop_mode, "" -> fast):
//   kPgCtl        START    pg_ctl start -D DATA -w -t W [-l LOG] [-o OPT]...
//                 STOP     pg_ctl stop -D DATA -m M -w -t W
//                 RESTART  pg_ctl restart -D DATA -m M -w -t W [-l LOG] [-o OPT]...
//                 STATUS   pg_ctl status -D DATA
//                 PROMOTE  pg_ctl promote -D DATA -w -t W
//   kPgCtlCluster START    pg_ctlcluster V NAME start -- -w -t W
//                 STOP     pg_ctlcluster -m M V NAME stop -- -w -t W
//                 RESTART  pg_ctlcluster -m M V NAME restart -- -w -t W
//                 STATUS   pg_ctlcluster V NAME status
//                 PROMOTE  pg_ctlcluster V NAME promote -- -w -t W
//   kSystemd      START/STOP/RESTART  systemctl --no-ask-password start|stop|restart UNIT
//                 STATUS   systemctl is-active UNIT
//                 PROMOTE  pg_ctl promote -D DATA -w -t W: systemd has no promote verb, and the
//                          unit keeps running across a promotion, so pg_ctl on the unit's data
//                          directory is the right tool (data_directory and pg_ctl must be set).
//                 The unit stops in its own mode (Debian's: fast), so only "" and "fast" are
//                 accepted as stop_mode; the agent's user needs the right to manage the unit
//                 (e.g. a polkit rule), since nothing will ask for a password.
// Every argv is prefixed by run_as_prefix when it is set.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/subprocess.h"
#include "pghaul/v1/tasks.pb.h"

namespace pghaul::agent {

struct ServiceControlConfig {
  enum class Method { kPgCtl, kPgCtlCluster, kSystemd };
  Method method = Method::kPgCtl;
  std::string pg_ctl = "/usr/lib/postgresql/15/bin/pg_ctl";   // kPgCtl, and kSystemd PROMOTE
  std::string pg_ctlcluster = "/usr/bin/pg_ctlcluster";       // for kPgCtlCluster
  std::string cluster_version = "15", cluster_name = "main";  // for kPgCtlCluster
  std::string systemctl = "/usr/bin/systemctl";
  std::string unit = "postgresql@15-main.service";  // for kSystemd
  std::string data_directory;  // for pg_ctl -D (kPgCtl, and PROMOTE with kSystemd)
  // pg_ctl -l (optional, absolute). Set it for kPgCtl: without it the server's output goes to
  // the pipes of the START task, which close when the task ends, and that output is lost.
  std::string log_file;
  // Extra server options for pg_ctl start/restart, each passed as one `-o` value, e.g.
  // "-k /run/x -p 5433". pg_ctl hands them to the server through /bin/sh, so they must come from
  // the agent's own configuration, never from the controller; `;&|$<>` and backquotes and
  // newlines are refused all the same.
  std::vector<std::string> pg_ctl_options;
  // Prepended to every argv, e.g. {"/usr/sbin/runuser", "-u", "postgres", "--"}: for tests and
  // for an agent started as root, so the commands run as the cluster's owner. The agent
  // normally runs as the postgres user itself and leaves this empty.
  std::vector<std::string> run_as_prefix;
};

// Builds the argv for an action (exposed for golden tests).
// Errors: InvalidArgument for ACTION_UNSPECIFIED or an unknown action, a stop_mode other than
// smart|fast|immediate (or other than fast for kSystemd), wait_seconds above 86400, and for a
// config field the method needs that is missing or malformed (binaries and paths must be
// absolute; data_directory and log_file must not hold characters pg_ctl's shell would
// interpret; version, cluster and unit names are checked against their grammars).
absl::StatusOr<std::vector<std::string>> ServiceCommand(const ServiceControlConfig& config,
                                                        const v1::ServiceAction& action);

// Runs the action and waits for it (START/STOP/RESTART/PROMOTE wait up to wait_seconds for the
// server; the command itself is killed after wait_seconds + 30 s). Every output line goes to
// `on_line` (may be empty).
//
// Results:
//   STATUS         {"running": "true"/"false", "detail": first line of output}. pg_ctl's exit 3
//                  (no server running) and systemctl is-active's non-zero exit with a state word
//                  are running=false, not errors.
//   START/STOP/RESTART  {"running": "true"/"false", "detail": last line of output}.
//                  START and STOP are idempotent with pg_ctl and pg_ctlcluster: they check the
//                  status first and, if it is already as asked, return with detail "already
//                  running"/"already stopped" (systemctl is idempotent by itself).
//   PROMOTE        {"promoted": "true", "detail": last line of output}.
// Errors: those of ServiceCommand; FailedPrecondition when the command fails (its exit and the
// last lines of its output), e.g. pg_ctl's exit 4 (not a data directory) or PROMOTE of a server
// that is not a standby; DeadlineExceeded when the command was killed after its timeout (the
// server's state is then unknown: ask STATUS); the errors of Subprocess::Start/Wait.
absl::StatusOr<std::map<std::string, std::string>> RunServiceAction(
    const ServiceControlConfig& config, const v1::ServiceAction& action,
    const Subprocess::LineCallback& on_line);

// The last lines of a server log such as ServiceControlConfig::log_file (at most 5 lines, from
// its last 4 KiB), joined by " | "; "" when it cannot be read.
std::string ServerLogTail(const std::string& path);

}  // namespace pghaul::agent
