// Cutover downtime under a write load, two ways, in one run on the same hosts and data:
//
//   pghaul     `pghaul run mN --until backup`, `pghaul restore mN --mode standby`, then
//              `pghaul cutover mN` while pgbench writes; the downtime is the migration's own
//              downtime_seconds (from the journaled fence to the promoted target)
//   baseline   what a DBA does by hand with psql and pgBackRest 2.45 (each step one psql or
//              pgbackrest process, polls every 50 ms): `pgbackrest restore --delta --type=standby
//              --target-timeline=current --archive-mode=off
//              --recovery-option=wal_retrieve_retry_interval=250ms` over the target (the target's
//              own postgresql.conf, pg_hba.conf and pg_ident.conf put back), start it, wait until
//              it has replayed what is archived, then under the same load: reject lines at the top
//              of the source's pg_hba.conf, ALTER SYSTEM SET default_transaction_read_only = on,
//              pg_reload_conf(), pg_terminate_backend of the other client sessions,
//              pg_switch_wal(), poll pg_stat_archiver until that segment is archived, poll the
//              target's pg_last_wal_replay_lsn() until it passes the source's last insert LSN,
//              pg_promote(); the downtime is from the first fence step to pg_promote's return
//
// The load: pgbench -n -c 2 -j 1 as the non-agent role `app` on the source, started 3 s before
// each cutover and ended by the fence. After each cutover, the fenced source and the promoted
// target must hold the same number of pgbench_history rows (nothing committed is lost), else
// the bench stops. Between runs the source is unfenced by hand (the pghaul fence's marked
// pg_hba.conf block or the baseline's, and the read-only default).
//
// Every pghaul run is a new migration (m1, m2, ...) over the same hosts (allow_overwrite) into
// the same stanza, with a backup of its own (its backup phase) and a new stanza of its own for
// the promoted target (cutover.new_stanza: main-mN), so that no two runs' timeline-2 WAL meet.
// The baseline restores the backup the pghaul run of the same round just took. The cutover's
// verify_checksums is false for the headline numbers; --verify-runs adds pghaul runs with it
// true at the smallest scale, --async-runs pghaul runs with repository.archive_async: true
// there. Hosts are network namespaces on this machine (shared cores and page cache). Needs
// root; leaves nothing behind.
//
// --patroni-runs adds, at the smallest scale, pghaul runs into a target that Patroni 3.0.2
// manages with a real etcd 3.4 (tests/integration/fixture/patroni_target.h, host 198.18.0.13,
// superuser `operator`, source_patroni_roles_allowed): the same commands, promotion by Patroni
// (standby_cluster removed), reported beside the plain target's runs of the same scale.
//
//   build/bench/cutover_downtime_bench [--scales=10,100] [--runs=5] [--verify-runs=0]
//                                      [--async-runs=0] [--patroni-runs=0]
//                                      [--keep-logs=DIR]   (each scale's controller log)
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fixture/child_process.h"
#include "tests/integration/fixture/command.h"
#include "tests/integration/fixture/json_paths.h"
#include "tests/integration/fixture/migration_fixture.h"
#include "tests/integration/fixture/patroni_target.h"
#include "tests/integration/fixture/pg_cluster.h"
#include "tests/integration/fixture/wait_for.h"

namespace pghaul::bench {
namespace {

using integration::CommandOptions;
using integration::kPostgresBinDir;
using integration::kPostgresOsUser;
using integration::MigrationRig;
using integration::PgCluster;
using integration::RunChecked;

constexpr char kPgBackRest[] = "/usr/bin/pgbackrest";
constexpr char kAppSetupSql[] = R"sql(
CREATE ROLE app LOGIN;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app;
)sql";
constexpr absl::Duration kPoll = absl::Milliseconds(50);

struct Options {
  std::vector<int> scales = {10, 100};
  int runs = 5;
  int verify_runs = 0;
  int async_runs = 0;  // pghaul runs with repository.archive_async: true (smallest scale only)
  int patroni_runs = 0;   // pghaul runs into a Patroni target (smallest scale only)
  std::string keep_logs;  // a directory to copy each scale's controller log into; "": none
};

struct Stats {
  double median = 0;
  double min = 0;
  double max = 0;
};

Stats Summarise(std::vector<double> values) {
  Stats s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  s.median = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  s.min = values.front();
  s.max = values.back();
  return s;
}

// "16/B374D848" -> its 64-bit position; 0 when unparsable.
uint64_t ParseLsn(absl::string_view text) {
  std::vector<std::string> parts = absl::StrSplit(absl::StripAsciiWhitespace(text), '/');
  uint32_t high = 0;
  uint32_t low = 0;
  if (parts.size() != 2 || !absl::SimpleHexAtoi(parts[0], &high) ||
      !absl::SimpleHexAtoi(parts[1], &low)) {
    return 0;
  }
  return (static_cast<uint64_t>(high) << 32) | low;
}

std::string Tail(const std::string& path, int lines) {
  std::ifstream in(path);
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(line);
  const size_t from = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0;
  std::vector<std::string> kept(all.begin() + static_cast<long>(from), all.end());
  return absl::StrJoin(kept, "\n");
}

struct ScaleResult {
  int scale = 0;
  std::string size;
  std::vector<double> pghaul;
  std::vector<double> pghaul_verify;
  std::vector<double> pghaul_async;
  std::vector<double> pghaul_patroni;
  std::vector<double> baseline;
};

class ScaleBench {
 public:
  ScaleBench(int scale, const Options& options) : options_(options) { result_.scale = scale; }

  absl::Status Run() {
    PGH_RETURN_IF_ERROR(SetUp());
    for (int round = 1; round <= options_.runs; ++round) {
      std::cout << "== scale " << result_.scale << ", round " << round << " of " << options_.runs
                << "\n";
      PGH_ASSIGN_OR_RETURN(double p, PghaulRun(/*verify_checksums=*/false));
      result_.pghaul.push_back(p);
      PGH_ASSIGN_OR_RETURN(double b, BaselineRun());
      result_.baseline.push_back(b);
    }
    for (int round = 1; round <= options_.verify_runs; ++round) {
      std::cout << "== scale " << result_.scale << ", verify_checksums round " << round << " of "
                << options_.verify_runs << "\n";
      PGH_ASSIGN_OR_RETURN(double p, PghaulRun(/*verify_checksums=*/true));
      result_.pghaul_verify.push_back(p);
    }
    for (int round = 1; round <= options_.async_runs; ++round) {
      std::cout << "== scale " << result_.scale << ", archive_async round " << round << " of "
                << options_.async_runs << "\n";
      PGH_ASSIGN_OR_RETURN(double p,
                           PghaulRun(/*verify_checksums=*/false, /*archive_async=*/true));
      result_.pghaul_async.push_back(p);
    }
    for (int round = 1; round <= options_.patroni_runs; ++round) {
      std::cout << "== scale " << result_.scale << ", Patroni target round " << round << " of "
                << options_.patroni_runs << "\n";
      PGH_ASSIGN_OR_RETURN(double p, PghaulRun(/*verify_checksums=*/false, /*archive_async=*/false,
                                               /*patroni=*/true));
      result_.pghaul_patroni.push_back(p);
    }
    return absl::OkStatus();
  }

  const ScaleResult& result() const { return result_; }
  // The controller's log (its task timings), kept for reading after the rig is gone.
  void KeepControllerLog(const std::string& path) const {
    if (rig_ == nullptr || path.empty()) return;
    std::ifstream in(rig_->controller().log_path());
    std::ofstream out(path, std::ios::trunc);
    out << in.rdbuf();
  }
  // On failure: the logs a reader needs.
  void PrintLogTails() const {
    if (rig_ == nullptr) return;
    std::vector<std::string> logs = rig_->LogPaths();
    if (patroni_target_ != nullptr) {
      for (const std::string& path : patroni_target_->LogPaths()) logs.push_back(path);
    }
    for (const std::string& path : logs) {
      std::cerr << "---- tail of " << path << "\n" << Tail(path, 40) << "\n";
    }
    if (pgbench_ != nullptr) {
      std::cerr << "---- tail of " << pgbench_->log_path() << "\n"
                << Tail(pgbench_->log_path(), 10) << "\n";
    }
  }

  ~ScaleBench() {
    StopPgBench();
    patroni_target_.reset();  // its agent, Patroni and etcd before the rig
  }

 private:
  PgCluster& Legacy() { return rig_->Cluster("legacy"); }
  PgCluster& Target() { return rig_->Cluster("target"); }

  CommandOptions AsPostgres(const std::string& host = "") {
    CommandOptions options;
    options.launch.run_as = kPostgresOsUser;
    if (!host.empty()) options.launch.netns = rig_->network().Namespace(host);
    options.timeout = absl::Minutes(20);
    return options;
  }

  absl::Status SetUp() {
    PGH_ASSIGN_OR_RETURN(rig_, MigrationRig::Create("pghaul-cbench-"));
    integration::RigHostOptions legacy;
    legacy.octet = 11;
    PGH_RETURN_IF_ERROR(rig_->AddHost("legacy", legacy).status());
    integration::RigHostOptions target;
    target.octet = 12;
    PGH_RETURN_IF_ERROR(rig_->AddHost("target", target).status());

    // The target's own configuration, as initdb and the fixture made it: the by-hand restore
    // puts it back over the source's copy, as pghaul's restore keeps it.
    PGH_ASSIGN_OR_RETURN(saved_conf_, rig_->dir().MakeSubdir("target-conf", kPostgresOsUser, 0700));
    for (const char* file : {"postgresql.conf", "pg_hba.conf", "pg_ident.conf"}) {
      PGH_RETURN_IF_ERROR(
          RunChecked({"cp", Target().data_dir() + "/" + file, saved_conf_ + "/" + file},
                     AsPostgres())
              .status());
    }

    const absl::Time start = absl::Now();
    PGH_RETURN_IF_ERROR(
        RunChecked({absl::StrCat(kPostgresBinDir, "/pgbench"), "-i", "-q", "-s",
                    absl::StrCat(result_.scale), "-h", Legacy().socket_dir(), "-p",
                    absl::StrCat(Legacy().port()), "-U", "postgres", "postgres"},
                   AsPostgres("legacy"))
            .status());
    PGH_RETURN_IF_ERROR(rig_->RunSqlScript(Legacy(), kAppSetupSql));
    PGH_ASSIGN_OR_RETURN(result_.size,
                         Legacy().Query("SELECT pg_size_pretty(pg_database_size('postgres'))"));
    PGH_ASSIGN_OR_RETURN(source_hba_, Legacy().Query("SHOW hba_file"));
    if (options_.patroni_runs > 0) {
      integration::PatroniTargetOptions patroni;
      patroni.name = "ptarget";
      patroni.octet = 13;
      PGH_ASSIGN_OR_RETURN(patroni_target_, integration::PatroniTarget::Start(*rig_, patroni));
    }
    std::cout << "loaded pgbench -s " << result_.scale << ": database " << result_.size << " in "
              << absl::Now() - start << "\n";
    return absl::OkStatus();
  }

  absl::Status StartPgBench() {
    integration::ChildProcessOptions options;
    options.argv = {absl::StrCat(kPostgresBinDir, "/pgbench"), "-n", "-c", "2", "-j", "1", "-T",
                    "300", "-h", Legacy().socket_dir(), "-p", absl::StrCat(Legacy().port()), "-U",
                    "app", "postgres"};
    options.launch.run_as = kPostgresOsUser;
    options.log_path = absl::StrCat(rig_->dir().path(), "/pgbench-", ++pgbench_runs_, ".log");
    PGH_ASSIGN_OR_RETURN(pgbench_, integration::ChildProcess::Start(std::move(options)));
    // Steady state before the cutover starts.
    absl::SleepFor(absl::Seconds(3));
    if (!pgbench_->IsRunning()) {
      return absl::InternalError(
          absl::StrCat("pgbench ended before the cutover: ", Tail(pgbench_->log_path(), 10)));
    }
    return absl::OkStatus();
  }

  // The fence ends pgbench's sessions (it exits when its clients are gone); SIGKILL otherwise.
  void StopPgBench() {
    if (pgbench_ != nullptr && pgbench_->IsRunning()) (void)pgbench_->Kill(SIGKILL);
    pgbench_.reset();
  }

  // Nothing committed on the source is missing on the promoted target (the Patroni one when
  // `patroni`).
  absl::Status CheckNothingLost(bool patroni = false) {
    constexpr char kRows[] = "SELECT count(*) FROM pgbench_history";
    PGH_ASSIGN_OR_RETURN(std::string source, Legacy().Query(kRows));
    PGH_ASSIGN_OR_RETURN(std::string target,
                         patroni ? patroni_target_->patroni().Query(kRows) : Target().Query(kRows));
    if (source != target) {
      return absl::DataLossError(absl::StrCat("pgbench_history: ", source,
                                              " rows on the fenced source, ", target,
                                              " on the promoted target"));
    }
    std::cout << "  pgbench_history rows on both sides: " << source << "\n";
    return absl::OkStatus();
  }

  // Removes every fence block (pghaul's `# BEGIN pghaul fence ...` or the baseline's) from the
  // source's pg_hba.conf, resets the read-only default, reloads.
  absl::Status Unfence() {
    std::ifstream in(source_hba_);
    if (!in) return absl::InternalError(absl::StrCat("cannot read ", source_hba_));
    std::ostringstream kept;
    bool inside = false;
    for (std::string line; std::getline(in, line);) {
      if (absl::StartsWith(line, "# BEGIN pghaul fence ") ||
          absl::StartsWith(line, "# BEGIN bench fence")) {
        inside = true;
        continue;
      }
      if (inside && (absl::StartsWith(line, "# END pghaul fence ") ||
                     absl::StartsWith(line, "# END bench fence"))) {
        inside = false;
        continue;
      }
      if (!inside) kept << line << "\n";
    }
    in.close();
    if (inside) return absl::DataLossError("a fence block without its END line in pg_hba.conf");
    {
      std::ofstream out(source_hba_, std::ios::trunc);  // keeps the file's owner and mode
      out << kept.str();
      if (!out) return absl::InternalError(absl::StrCat("cannot write ", source_hba_));
    }
    PGH_RETURN_IF_ERROR(
        Legacy().Query("ALTER SYSTEM RESET default_transaction_read_only").status());
    return Legacy().Query("SELECT pg_reload_conf()").status();
  }

  absl::StatusOr<double> PghaulRun(bool verify_checksums, bool archive_async = false,
                                   bool patroni = false) {
    const std::string name = absl::StrCat("m", ++migrations_);
    integration::PlanSpec spec = rig_->PosixPlan(name, patroni ? "ptarget" : "target");
    if (patroni) {
      spec.target_data = patroni_target_->patroni().data_dir();
      spec.extra = "source_patroni_roles_allowed: true\n";
    }
    if (archive_async) absl::StrAppend(&spec.repository, "  archive_async: true\n");
    spec.cutover = absl::StrCat("{max_lag: 64MB, max_downtime: 60s, verify_checksums: ",
                                verify_checksums ? "true" : "false", ", new_stanza: main-", name,
                                "}");
    PGH_RETURN_IF_ERROR(rig_->ApplyPlan(spec));
    absl::Time start = absl::Now();
    PGH_RETURN_IF_ERROR(Pghaul({"run", name, "--until", "backup"}));
    const double backup = absl::ToDoubleSeconds(absl::Now() - start);
    start = absl::Now();
    PGH_RETURN_IF_ERROR(Pghaul({"restore", name, "--mode", "standby"}));
    const double standby = absl::ToDoubleSeconds(absl::Now() - start);
    PGH_RETURN_IF_ERROR(StartPgBench());
    start = absl::Now();
    absl::Status cutover = Pghaul({"cutover", name});
    const double command = absl::ToDoubleSeconds(absl::Now() - start);
    StopPgBench();
    PGH_RETURN_IF_ERROR(cutover);
    PGH_ASSIGN_OR_RETURN(nlohmann::json status, rig_->Status(name));
    const nlohmann::json downtime_json = integration::At(status, "downtime_seconds");
    if (!downtime_json.is_number()) {
      return absl::InternalError(
          absl::StrCat("status of ", name, " has no downtime_seconds: ", status.dump(2)));
    }
    const double downtime = downtime_json.get<double>();
    std::cout << absl::StrFormat(
        "  pghaul %s (%s, verify_checksums %s, archive_async %s): downtime %.3f s (backup phase "
        "%.1f s, standby restore %.1f s, `pghaul cutover` incl. the new stanza's backup %.1f "
        "s)\n",
        name, patroni ? "Patroni target" : "plain target", verify_checksums ? "true" : "false",
        archive_async ? "true" : "false", downtime, backup, standby, command);
    if (patroni && status.contains("events") && status["events"].is_array()) {
      for (const nlohmann::json& event : status["events"]) {
        const std::string text = integration::Str(event, "text");
        if (absl::StartsWith(text, "Patroni promoted the target")) {
          std::cout << "  " << text << "\n";
        }
      }
    }
    PGH_RETURN_IF_ERROR(CheckNothingLost(patroni));
    PGH_RETURN_IF_ERROR(Unfence());
    return downtime;
  }

  absl::Status Pghaul(const std::vector<std::string>& args) {
    PGH_ASSIGN_OR_RETURN(integration::CommandResult result, rig_->Cli(args, absl::Minutes(20)));
    if (!result.ok()) {
      return absl::InternalError(absl::StrCat("pghaul ", absl::StrJoin(args, " "), " exited ",
                                              result.exit_code, ":\n", result.stdout_text,
                                              result.stderr_text));
    }
    return absl::OkStatus();
  }

  // The LSN the target has replayed, or 0.
  uint64_t TargetReplayLsn() {
    absl::StatusOr<std::string> lsn = Target().Query("SELECT pg_last_wal_replay_lsn()");
    return lsn.ok() ? ParseLsn(*lsn) : 0;
  }

  absl::StatusOr<double> BaselineRun() {
    // The config pghaul's target agent wrote for the last migration: stanza main, this repo.
    const std::string config_dir = absl::StrCat(rig_->AgentDir("target"), "/state/pgbackrest/m",
                                                migrations_);
    absl::Time start = absl::Now();
    PGH_RETURN_IF_ERROR(Target().Stop("fast"));
    PGH_RETURN_IF_ERROR(
        RunChecked({kPgBackRest, absl::StrCat("--config=", config_dir, "/pgbackrest.conf"),
                    absl::StrCat("--config-include-path=", config_dir, "/conf.d"),
                    "--stanza=main", "--delta", "--type=standby", "--target-timeline=current",
                    "--archive-mode=off", "--recovery-option=wal_retrieve_retry_interval=250ms",
                    "--process-max=2", "--log-level-console=warn", "restore"},
                   AsPostgres("target"))
            .status());
    for (const char* file : {"postgresql.conf", "pg_hba.conf", "pg_ident.conf"}) {
      PGH_RETURN_IF_ERROR(
          RunChecked({"cp", saved_conf_ + "/" + file, Target().data_dir() + "/" + file},
                     AsPostgres())
              .status());
    }
    PGH_RETURN_IF_ERROR(Target().Start(absl::Minutes(5)));
    const double standby = absl::ToDoubleSeconds(absl::Now() - start);
    PGH_RETURN_IF_ERROR(StartPgBench());

    // Before fencing, as a DBA would (and as pghaul's catch-up does): the standby has replayed
    // into the last segment archived.
    PGH_RETURN_IF_ERROR(integration::WaitFor(
        "the by-hand standby to catch up", absl::Minutes(2),
        [&]() -> absl::Status {
          absl::StatusOr<std::string> replay = Target().Query("SELECT pg_last_wal_replay_lsn()");
          if (!replay.ok()) return replay.status();
          PGH_ASSIGN_OR_RETURN(
              std::string caught_up,
              Legacy().Query(absl::StrCat("SELECT pg_walfile_name('", *replay,
                                          "') >= last_archived_wal FROM pg_stat_archiver")));
          return caught_up == "t" ? absl::OkStatus() : absl::UnavailableError("behind");
        },
        kPoll));

    // The cutover, timed from the first fence step to pg_promote's answer.
    const absl::Time fenced_at = absl::Now();
    {
      std::ifstream in(source_hba_);
      std::ostringstream hba;
      hba << in.rdbuf();
      in.close();
      std::ofstream out(source_hba_, std::ios::trunc);
      out << "# BEGIN bench fence\nlocal all \"app\" reject\nhost all all all reject\n"
             "# END bench fence\n"
          << hba.str();
      if (!out) return absl::InternalError(absl::StrCat("cannot write ", source_hba_));
    }
    PGH_RETURN_IF_ERROR(
        Legacy().Query("ALTER SYSTEM SET default_transaction_read_only = on").status());
    PGH_RETURN_IF_ERROR(Legacy().Query("SELECT pg_reload_conf()").status());
    PGH_RETURN_IF_ERROR(Legacy()
                            .Query("SELECT count(pg_terminate_backend(pid)) FROM "
                                   "pg_stat_activity WHERE backend_type = 'client backend' AND "
                                   "usename <> current_user")
                            .status());
    PGH_ASSIGN_OR_RETURN(
        std::string switched,
        Legacy().Query("SELECT pg_current_wal_insert_lsn(), pg_walfile_name(pg_switch_wal())"));
    std::vector<std::string> fields = absl::StrSplit(switched, '|');
    if (fields.size() != 2) return absl::InternalError(absl::StrCat("switch: ", switched));
    const uint64_t final_lsn = ParseLsn(fields[0]);
    const std::string last_segment = fields[1];
    PGH_RETURN_IF_ERROR(integration::WaitFor(
        "the last segment archived", absl::Minutes(1),
        [&]() -> absl::Status {
          PGH_ASSIGN_OR_RETURN(
              std::string archived,
              Legacy().Query(absl::StrCat("SELECT coalesce(last_archived_wal >= '", last_segment,
                                          "', false) FROM pg_stat_archiver")));
          return archived == "t" ? absl::OkStatus() : absl::UnavailableError("not yet");
        },
        kPoll));
    const double archived = absl::ToDoubleSeconds(absl::Now() - fenced_at);
    PGH_RETURN_IF_ERROR(integration::WaitFor(
        "the last segment replayed", absl::Minutes(1),
        [&]() -> absl::Status {
          return TargetReplayLsn() >= final_lsn ? absl::OkStatus()
                                                : absl::UnavailableError("not yet");
        },
        kPoll));
    const double replayed = absl::ToDoubleSeconds(absl::Now() - fenced_at);
    PGH_ASSIGN_OR_RETURN(std::string promoted, Target().Query("SELECT pg_promote(true, 60)"));
    const double downtime = absl::ToDoubleSeconds(absl::Now() - fenced_at);
    StopPgBench();
    if (promoted != "t") return absl::InternalError("pg_promote did not finish within 60 s");
    std::cout << absl::StrFormat(
        "  baseline: downtime %.3f s (archived at %.3f s, replayed at %.3f s; standby restore "
        "and start %.1f s)\n",
        downtime, archived, replayed, standby);
    PGH_RETURN_IF_ERROR(CheckNothingLost());
    PGH_RETURN_IF_ERROR(Unfence());
    return downtime;
  }

  const Options options_;
  ScaleResult result_;
  std::unique_ptr<MigrationRig> rig_;
  std::string saved_conf_;
  std::string source_hba_;
  std::unique_ptr<integration::ChildProcess> pgbench_;
  int pgbench_runs_ = 0;
  int migrations_ = 0;
  std::unique_ptr<integration::PatroniTarget> patroni_target_;  // with --patroni-runs
};

void Report(const std::vector<ScaleResult>& results) {
  std::cout << "\n| pgbench scale (database) | way | runs | median s | min s | max s | median "
               "pghaul / baseline |\n|---|---|---|---|---|---|---|\n";
  for (const ScaleResult& r : results) {
    const Stats p = Summarise(r.pghaul);
    const Stats b = Summarise(r.baseline);
    const std::string data = absl::StrCat(r.scale, " (", r.size, ")");
    std::cout << absl::StrFormat("| %s | pghaul, verify_checksums false | %d | %.2f | %.2f | %.2f "
                                 "| %.2f |\n",
                                 data, r.pghaul.size(), p.median, p.min, p.max,
                                 b.median > 0 ? p.median / b.median : 0.0);
    std::cout << absl::StrFormat("| %s | baseline (psql + pgbackrest) | %d | %.2f | %.2f | %.2f | "
                                 "|\n",
                                 data, r.baseline.size(), b.median, b.min, b.max);
    if (!r.pghaul_verify.empty()) {
      const Stats v = Summarise(r.pghaul_verify);
      std::cout << absl::StrFormat("| %s | pghaul, verify_checksums true | %d | %.2f | %.2f | "
                                   "%.2f | %.2f |\n",
                                   data, r.pghaul_verify.size(), v.median, v.min, v.max,
                                   b.median > 0 ? v.median / b.median : 0.0);
    }
    if (!r.pghaul_async.empty()) {
      const Stats a = Summarise(r.pghaul_async);
      std::cout << absl::StrFormat("| %s | pghaul, repository.archive_async true | %d | %.2f | "
                                   "%.2f | %.2f | %.2f |\n",
                                   data, r.pghaul_async.size(), a.median, a.min, a.max,
                                   b.median > 0 ? a.median / b.median : 0.0);
    }
    if (!r.pghaul_patroni.empty()) {
      const Stats t = Summarise(r.pghaul_patroni);
      std::cout << absl::StrFormat(
          "| %s | pghaul, Patroni target | %d | %.2f | %.2f | %.2f | "
          "%.2f |\n",
          data, r.pghaul_patroni.size(), t.median, t.min, t.max,
          b.median > 0 ? t.median / b.median : 0.0);
      const Stats p = Summarise(r.pghaul);
      std::cout << absl::StrFormat(
          "\nscale %d: median downtime, Patroni target / plain target "
          "(both pghaul): %.2f\n",
          r.scale, p.median > 0 ? t.median / p.median : 0.0);
    }
  }
  if (results.size() >= 2) {
    const double first = Summarise(results.front().pghaul).median;
    const double last = Summarise(results.back().pghaul).median;
    std::cout << absl::StrFormat("\npghaul median at scale %d / at scale %d: %.2f\n",
                                 results.back().scale, results.front().scale,
                                 first > 0 ? last / first : 0.0);
  }
  for (const ScaleResult& r : results) {
    auto list = [](const std::vector<double>& v) {
      std::vector<std::string> parts;
      for (double x : v) parts.push_back(absl::StrFormat("%.3f", x));
      return absl::StrJoin(parts, ", ");
    };
    std::cout << "scale " << r.scale << " every run: pghaul [" << list(r.pghaul)
              << "], baseline [" << list(r.baseline) << "]";
    if (!r.pghaul_verify.empty()) std::cout << ", pghaul verify [" << list(r.pghaul_verify) << "]";
    if (!r.pghaul_async.empty()) {
      std::cout << ", pghaul archive_async [" << list(r.pghaul_async) << "]";
    }
    if (!r.pghaul_patroni.empty()) {
      std::cout << ", pghaul Patroni target [" << list(r.pghaul_patroni) << "]";
    }
    std::cout << "\n";
  }
}

bool ParseInt(const std::string& arg, const char* name, int* value) {
  const std::string prefix = absl::StrCat(name, "=");
  if (arg.rfind(prefix, 0) != 0) return false;
  return absl::SimpleAtoi(arg.substr(prefix.size()), value) && *value >= 0;
}

bool ParseScales(const std::string& arg, std::vector<int>* scales) {
  const std::string prefix = "--scales=";
  if (arg.rfind(prefix, 0) != 0) return false;
  scales->clear();
  for (absl::string_view part : absl::StrSplit(arg.substr(prefix.size()), ',')) {
    int scale = 0;
    if (!absl::SimpleAtoi(part, &scale) || scale < 1) return false;
    scales->push_back(scale);
  }
  return !scales->empty();
}

}  // namespace
}  // namespace pghaul::bench

int main(int argc, char** argv) {
  pghaul::bench::Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (!pghaul::bench::ParseScales(arg, &options.scales) &&
        !pghaul::bench::ParseInt(arg, "--runs", &options.runs) &&
        !pghaul::bench::ParseInt(arg, "--verify-runs", &options.verify_runs) &&
        !pghaul::bench::ParseInt(arg, "--async-runs", &options.async_runs) &&
        !pghaul::bench::ParseInt(arg, "--patroni-runs", &options.patroni_runs)) {
      if (arg.rfind("--keep-logs=", 0) == 0) {
        options.keep_logs = arg.substr(std::string("--keep-logs=").size());
        continue;
      }
      std::cerr << "cutover_downtime_bench: unknown argument '" << arg
                << "'; usage: cutover_downtime_bench [--scales=10,100] [--runs=N] "
                   "[--verify-runs=N] [--async-runs=N] [--patroni-runs=N] [--keep-logs=DIR]\n";
      return 64;
    }
  }
  if (options.runs < 1) {
    std::cerr << "cutover_downtime_bench: --runs must be at least 1\n";
    return 64;
  }
  if (geteuid() != 0) {
    std::cerr << "cutover_downtime_bench: needs root (network namespaces, the postgres user)\n";
    return 77;
  }
  std::sort(options.scales.begin(), options.scales.end());
  std::vector<pghaul::bench::ScaleResult> results;
  const absl::Time start = absl::Now();
  for (size_t i = 0; i < options.scales.size(); ++i) {
    pghaul::bench::Options this_scale = options;
    if (i != 0) {  // verify_checksums true and archive_async: the smallest scale only
      this_scale.verify_runs = 0;
      this_scale.async_runs = 0;
      this_scale.patroni_runs = 0;
    }
    pghaul::bench::ScaleBench bench(options.scales[i], this_scale);
    absl::Status status = bench.Run();
    results.push_back(bench.result());
    if (!options.keep_logs.empty()) {
      bench.KeepControllerLog(
          absl::StrCat(options.keep_logs, "/controller-scale-", options.scales[i], ".log"));
    }
    if (!status.ok()) {
      std::cerr << "cutover_downtime_bench: scale " << options.scales[i] << ": " << status << "\n";
      bench.PrintLogTails();
      pghaul::bench::Report(results);
      return 1;
    }
  }
  pghaul::bench::Report(results);
  std::cout << "total " << absl::Now() - start << "\n";
  return 0;
}
