// Backup and restore of one cluster three ways, in one run on the same data and machine:
//
//   pghaul    `pghaul backup` then `pghaul restore --mode rehearsal` (through the controller and
//             both agents: configure, pgBackRest, progress, journaling, service control)
//   raw       the same pgBackRest 2.45 commands by hand, with the config the agents wrote
//             (full backup; restore --type=immediate into an empty directory, then pg_ctl start
//             until it is promoted, as pghaul's rehearsal restore waits for)
//   logical   pg_dump -Fd -j2 of the database, pg_restore -j2 into a new database on the target
//
// Each side of a step is timed by this program (wall clock, including process start). The hosts
// are network namespaces on this machine sharing its cores and page cache (docs/benchmarks.md
// says what that means for the numbers). Needs root; leaves nothing behind.
//
//   build/bench/physical_vs_logical_bench [--scale N] [--random-mb N] [--runs N]
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fixture/command.h"
#include "tests/integration/fixture/json_paths.h"
#include "tests/integration/fixture/network_namespaces.h"
#include "tests/integration/fixture/pg_cluster.h"
#include "tests/integration/fixture/pghaul_processes.h"
#include "tests/integration/fixture/temp_dir.h"
#include "tests/integration/fixture/wait_for.h"

namespace pghaul::bench {
namespace {

using integration::AgentOptions;
using integration::CommandOptions;
using integration::ControllerOptions;
using integration::kPostgresBinDir;
using integration::kPostgresOsUser;
using integration::NetworkNamespaces;
using integration::PgCluster;
using integration::PgClusterOptions;
using integration::PghaulAgent;
using integration::PghaulCli;
using integration::PghaulController;
using integration::RunChecked;
using integration::TempDir;
using nlohmann::json;

constexpr char kPgBackRest[] = "/usr/bin/pgbackrest";
constexpr int kControllerPort = 7400;

struct Options {
  int scale = 20;      // pgbench scale factor (15 MB each)
  int random_mb = 0;   // plus a table of this many MB of random hex (incompressible-ish)
  int runs = 1;        // how many times each step is repeated (the median is reported)
};

struct Host {
  std::unique_ptr<PgCluster> cluster;
  std::unique_ptr<PghaulAgent> agent;
};

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

class Bench {
 public:
  explicit Bench(Options options) : options_(options) {}

  absl::Status Run() {
    PGH_RETURN_IF_ERROR(SetUp());
    PGH_RETURN_IF_ERROR(Load());
    PGH_RETURN_IF_ERROR(Plan());
    for (int run = 1; run <= options_.runs; ++run) {
      std::cout << "== run " << run << " of " << options_.runs << "\n";
      PGH_RETURN_IF_ERROR(PghaulBackupAndRestore());
      PGH_RETURN_IF_ERROR(RawBackupAndRestore(run));
      PGH_RETURN_IF_ERROR(LogicalDumpAndRestore(run));
    }
    Report();
    return absl::OkStatus();
  }

 private:
  absl::Status SetUp() {
    PGH_ASSIGN_OR_RETURN(dir_, TempDir::Create("pghaul-bench-"));
    PGH_ASSIGN_OR_RETURN(backups_root_, dir_->MakeSubdir("backups", kPostgresOsUser, 0750));
    PGH_ASSIGN_OR_RETURN(repo_, dir_->MakeSubdir("backups/repo", kPostgresOsUser, 0750));
    PGH_ASSIGN_OR_RETURN(scratch_, dir_->MakeSubdir("backups/scratch", kPostgresOsUser, 0750));
    PGH_ASSIGN_OR_RETURN(network_, NetworkNamespaces::Create());
    PGH_RETURN_IF_ERROR(network_->AddHost("controller", 10).status());
    ControllerOptions controller;
    controller.listen = ControllerAddress();
    controller.netns = network_->Namespace("controller");
    controller.log_level = "info";
    PGH_ASSIGN_OR_RETURN(controller_,
                         PghaulController::Create(dir_->path() + "/controller", controller));
    PGH_RETURN_IF_ERROR(controller_->Start());
    cli_ = std::make_unique<PghaulCli>(controller_->address(), network_->Namespace("controller"));
    PGH_RETURN_IF_ERROR(AddHost("legacy", 11));
    PGH_RETURN_IF_ERROR(AddHost("target", 12));
    return absl::OkStatus();
  }

  std::string ControllerAddress() const {
    return absl::StrCat(network_->Address("controller"), ":", kControllerPort);
  }

  absl::Status AddHost(const std::string& name, int octet) {
    PGH_ASSIGN_OR_RETURN(std::string netns, network_->AddHost(name, octet));
    Host& host = hosts_[name];
    PgClusterOptions pg;
    pg.name = name;
    pg.netns = netns;
    pg.listen_address = network_->Address(name);
    PGH_ASSIGN_OR_RETURN(host.cluster, PgCluster::Create(dir_->path(), pg));
    PGH_RETURN_IF_ERROR(host.cluster->Start());
    AgentOptions options = AgentOptions::ForCluster(name, ControllerAddress(), *host.cluster);
    options.roots = {backups_root_};
    options.log_level = "info";
    PGH_ASSIGN_OR_RETURN(host.agent,
                         PghaulAgent::Create(absl::StrCat(dir_->path(), "/agent-", name), options));
    PGH_RETURN_IF_ERROR(host.agent->Start());
    return integration::WaitFor(absl::StrCat(name, " online"), absl::Seconds(20),
                                [&]() -> absl::Status {
                                  auto entry = cli_->FindAgent(name);
                                  if (!entry.ok()) return entry.status();
                                  if (integration::At(*entry, "online") != true) {
                                    return absl::UnavailableError("offline");
                                  }
                                  return absl::OkStatus();
                                });
  }

  PgCluster& Cluster(const std::string& name) { return *hosts_.at(name).cluster; }
  std::string AgentConfig(const std::string& name) const {
    return absl::StrCat(dir_->path(), "/agent-", name, "/state/pgbackrest/m1/pgbackrest.conf");
  }
  std::string AgentIncludePath(const std::string& name) const {
    return absl::StrCat(dir_->path(), "/agent-", name, "/state/pgbackrest/m1/conf.d");
  }

  // Runs argv as postgres inside host `name`'s namespace; returns the wall time in seconds.
  absl::StatusOr<double> Timed(const std::string& name, const std::vector<std::string>& argv) {
    CommandOptions options;
    options.launch.run_as = kPostgresOsUser;
    options.launch.netns = network_->Namespace(name);
    options.timeout = absl::Minutes(30);
    const absl::Time start = absl::Now();
    PGH_RETURN_IF_ERROR(RunChecked(argv, options).status());
    return absl::ToDoubleSeconds(absl::Now() - start);
  }

  absl::Status Load() {
    PgCluster& legacy = Cluster("legacy");
    const absl::Time start = absl::Now();
    PGH_RETURN_IF_ERROR(Timed("legacy", {absl::StrCat(kPostgresBinDir, "/pgbench"), "-i", "-q",
                                         "-s", absl::StrCat(options_.scale), "-h",
                                         legacy.socket_dir(), "-p", absl::StrCat(legacy.port()),
                                         "-U", "postgres", "postgres"})
                            .status());
    if (options_.random_mb > 0) {
      // 64 hex characters (~100 bytes a row with its header): about 10000 rows a MB.
      PGH_RETURN_IF_ERROR(
          legacy
              .Query(absl::StrCat("CREATE TABLE random_text AS SELECT g AS id, "
                                  "md5(random()::text) || md5(random()::text) AS t "
                                  "FROM generate_series(1, ",
                                  options_.random_mb * 10000, ") g"))
              .status());
    }
    PGH_ASSIGN_OR_RETURN(std::string size,
                         legacy.Query("SELECT pg_size_pretty(pg_database_size('postgres'))"));
    size_ = size;
    std::cout << "loaded pgbench -s " << options_.scale << " + " << options_.random_mb
              << " MB of random text: database " << size << " in " << absl::Now() - start
              << "\n";
    return absl::OkStatus();
  }

  absl::Status Plan() {
    const std::string plan = absl::StrCat(dir_->path(), "/plan.yaml");
    PGH_RETURN_IF_ERROR(integration::WriteFile(
        plan, absl::StrCat("name: m1\nsource: {agent: legacy}\n"
                           "target: {agent: target, data_directory: \"",
                           Cluster("target").data_dir(),
                           "\", allow_overwrite: true}\n"
                           "stanza: main\nrepository:\n  posix: {path: \"",
                           repo_,
                           "\"}\n  retention_full: 9\n"
                           "backup: {process_max: 2, compress_type: lz4, type: full}\n"
                           "source_restart_allowed: true\nfence: read-only\n")));
    PGH_ASSIGN_OR_RETURN(integration::CommandResult applied, cli_->Run({"plan", "apply", plan}));
    if (!applied.ok()) return absl::InternalError(applied.stderr_text);
    // Preflight and prepare-source (archiving on, stanza-create) are not part of the comparison.
    PGH_ASSIGN_OR_RETURN(integration::CommandResult prepared,
                         cli_->Run({"run", "m1", "--until", "prepare-source"}, absl::Minutes(5)));
    if (!prepared.ok()) return absl::InternalError(prepared.stdout_text + prepared.stderr_text);
    return absl::OkStatus();
  }

  absl::StatusOr<double> PghaulCommand(const std::vector<std::string>& args) {
    const absl::Time start = absl::Now();
    PGH_ASSIGN_OR_RETURN(integration::CommandResult result, cli_->Run(args, absl::Minutes(30)));
    if (!result.ok()) {
      return absl::InternalError(absl::StrCat("pghaul ", absl::StrJoin(args, " "), ": ",
                                              result.stdout_text, result.stderr_text));
    }
    return absl::ToDoubleSeconds(absl::Now() - start);
  }

  absl::Status PghaulBackupAndRestore() {
    // Each includes the CLI's own start and its polling of the controller (every 500 ms).
    PGH_ASSIGN_OR_RETURN(double backup, PghaulCommand({"backup", "m1", "--type", "full"}));
    PGH_ASSIGN_OR_RETURN(double restore,
                         PghaulCommand({"restore", "m1", "--mode", "rehearsal"}));
    seconds_["pghaul"]["backup"].push_back(backup);
    seconds_["pghaul"]["restore"].push_back(restore);
    std::cout << absl::StrFormat("pghaul:  backup %.2f s, restore %.2f s\n", backup, restore);
    return absl::OkStatus();
  }

  absl::Status RawBackupAndRestore(int run) {
    PGH_ASSIGN_OR_RETURN(
        double backup,
        Timed("legacy",
              {kPgBackRest, absl::StrCat("--config=", AgentConfig("legacy")),
               absl::StrCat("--config-include-path=", AgentIncludePath("legacy")),
               "--stanza=main", "--type=full", "--process-max=2", "--compress-type=lz4",
               "--log-level-console=warn", "backup"}));
    // Into an empty directory of the target host, as a first restore would.
    const std::string data = absl::StrCat(scratch_, "/raw-", run);
    PGH_RETURN_IF_ERROR(Timed("target", {"mkdir", "-m", "0700", data}).status());
    PGH_ASSIGN_OR_RETURN(
        double restore,
        Timed("target",
              {kPgBackRest, absl::StrCat("--config=", AgentConfig("target")),
               absl::StrCat("--config-include-path=", AgentIncludePath("target")),
               "--stanza=main", absl::StrCat("--pg1-path=", data), "--type=immediate",
               "--target-action=promote", "--archive-mode=off", "--process-max=2",
               "--log-level-console=warn", "restore"}));
    // Like pghaul's rehearsal: the copy is started and counts only once it is promoted.
    const absl::Time started = absl::Now();
    const std::string port = "5499";
    PGH_RETURN_IF_ERROR(Timed("target", {absl::StrCat(kPostgresBinDir, "/pg_ctl"), "start", "-w",
                                         "-t", "300", "-D", data, "-l", data + ".log", "-o",
                                         absl::StrCat("-p ", port, " -k ", scratch_,
                                                      " -c listen_addresses=")})
                            .status());
    absl::Status promoted = integration::WaitFor(
        "the raw restore to be promoted", absl::Minutes(5), [&]() -> absl::Status {
          CommandOptions options;
          options.launch.run_as = kPostgresOsUser;
          auto answer = RunChecked({absl::StrCat(kPostgresBinDir, "/psql"), "-XAtq", "-h",
                                    scratch_, "-p", port, "-U", "postgres", "-c",
                                    "SELECT pg_is_in_recovery()"},
                                   options);
          if (!answer.ok()) return answer.status();
          return *answer == "f\n" || *answer == "f" ? absl::OkStatus()
                                                    : absl::UnavailableError("in recovery");
        });
    restore += absl::ToDoubleSeconds(absl::Now() - started);
    PGH_RETURN_IF_ERROR(Timed("target", {absl::StrCat(kPostgresBinDir, "/pg_ctl"), "stop", "-w",
                                         "-m", "immediate", "-D", data})
                            .status());
    PGH_RETURN_IF_ERROR(promoted);
    std::filesystem::remove_all(data);
    std::filesystem::remove(data + ".log");
    seconds_["raw pgBackRest"]["backup"].push_back(backup);
    seconds_["raw pgBackRest"]["restore"].push_back(restore);
    std::cout << absl::StrFormat("raw:     backup %.2f s, restore %.2f s\n", backup, restore);
    return absl::OkStatus();
  }

  absl::Status LogicalDumpAndRestore(int run) {
    PgCluster& legacy = Cluster("legacy");
    PgCluster& target = Cluster("target");
    const std::string dump = absl::StrCat(scratch_, "/dump-", run);
    PGH_ASSIGN_OR_RETURN(
        double backup,
        Timed("legacy", {absl::StrCat(kPostgresBinDir, "/pg_dump"), "-Fd", "-j2", "-f", dump,
                         "-h", legacy.socket_dir(), "-p", absl::StrCat(legacy.port()), "-U",
                         "postgres", "postgres"}));
    const std::string database = absl::StrCat("logical_", run);
    PGH_RETURN_IF_ERROR(target.Query(absl::StrCat("CREATE DATABASE ", database)).status());
    PGH_ASSIGN_OR_RETURN(
        double restore,
        Timed("target", {absl::StrCat(kPostgresBinDir, "/pg_restore"), "-j2", "-d", database,
                         "-h", target.socket_dir(), "-p", absl::StrCat(target.port()), "-U",
                         "postgres", dump}));
    std::filesystem::remove_all(dump);
    PGH_RETURN_IF_ERROR(target.Query(absl::StrCat("DROP DATABASE ", database)).status());
    seconds_["pg_dump/pg_restore"]["backup"].push_back(backup);
    seconds_["pg_dump/pg_restore"]["restore"].push_back(restore);
    std::cout << absl::StrFormat("logical: dump %.2f s, restore %.2f s\n", backup, restore);
    return absl::OkStatus();
  }

  void Report() {
    const double pghaul_backup = Median(seconds_["pghaul"]["backup"]);
    const double pghaul_restore = Median(seconds_["pghaul"]["restore"]);
    std::cout << "\n| database " << size_ << " (pgbench -s " << options_.scale << " + "
              << options_.random_mb << " MB random), median of " << options_.runs
              << " | backup s | restore s | total s | total / pghaul |\n|---|---|---|---|---|\n";
    for (const char* way : {"pghaul", "raw pgBackRest", "pg_dump/pg_restore"}) {
      const double backup = Median(seconds_[way]["backup"]);
      const double restore = Median(seconds_[way]["restore"]);
      std::cout << absl::StrFormat("| %s | %.2f | %.2f | %.2f | %.2f |\n", way, backup, restore,
                                   backup + restore,
                                   (backup + restore) / (pghaul_backup + pghaul_restore));
    }
  }

  Options options_;
  std::string size_;
  std::unique_ptr<TempDir> dir_;
  std::string backups_root_;
  std::string repo_;
  std::string scratch_;
  std::unique_ptr<NetworkNamespaces> network_;
  std::unique_ptr<PghaulController> controller_;
  std::unique_ptr<PghaulCli> cli_;
  std::map<std::string, Host> hosts_;  // after the namespaces: destroyed first
  std::map<std::string, std::map<std::string, std::vector<double>>> seconds_;
};

bool ParseFlag(const char* arg, const char* name, int* value) {
  const std::string prefix = absl::StrCat(name, "=");
  if (std::string(arg).rfind(prefix, 0) != 0) return false;
  return absl::SimpleAtoi(std::string(arg).substr(prefix.size()), value) && *value >= 0;
}

}  // namespace
}  // namespace pghaul::bench

int main(int argc, char** argv) {
  pghaul::bench::Options options;
  for (int i = 1; i < argc; ++i) {
    if (!pghaul::bench::ParseFlag(argv[i], "--scale", &options.scale) &&
        !pghaul::bench::ParseFlag(argv[i], "--random-mb", &options.random_mb) &&
        !pghaul::bench::ParseFlag(argv[i], "--runs", &options.runs)) {
      std::cerr << "physical_vs_logical_bench: unknown argument '" << argv[i]
                << "'; usage: physical_vs_logical_bench [--scale=N] [--random-mb=N] [--runs=N]\n";
      return 64;
    }
  }
  if (options.scale < 1 || options.runs < 1) {
    std::cerr << "physical_vs_logical_bench: --scale and --runs must be at least 1\n";
    return 64;
  }
  if (geteuid() != 0) {
    std::cerr << "physical_vs_logical_bench: needs root (network namespaces, the postgres user)\n";
    return 77;
  }
  absl::Status status = pghaul::bench::Bench(options).Run();
  if (!status.ok()) {
    std::cerr << "physical_vs_logical_bench: " << status << "\n";
    return 1;
  }
  return 0;
}
