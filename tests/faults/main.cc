// pghaul_faults: runs whole migrations with one injected fault each and checks the invariants
// (tests/faults/README.md). Every run is drawn from its seed and prints it first, so that
// `pghaul_faults --seed N` replays it.
//
//   pghaul_faults --seed N [--runs K] [--results FILE] [--dry-run]
//   pghaul_faults --seeds A,B,C [--results FILE] [--dry-run]
//
// Exit status: 0 when every run kept every invariant, 1 when one did not (or its rig could not
// be built), 64 on a usage error, 77 when not run as root.
#include <sysexits.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "tests/faults/fault_plan.h"
#include "tests/faults/fault_run.h"

namespace {

constexpr char kUsage[] =
    "usage: pghaul_faults --seed N [--runs K] [--results FILE] [--dry-run]\n"
    "       pghaul_faults --seeds A,B,C [--results FILE] [--dry-run]\n"
    "Runs K migrations (seeds N, N+1, ...) with one injected fault each; --dry-run prints each\n"
    "seed's choices only. --results appends one line per run to FILE.\n";

int Usage(const std::string& problem) {
  std::cerr << "pghaul_faults: " << problem << "\n" << kUsage;
  return EX_USAGE;
}

}  // namespace

int main(int argc, char** argv) {
  std::cout << std::unitbuf;  // a run's log readable while it runs (tail -f)
  std::vector<uint64_t> seeds;
  uint64_t first = 0;
  bool have_first = false;
  int runs = 1;
  bool dry_run = false;
  std::string results_path;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--seed") {
      if (!absl::SimpleAtoi(value(), &first)) return Usage("--seed needs a number");
      have_first = true;
    } else if (arg == "--runs") {
      if (!absl::SimpleAtoi(value(), &runs) || runs < 1) return Usage("--runs needs a count");
    } else if (arg == "--seeds") {
      for (absl::string_view text : absl::StrSplit(value(), ',', absl::SkipEmpty())) {
        uint64_t seed = 0;
        if (!absl::SimpleAtoi(text, &seed)) return Usage("--seeds needs numbers, comma-separated");
        seeds.push_back(seed);
      }
    } else if (arg == "--results") {
      results_path = value();
      if (results_path.empty()) return Usage("--results needs a file");
    } else if (arg == "--dry-run") {
      dry_run = true;
    } else if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    } else {
      return Usage("unknown argument " + arg);
    }
  }
  if (have_first == !seeds.empty()) return Usage("give either --seed or --seeds");
  for (int k = 0; have_first && k < runs; ++k) seeds.push_back(first + k);

  if (dry_run) {
    for (uint64_t seed : seeds) {
      std::cout << pghaul::faults::ChooseFaultPlan(seed).Describe() << "\n";
    }
    return 0;
  }
  if (geteuid() != 0) {
    std::cerr << "pghaul_faults: must run as root (network namespaces, the postgres user)\n";
    return EX_NOPERM;
  }
  int failed = 0;
  for (uint64_t seed : seeds) {
    const pghaul::faults::FaultPlan plan = pghaul::faults::ChooseFaultPlan(seed);
    std::cout << "=== pghaul_faults run: " << plan.Describe() << "\n"
              << "=== replay: pghaul_faults --seed " << seed << "\n"
              << std::flush;
    const pghaul::faults::RunResult result = pghaul::faults::RunFaultPlan(plan);
    if (!result.harness_error.empty()) {
      std::cout << "HARNESS ERROR: " << result.harness_error << "\n";
    }
    std::cout << "=== result: " << result.ResultLine() << "\n" << std::flush;
    if (!results_path.empty()) {
      std::ofstream out(results_path, std::ios::app);
      out << result.ResultLine() << "\n";
    }
    if (!result.ok()) ++failed;
  }
  if (seeds.size() > 1) {
    std::cout << "=== " << seeds.size() - failed << " of " << seeds.size()
              << " runs kept every invariant\n";
  }
  return failed == 0 ? 0 : 1;
}
