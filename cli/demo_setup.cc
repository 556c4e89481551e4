#include "cli/demo_setup.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "cli/agent_table.h"
#include "cli/text_layout.h"
#include "common/time_proto.h"
#include "google/protobuf/util/json_util.h"

namespace pghaul::cli {
namespace {

constexpr int kLegacyPort = 5433;
constexpr int kTargetPort = 5434;
// Linux's sun_path holds 108 bytes including the terminating NUL.
constexpr size_t kMaxSocketPath = 107;

DemoHost MakeHost(const std::string& dir, const char* agent_id, int port) {
  DemoHost host;
  host.agent_id = agent_id;
  host.port = port;
  host.dir = absl::StrCat(dir, "/", agent_id);
  host.data_dir = host.dir + "/data";
  host.socket_dir = host.dir + "/run";
  host.postgres_log = host.dir + "/postgres.log";
  host.agent_config = host.dir + "/agent.yaml";
  host.agent_log = host.dir + "/agent.log";
  host.agent_state_dir = host.dir + "/agent-state";
  return host;
}

std::string SocketPath(const DemoHost& host) {
  return absl::StrCat(host.socket_dir, "/.s.PGSQL.", host.port);
}

// Every demo path is made of [A-Za-z0-9/._-] (NormalizeDemoDirectory), so double quotes are
// enough to keep YAML from reading anything into it.
std::string Quoted(absl::string_view text) { return absl::StrCat("\"", text, "\""); }

std::string QuotedList(const std::vector<std::string>& items) {
  std::vector<std::string> quoted;
  for (const std::string& item : items) quoted.push_back(Quoted(item));
  return absl::StrCat("[", absl::StrJoin(quoted, ", "), "]");
}

bool IsDemoPathCharacter(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '.' || c == '_' ||
         c == '-';
}

std::optional<absl::Duration> PhaseDuration(const v1::PhaseInfo& phase) {
  if (!phase.has_started_at() || !phase.has_finished_at()) return std::nullopt;
  return FromProto(phase.finished_at()) - FromProto(phase.started_at());
}

}  // namespace

DemoLayout MakeDemoLayout(const std::string& dir) {
  DemoLayout layout;
  layout.dir = dir;
  layout.legacy = MakeHost(dir, kDemoLegacyAgent, kLegacyPort);
  layout.target = MakeHost(dir, kDemoTargetAgent, kTargetPort);
  layout.repository = dir + "/repo";
  layout.controller_dir = dir + "/controller";
  layout.controller_config = layout.controller_dir + "/controller.yaml";
  layout.controller_log = layout.controller_dir + "/controller.log";
  layout.controller_state_dir = layout.controller_dir + "/state";
  layout.plan = dir + "/plan.yaml";
  layout.sample_sql = dir + "/sample-data.sql";
  layout.sample_log = dir + "/sample-data.log";
  return layout;
}

absl::StatusOr<std::string> NormalizeDemoDirectory(absl::string_view dir,
                                                   absl::string_view working_dir) {
  if (dir.empty()) return absl::InvalidArgumentError("--dir is empty: give a directory");
  std::filesystem::path path(std::string{dir});
  if (path.is_relative()) path = std::filesystem::path(std::string{working_dir}) / path;
  std::string normal = path.lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  if (normal == "/") {
    return absl::InvalidArgumentError(
        "--dir / would put the demo in the root directory: give a directory of its own, "
        "e.g. /tmp/pghaul-demo");
  }
  auto bad = std::find_if_not(normal.begin(), normal.end(), IsDemoPathCharacter);
  if (bad != normal.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--dir ", normal, ": only letters, digits and / . _ - may appear in the demo's path ",
        "(it ends up in pg_ctl options and archive_command); choose e.g. /tmp/pghaul-demo"));
  }
  DemoLayout layout = MakeDemoLayout(normal);
  size_t longest = std::max(SocketPath(layout.legacy).size(), SocketPath(layout.target).size());
  if (longest > kMaxSocketPath) {
    return absl::InvalidArgumentError(
        absl::StrCat("--dir ", normal, " is too long: the clusters' socket paths would be ",
                     longest, " bytes, and Linux allows ", kMaxSocketPath,
                     "; choose a shorter one, e.g. /tmp/pghaul-demo"));
  }
  return normal;
}

std::vector<std::string> DemoPostgresSettings(const DemoHost& host) {
  return {
      absl::StrCat("port = ", host.port),
      absl::StrCat("unix_socket_directories = '", host.socket_dir, "'"),
      "listen_addresses = ''",
      "shared_buffers = 64MB",
      // pgbench -i writes ~150 MB at the default scale: fewer checkpoints while loading.
      "max_wal_size = 1GB",
  };
}

std::vector<std::string> DemoPgCtlOptions(const DemoHost& host) {
  return {absl::StrCat("-p ", host.port), absl::StrCat("-k ", host.socket_dir)};
}

std::string DemoControllerConfig(const DemoLayout& layout) {
  // Port 0: the controller writes the port it got to <state_dir>/listen-address. Heartbeats
  // are generous: pgbench and pgBackRest load both cores at times.
  constexpr char kTemplate[] =
      R"(# Written by `pghaul demo` (docs/configuration.md describes every key).
listen: 127.0.0.1:0
insecure: true
controller_id: pghaul-demo
state_dir: ${STATE_DIR}
heartbeat_interval: 1s
missed_heartbeats: 5
log: {level: info, format: text}
)";
  return absl::StrReplaceAll(kTemplate, {{"${STATE_DIR}", Quoted(layout.controller_state_dir)}});
}

std::string DemoAgentConfig(const DemoLayout& layout, const DemoHost& host,
                            absl::string_view controller_address,
                            absl::string_view pgbackrest_binary) {
  constexpr char kTemplate[] =
      R"(# Written by `pghaul demo` (docs/configuration.md describes every key).
agent_id: ${AGENT_ID}
controller: {address: ${CONTROLLER}, insecure: true}
postgres: {socket_dir: ${SOCKET_DIR}, port: ${PORT}, user: postgres, database: postgres}
data_directory: ${DATA_DIR}
pgbackrest: {binary: ${PGBACKREST}}
state_dir: ${STATE_DIR}
roots: ${ROOTS}
service:
  method: pg_ctl
  pg_ctl: ${PG_CTL}
  log_file: ${LOG_FILE}
  pg_ctl_options: ${PG_CTL_OPTIONS}
facts_interval: 5s
reconnect: {initial: 200ms, max: 2s}
log: {level: info, format: text}
)";
  return absl::StrReplaceAll(kTemplate,
                             {{"${AGENT_ID}", host.agent_id},
                              {"${CONTROLLER}", Quoted(controller_address)},
                              {"${SOCKET_DIR}", Quoted(host.socket_dir)},
                              {"${PORT}", absl::StrCat(host.port)},
                              {"${DATA_DIR}", Quoted(host.data_dir)},
                              {"${PGBACKREST}", Quoted(pgbackrest_binary)},
                              {"${STATE_DIR}", Quoted(host.agent_state_dir)},
                              {"${ROOTS}", QuotedList({host.agent_state_dir, layout.repository})},
                              {"${PG_CTL}", Quoted(absl::StrCat(kDemoPostgresBinDir, "/pg_ctl"))},
                              {"${LOG_FILE}", Quoted(host.postgres_log)},
                              {"${PG_CTL_OPTIONS}", QuotedList(DemoPgCtlOptions(host))}});
}

std::string DemoPlan(const DemoLayout& layout) {
  constexpr char kTemplate[] =
      R"(# Written by `pghaul demo`: move the legacy cluster to the target host (docs/plan.md).
name: ${NAME}

source:
  agent: ${SOURCE}

target:
  agent: ${TARGET}
  data_directory: ${TARGET_DATA}
  # The demo made this cluster to be replaced: the restore may overwrite it.
  allow_overwrite: true

stanza: ${STANZA}

repository:
  posix:
    path: ${REPOSITORY}
  retention_full: 1

backup:
  process_max: 2
  compress_type: lz4
  type: full

# The legacy cluster runs without WAL archiving, as legacy hosts do: turning archive_mode on
# takes one restart, which prepare-source may do.
source_restart_allowed: true

fence: read-only

cutover:
  max_lag: 64MB
  max_downtime: 30s
  verify_checksums: true
)";
  return absl::StrReplaceAll(kTemplate, {{"${NAME}", kDemoMigrationId},
                                         {"${SOURCE}", kDemoLegacyAgent},
                                         {"${TARGET}", kDemoTargetAgent},
                                         {"${TARGET_DATA}", Quoted(layout.target.data_dir)},
                                         {"${STANZA}", kDemoStanza},
                                         {"${REPOSITORY}", Quoted(layout.repository)}});
}

absl::StatusOr<DemoBinaries> FindDemoBinaries(
    const std::string& self, const std::function<bool(const std::string&)>& is_executable) {
  std::filesystem::path self_dir = std::filesystem::path(self).parent_path();
  DemoBinaries binaries;
  binaries.pghaul = self;
  std::vector<std::string> problems;
  auto find = [&](const std::string& program, const std::string& build_dir, std::string* found) {
    std::vector<std::string> tried = {
        (self_dir / program).lexically_normal().string(),
        (self_dir / ".." / build_dir / program).lexically_normal().string(),
    };
    for (const std::string& candidate : tried) {
      if (is_executable(candidate)) {
        *found = candidate;
        return;
      }
    }
    problems.push_back(absl::StrCat(program, " (looked for ", absl::StrJoin(tried, " and "), ")"));
  };
  find("pghaul-agent", "agent", &binaries.agent);
  find("pghaul-controller", "controller", &binaries.controller);
  if (!problems.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "cannot find ", absl::StrJoin(problems, "; "),
        ": build them (cmake --build build --target pghaul-agent pghaul-controller) or install "
        "pghaul so that they sit beside pghaul"));
  }
  return binaries;
}

absl::StatusOr<std::string> FindInPath(
    absl::string_view name, absl::string_view path_variable,
    const std::function<bool(const std::string&)>& is_executable) {
  std::vector<std::string> searched;
  for (absl::string_view dir : absl::StrSplit(path_variable, ':', absl::SkipEmpty())) {
    if (dir.front() != '/') continue;
    std::string candidate = absl::StrCat(dir, dir.back() == '/' ? "" : "/", name);
    if (is_executable(candidate)) return candidate;
    searched.emplace_back(dir);
  }
  return absl::NotFoundError(
      absl::StrCat("cannot find ", name, " in PATH (", absl::StrJoin(searched, ":"), ")"));
}

absl::StatusOr<v1::MigrationInfo> ParseMigrationJson(absl::string_view json) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  v1::MigrationInfo migration;
  auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &migration, options);
  if (parsed.ok() && !migration.migration_id().empty()) return migration;
  // StartPhaseResponse is the proto with a `migration` field: it reads {"migration": {...}}.
  v1::StartPhaseResponse wrapper;
  auto wrapped = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &wrapper, options);
  if (wrapped.ok() && !wrapper.migration().migration_id().empty()) return wrapper.migration();
  std::string reason =
      parsed.ok() ? std::string("it names no migration") : std::string(parsed.message());
  return absl::InvalidArgumentError(
      absl::StrCat("cannot read the migration from `pghaul -o json status`: ", reason));
}

std::string FormatDemoDuration(absl::Duration duration) {
  if (duration < absl::ZeroDuration()) duration = absl::ZeroDuration();
  double seconds = absl::ToDoubleSeconds(duration);
  if (seconds < 59.95) return absl::StrFormat("%.1fs", seconds);
  int64_t whole = static_cast<int64_t>(std::llround(seconds));
  if (whole < 3600) return absl::StrFormat("%dm%02ds", whole / 60, whole % 60);
  return absl::StrFormat("%dh%02dm", whole / 3600, (whole % 3600) / 60);
}

std::string FormatDemoSummary(const v1::MigrationInfo& migration) {
  std::string out;
  absl::StrAppend(&out, "Migration ", migration.migration_id(), ": ", migration.state(), " (",
                  migration.source_agent(), " -> ", migration.target_agent(), ", stanza ",
                  migration.stanza(), ", ", migration.repository(), ")\n");

  std::vector<std::vector<std::string>> rows = {{"PHASE", "STATE", "TOOK"}};
  std::optional<absl::Time> first_start;
  std::optional<absl::Time> last_finish;
  for (const v1::PhaseInfo& phase : migration.phases()) {
    std::optional<absl::Duration> took = PhaseDuration(phase);
    rows.push_back({phase.name(), phase.state(), took ? FormatDemoDuration(*took) : "-"});
    if (phase.has_started_at()) {
      absl::Time start = FromProto(phase.started_at());
      if (!first_start || start < *first_start) first_start = start;
    }
    if (phase.has_finished_at()) {
      absl::Time finish = FromProto(phase.finished_at());
      if (!last_finish || finish > *last_finish) last_finish = finish;
    }
  }
  if (first_start && last_finish) {
    rows.push_back({"total", "", FormatDemoDuration(*last_finish - *first_start)});
  }
  absl::StrAppend(&out, RenderColumns(rows, "  "));

  std::vector<std::vector<std::string>> facts;
  if (migration.backup_bytes() > 0 || !migration.backup_label().empty()) {
    std::string backup = HumanBytes(migration.backup_bytes());
    if (!migration.backup_label().empty()) {
      absl::StrAppend(&backup, " (set ", migration.backup_label(), ")");
    }
    facts.push_back({"Backed up:", backup});
  }
  bool cut_over = migration.downtime_seconds() > 0;
  for (const v1::PhaseInfo& phase : migration.phases()) {
    if (phase.name() == "cutover" && phase.state() == "succeeded") cut_over = true;
  }
  if (cut_over) {
    facts.push_back(
        {"Downtime:", absl::StrCat(FormatDemoDuration(absl::Seconds(migration.downtime_seconds())),
                                   " (from the source's fence to the promoted target)")});
  }
  if (migration.has_verify()) {
    const v1::VerifyReport& verify = migration.verify();
    std::string text =
        absl::StrCat(verify.passed() ? "passed" : "FAILED", ": ", verify.objects_matching(), " of ",
                     verify.objects_compared(), " objects match");
    std::vector<std::string> expected_empty;
    std::vector<std::string> different;
    for (const v1::TableComparison& table : verify.differences()) {
      if (table.status() == "expected-empty") {
        expected_empty.push_back(table.table());
      } else {
        different.push_back(absl::StrCat(table.table(), " (", table.status(), ")"));
      }
    }
    if (!expected_empty.empty()) {
      absl::StrAppend(&text, "; empty on the target as expected (unlogged): ",
                      absl::StrJoin(expected_empty, ", "));
    }
    if (!different.empty()) absl::StrAppend(&text, "; differ: ", absl::StrJoin(different, ", "));
    int checks_passed = 0;
    for (const v1::CheckResult& check : verify.application_checks()) {
      if (check.status() == "pass") ++checks_passed;
    }
    if (verify.application_checks_size() > 0) {
      absl::StrAppend(&text, "; application checks: ", checks_passed, " of ",
                      verify.application_checks_size(), " pass");
    }
    facts.push_back({"Verify:", text});
  }
  if (!migration.message().empty()) facts.push_back({"Status:", migration.message()});
  absl::StrAppend(&out, "\n", RenderColumns(facts, "  "));
  return out;
}

}  // namespace pghaul::cli
