// The pure parts of `pghaul demo`: where everything lives under the demo directory, the files it
// writes (PostgreSQL settings, controller and agent configurations, the plan), where it finds
// the daemons, and the summary it prints from `pghaul -o json status demo`. No I/O here, so
// that tests can check every generated file against the real parsers.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pghaul/v1/migrations.pb.h"

namespace pghaul::cli {

inline constexpr char kDemoMigrationId[] = "demo";
inline constexpr char kDemoStanza[] = "demo";
inline constexpr char kDemoLegacyAgent[] = "legacy";
inline constexpr char kDemoTargetAgent[] = "target";
inline constexpr char kDemoPostgresBinDir[] = "/usr/lib/postgresql/15/bin";
inline constexpr char kDemoDefaultPgBackRest[] = "/usr/bin/pgbackrest";
inline constexpr int kDemoDefaultScale = 10;  // pgbench scale: about 150 MB of data
inline constexpr int kDemoMaxScale = 1000;    // about 15 GB; the demo is not a load test

// One of the demo's two database hosts: a PostgreSQL cluster and the agent beside it.
struct DemoHost {
  std::string agent_id;         // kDemoLegacyAgent or kDemoTargetAgent
  int port = 0;                 // names the socket file (.s.PGSQL.<port>); no TCP
  std::string dir;              // <demo>/<agent_id>, owned by the database OS user
  std::string data_dir;         // <dir>/data
  std::string socket_dir;       // <dir>/run
  std::string postgres_log;     // <dir>/postgres.log (pg_ctl -l)
  std::string agent_config;     // <dir>/agent.yaml
  std::string agent_log;        // <dir>/agent.log
  std::string agent_state_dir;  // <dir>/agent-state
};

// Every path the demo uses, all under `dir`.
struct DemoLayout {
  std::string dir;
  DemoHost legacy;
  DemoHost target;
  std::string repository;            // <dir>/repo: the posix pgBackRest repository
  std::string controller_dir;        // <dir>/controller
  std::string controller_config;     // <controller_dir>/controller.yaml
  std::string controller_log;        // <controller_dir>/controller.log
  std::string controller_state_dir;  // <controller_dir>/state (holds listen-address)
  std::string plan;                  // <dir>/plan.yaml
  std::string sample_sql;            // <dir>/sample-data.sql
  std::string sample_log;            // <dir>/sample-data.log: pgbench and psql output
};

// The layout under `dir`, which must already be absolute and normalized (see
// NormalizeDemoDirectory). Legacy's port is 5433 and target's 5434, as in scripts of old.
DemoLayout MakeDemoLayout(const std::string& dir);

// `dir` made absolute (against `working_dir`) and normalized: no ".", "..", repeated or trailing
// "/". Errors: InvalidArgument when a character other than A-Z a-z 0-9 / . _ - appears (the paths
// end up in pg_ctl options, which go through /bin/sh, and in archive_command), or when the path
// is so long that the clusters' socket paths would exceed the 107 bytes Linux allows.
absl::StatusOr<std::string> NormalizeDemoDirectory(absl::string_view dir,
                                                   absl::string_view working_dir);

// The lines the demo appends to each cluster's postgresql.conf.
std::vector<std::string> DemoPostgresSettings(const DemoHost& host);

// The options the agent's service section passes to every start of its server (pg_ctl -o), so
// that the target keeps its own port and socket after the restore copied legacy's settings.
std::vector<std::string> DemoPgCtlOptions(const DemoHost& host);

// controller.yaml: 127.0.0.1, port 0 (the controller writes the port it got to
// <state_dir>/listen-address), plaintext, text logs.
std::string DemoControllerConfig(const DemoLayout& layout);

// agent.yaml for `host`: its socket and port, pg_ctl service with the host's log and options,
// the repository among its roots.
std::string DemoAgentConfig(const DemoLayout& layout, const DemoHost& host,
                            absl::string_view controller_address,
                            absl::string_view pgbackrest_binary);

// plan.yaml: migration "demo" from legacy to target through the posix repository, stanza "demo",
// overwrite allowed, one restart of the source allowed, read-only fence.
std::string DemoPlan(const DemoLayout& layout);

// The programs the demo starts.
struct DemoBinaries {
  std::string pghaul;      // this program
  std::string agent;       // pghaul-agent
  std::string controller;  // pghaul-controller
};

// Looks for pghaul-agent and pghaul-controller beside `self` (an installed layout: one bin/
// directory) and in the build layout (build/cli/pghaul, build/agent/pghaul-agent,
// build/controller/pghaul-controller). Errors: NotFound listing the paths tried and how to build
// the missing program.
absl::StatusOr<DemoBinaries> FindDemoBinaries(
    const std::string& self, const std::function<bool(const std::string&)>& is_executable);

// The first `name` in the ':'-separated `path_variable` (relative entries skipped). Errors:
// NotFound naming `name` and the directories searched.
absl::StatusOr<std::string> FindInPath(
    absl::string_view name, absl::string_view path_variable,
    const std::function<bool(const std::string&)>& is_executable);

// Reads the output of `pghaul -o json status demo`: a MigrationInfo, or an object holding one
// under "migration". Errors: InvalidArgument when it is neither.
absl::StatusOr<v1::MigrationInfo> ParseMigrationJson(absl::string_view json);

// "0.4s", "12.3s", "1m05s", "1h02m".
std::string FormatDemoDuration(absl::Duration duration);

// The closing summary: how long each phase took, the backup's size, the cutover's downtime and
// what verify found.
std::string FormatDemoSummary(const v1::MigrationInfo& migration);

}  // namespace pghaul::cli
