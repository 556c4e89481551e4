#include "tests/faults/fault_plan.h"

#include <random>

#include "absl/strings/str_cat.h"

namespace pghaul::faults {
namespace {

constexpr FaultKind kKinds[] = {FaultKind::kControllerKill, FaultKind::kAgentKill,
                                FaultKind::kPgBackRestKill, FaultKind::kLinkCut,
                                FaultKind::kSourcePostgresKill};

// The longest delay drawn for each phase: about how long the phase lasts on a small source, so
// that the fault lands anywhere in it (a phase that ends sooner gets the fault in the next one;
// the run reports where it landed).
absl::Duration MaxDelay(const std::string& phase) {
  if (phase == "prepare-source") return absl::Milliseconds(1500);
  if (phase == "cutover") return absl::Seconds(2);
  return absl::Seconds(3);
}

}  // namespace

std::string FaultKindName(FaultKind kind) {
  switch (kind) {
    case FaultKind::kControllerKill:
      return "controller-kill";
    case FaultKind::kAgentKill:
      return "agent-kill";
    case FaultKind::kPgBackRestKill:
      return "pgbackrest-kill";
    case FaultKind::kLinkCut:
      return "link-cut";
    case FaultKind::kSourcePostgresKill:
      return "source-pg-kill";
  }
  return "unknown";
}

std::vector<std::string> PhasesFor(FaultKind kind) {
  switch (kind) {
    case FaultKind::kControllerKill:
    case FaultKind::kAgentKill:
      return {"prepare-source", "backup", "restore", "cutover", "finish"};
    case FaultKind::kPgBackRestKill:
      // The agents run pgBackRest themselves in these (archive-push and archive-get are run by
      // PostgreSQL, not by an agent).
      return {"prepare-source", "backup", "restore", "finish"};
    case FaultKind::kLinkCut:
      return {"backup", "restore", "cutover", "finish"};
    case FaultKind::kSourcePostgresKill:
      // Before cutover: once the source is fenced, its crash is another suite's question.
      return {"prepare-source", "backup", "restore"};
  }
  return {};
}

std::string FaultPlan::Describe() const {
  return absl::StrCat(
      "seed=", seed, " fault=", FaultKindName(kind), " phase=", phase,
      " delay_ms=", absl::ToInt64Milliseconds(delay), " host=", host.empty() ? "-" : host,
      " outage_ms=", absl::ToInt64Milliseconds(outage),
      " on_failure=", resume_on_failure ? "resume" : "abort", " slow_link=",
      slow_link_host.empty() ? "-" : absl::StrCat(slow_link_host, ":", slow_link_kbit, "kbit"));
}

std::vector<std::string> FaultPlan::SlowLinkArgs() const {
  return {"tbf",     "rate", absl::StrCat(slow_link_kbit, "kbit"), "burst", "32kbit",
          "latency", "400ms"};
}

FaultPlan ChooseFaultPlan(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&rng](uint64_t n) { return rng() % n; };
  FaultPlan plan;
  plan.seed = seed;
  plan.kind = kKinds[pick(std::size(kKinds))];
  const std::vector<std::string> phases = PhasesFor(plan.kind);
  plan.phase = phases[pick(phases.size())];
  plan.delay = absl::Milliseconds(
      static_cast<int64_t>(pick(absl::ToInt64Milliseconds(MaxDelay(plan.phase)) + 1)));
  switch (plan.kind) {
    case FaultKind::kAgentKill:
      plan.host = pick(2) == 0 ? "legacy" : "target";
      plan.outage = absl::Milliseconds(500 + static_cast<int64_t>(pick(4501)));
      break;
    case FaultKind::kLinkCut: {
      static const char* const kHosts[] = {"legacy", "target", "controller"};
      plan.host = kHosts[pick(3)];
      plan.outage = absl::Seconds(1) + absl::Milliseconds(static_cast<int64_t>(pick(19001)));
      break;
    }
    case FaultKind::kSourcePostgresKill:
      plan.host = "legacy";
      plan.outage = absl::Milliseconds(static_cast<int64_t>(pick(3001)));
      break;
    case FaultKind::kControllerKill:
    case FaultKind::kPgBackRestKill:
      break;
  }
  plan.resume_on_failure = pick(4) != 0;  // mostly resume: it goes further into the migration
  // Drawn last, so that adding it left the earlier draws of every seed as they were.
  if (pick(3) == 0) {
    plan.slow_link_host = pick(2) == 0 ? "legacy" : "target";
    plan.slow_link_kbit = 500 + static_cast<int>(pick(9501));
  }
  return plan;
}

}  // namespace pghaul::faults
