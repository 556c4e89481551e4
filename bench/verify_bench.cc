// Verification of one migrated pair of clusters two ways, in one run on the same data:
//
//   pghaul     `pghaul verify MIG`: both agents at once compute the schema catalogue and every
//              table's row count and checksum (4 connections per database sharing one snapshot),
//              the controller compares them (wall clock of the CLI command, through the
//              controller and both agents)
//   baseline   what newer pgcopydb's `compare data` runs: per table
//              `SELECT count(*), sum(hashtext(t::text)) FROM t`, one table after another, on the
//              source, then the same on the target (psql per table; timed per side), with
//              PostgreSQL's parallel workers allowed (its default); and once more on the source
//              with max_parallel_workers_per_gather = 0, one process per table: the issue's
//              "one table at a time"
//
// The pair: pgbench at --scale plus a table of --random-mb MB of random text, on a source host,
// backed up and restored (`pghaul run --until restore`, a rehearsal copy) to a target host. Both
// hosts are network namespaces on this machine: they share its cores and page cache, and each
// side is read once before timing, so both ways read from memory. Needs root; leaves nothing.
//
//   build/bench/verify_bench [--scale N] [--random-mb N] [--runs N]
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "tests/integration/fixture/command.h"
#include "tests/integration/fixture/migration_fixture.h"
#include "tests/integration/fixture/pg_cluster.h"

namespace pghaul::bench {
namespace {

using integration::MigrationRig;
using integration::PgCluster;

struct Options {
  int scale = 20;       // pgbench scale factor (about 15 MB each)
  int random_mb = 100;  // plus a table of this many MB of random text
  int runs = 1;         // each measurement repeated; the median is reported
};

// The verify phase's own duration as the controller journaled it (started_at to finished_at),
// without the CLI's polling around it.
absl::StatusOr<double> VerifyPhaseSeconds(MigrationRig& rig) {
  PGH_ASSIGN_OR_RETURN(nlohmann::json status, rig.Status("m1"));
  if (!status.contains("phases") || !status["phases"].is_array()) {
    return absl::InternalError("status has no phases");
  }
  for (const nlohmann::json& phase : status["phases"]) {
    if (!phase.is_object() || phase.value("name", "") != "verify") continue;
    absl::Time started, finished;
    std::string error;
    if (!absl::ParseTime(absl::RFC3339_full, phase.value("started_at", ""), &started, &error) ||
        !absl::ParseTime(absl::RFC3339_full, phase.value("finished_at", ""), &finished, &error)) {
      return absl::InternalError(absl::StrCat("verify phase times: ", error, " in ", phase.dump()));
    }
    return absl::ToDoubleSeconds(finished - started);
  }
  return absl::InternalError("status has no verify phase");
}

std::string List(const std::vector<double>& values) {
  std::vector<std::string> parts;
  for (double v : values) parts.push_back(absl::StrFormat("%.2f", v));
  return absl::StrJoin(parts, ", ");
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// The baseline on one cluster: the tables listed, then one query per table, one after another.
// `parallel` false: with max_parallel_workers_per_gather = 0, one process per table, as the
// issue's "one table at a time" (12 s by hand for one side of the 1.9 GB pair).
absl::StatusOr<double> Baseline(const PgCluster& cluster, bool parallel = true) {
  const absl::Time start = absl::Now();
  PGH_ASSIGN_OR_RETURN(
      std::string tables,
      cluster.Query("SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables "
                    "ORDER BY 1"));
  for (absl::string_view table : absl::StrSplit(tables, '\n', absl::SkipEmpty())) {
    PGH_RETURN_IF_ERROR(
        cluster
            .Query(absl::StrCat(parallel ? "" : "SET max_parallel_workers_per_gather = 0; ",
                                "SELECT count(*), sum(hashtext(t::text)) FROM ", table, " AS t"))
            .status());
  }
  return absl::ToDoubleSeconds(absl::Now() - start);
}

absl::Status Run(const Options& options) {
  PGH_ASSIGN_OR_RETURN(std::unique_ptr<MigrationRig> rig, MigrationRig::Create("pghaul-vbench-"));
  integration::RigHostOptions source;
  source.octet = 11;
  source.initdb_args = {"--encoding=UTF8", "--locale=C.UTF-8"};
  PGH_RETURN_IF_ERROR(rig->AddHost("legacy", source).status());
  integration::RigHostOptions target = source;
  target.octet = 20;
  PGH_RETURN_IF_ERROR(rig->AddHost("target", target).status());
  PgCluster& legacy = rig->Cluster("legacy");

  absl::Time start = absl::Now();
  integration::CommandOptions as_postgres;
  as_postgres.launch.run_as = integration::kPostgresOsUser;
  as_postgres.timeout = absl::Minutes(20);
  PGH_RETURN_IF_ERROR(
      integration::RunChecked({absl::StrCat(integration::kPostgresBinDir, "/pgbench"), "-i", "-q",
                               "-s", absl::StrCat(options.scale), "-h", legacy.socket_dir(), "-p",
                               absl::StrCat(legacy.port()), "-U", "postgres", "postgres"},
                              as_postgres)
          .status());
  // About 1 MB per 4000 rows of 2 md5s (64 characters) and an id.
  PGH_RETURN_IF_ERROR(rig->RunSqlScript(
      legacy, absl::StrCat("CREATE TABLE random_text (id bigint PRIMARY KEY, body text);\n"
                           "INSERT INTO random_text SELECT g, md5(random()::text) || "
                           "md5(random()::text) FROM generate_series(1, ",
                           options.random_mb * 9000, ") AS g;\nVACUUM ANALYZE;\n")));
  PGH_ASSIGN_OR_RETURN(std::string size,
                       legacy.Query("SELECT pg_size_pretty(pg_database_size('postgres'))"));
  std::cout << "loaded " << size << " in " << absl::Now() - start << "\n";

  start = absl::Now();
  PGH_RETURN_IF_ERROR(rig->ApplyPlan(rig->PosixPlan()));
  PGH_ASSIGN_OR_RETURN(integration::CommandResult restored,
                       rig->Cli({"run", "m1", "--until", "restore"}, absl::Minutes(20)));
  if (!restored.ok()) {
    return absl::InternalError(absl::StrCat("run --until restore: ", restored.stderr_text));
  }
  std::cout << "backed up and restored in " << absl::Now() - start << "\n";
  PgCluster& copy = rig->Cluster("target");

  // Warm both sides' caches (they share the machine's page cache anyway).
  PGH_RETURN_IF_ERROR(Baseline(legacy).status());
  PGH_RETURN_IF_ERROR(Baseline(copy).status());

  std::vector<double> pghaul;
  std::vector<double> pghaul_phase;
  std::vector<double> baseline_source;
  std::vector<double> baseline_target;
  std::vector<double> baseline_serial;
  for (int run = 0; run < options.runs; ++run) {
    start = absl::Now();
    PGH_ASSIGN_OR_RETURN(integration::CommandResult verified,
                         rig->Cli({"verify", "m1"}, absl::Minutes(20)));
    if (!verified.ok()) {
      return absl::InternalError(
          absl::StrCat("verify: ", verified.stdout_text, verified.stderr_text));
    }
    pghaul.push_back(absl::ToDoubleSeconds(absl::Now() - start));
    PGH_ASSIGN_OR_RETURN(double phase, VerifyPhaseSeconds(*rig));
    pghaul_phase.push_back(phase);
    PGH_ASSIGN_OR_RETURN(double s, Baseline(legacy));
    baseline_source.push_back(s);
    PGH_ASSIGN_OR_RETURN(double t, Baseline(copy));
    baseline_target.push_back(t);
    PGH_ASSIGN_OR_RETURN(double serial, Baseline(legacy, /*parallel=*/false));
    baseline_serial.push_back(serial);
  }
  const double p = Median(pghaul);
  const double ph = Median(pghaul_phase);
  const double s = Median(baseline_source);
  const double t = Median(baseline_target);
  const double one = Median(baseline_serial);
  std::cout << "\n| data | pghaul verify, both sides (`pghaul verify` / the phase) | baseline "
               "source | baseline target | baseline both (one after the other) | baseline one "
               "side / pghaul both | baseline source without parallel workers | that / pghaul "
               "both |\n|---|---|---|---|---|---|---|---|\n"
            << absl::StrFormat(
                   "| pgbench -s %d + %d MB random text (%s) | %.2f s / %.2f s | %.2f s | "
                   "%.2f s | %.2f s | %.2f | %.2f s | %.2f |\n",
                   options.scale, options.random_mb, size, p, ph, s, t, s + t, s / p, one,
                   one / p)
            << "every run: pghaul verify [" << List(pghaul) << "], its phase ["
            << List(pghaul_phase) << "], baseline source [" << List(baseline_source)
            << "], baseline target [" << List(baseline_target)
            << "], baseline source without parallel workers [" << List(baseline_serial) << "]\n";
  return absl::OkStatus();
}

}  // namespace
}  // namespace pghaul::bench

int main(int argc, char** argv) {
  pghaul::bench::Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&arg](absl::string_view flag, int* out) {
      std::string prefix = absl::StrCat(flag, "=");
      return arg.rfind(prefix, 0) == 0 && absl::SimpleAtoi(arg.substr(prefix.size()), out);
    };
    if (!value("--scale", &options.scale) && !value("--random-mb", &options.random_mb) &&
        !value("--runs", &options.runs)) {
      std::cerr << "usage: verify_bench [--scale=N] [--random-mb=N] [--runs=N]\n";
      return 64;
    }
  }
  if (geteuid() != 0) {
    std::cerr << "verify_bench needs root (network namespaces, the postgres OS user)\n";
    return 77;
  }
  absl::Status status = pghaul::bench::Run(options);
  if (!status.ok()) {
    std::cerr << "verify_bench: " << status << "\n";
    return 1;
  }
  return 0;
}
