#include "tests/faults/fault_plan.h"

#include <random>

#include "absl/strings/str_cat.h"

namespace pghaul::faults {
namespace {

constexpr FaultKind kKinds[] = {
    FaultKind::kControllerKill, FaultKind::kAgentKill,          FaultKind::kPgBackRestKill,
    FaultKind::kLinkCut,        FaultKind::kSourcePostgresKill, FaultKind::kTargetPostgresKill,
    FaultKind::kS3Outage,       FaultKind::kTargetDiskFull,     FaultKind::kSecondController};

// The longest delay drawn for each phase: about how long the phase lasts on a small source, so
// that the fault lands anywhere in it (a phase that ends sooner gets the fault in the next one;
// the run reports where it landed).
absl::Duration MaxDelay(const std::string& phase) {
  if (phase == "prepare-source") return absl::Milliseconds(1500);
  if (phase == "cutover") return absl::Seconds(2);
  if (phase == "verify") return absl::Milliseconds(150);  // it takes about 100 ms here
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
    case FaultKind::kTargetPostgresKill:
      return "target-pg-kill";
    case FaultKind::kS3Outage:
      return "s3-outage";
    case FaultKind::kTargetDiskFull:
      return "target-disk-full";
    case FaultKind::kSecondController:
      return "second-controller";
  }
  return "unknown";
}

std::vector<std::string> PhasesFor(FaultKind kind) {
  switch (kind) {
    case FaultKind::kControllerKill:
    case FaultKind::kAgentKill:
    case FaultKind::kSecondController:
      return {"prepare-source", "backup", "restore", "verify", "cutover", "finish"};
    case FaultKind::kPgBackRestKill:
      // The agents run pgBackRest themselves in these (archive-push and archive-get are run by
      // PostgreSQL, not by an agent).
      return {"prepare-source", "backup", "restore", "finish"};
    case FaultKind::kLinkCut:
      return {"backup", "restore", "verify", "cutover", "finish"};
    case FaultKind::kSourcePostgresKill:
      // Before cutover: once the source is fenced, its crash is another suite's question.
      return {"prepare-source", "backup", "restore", "verify"};
    case FaultKind::kTargetPostgresKill:
      // Once pghaul has started it: the restore starts the standby, verify reads it, the
      // cutover promotes it, finish backs it up.
      return {"restore", "verify", "cutover", "finish"};
    case FaultKind::kS3Outage:
      // Every phase that reads or writes the repository: stanza-create and the archive check,
      // the backup, the restore and the standby's archive-get, the final switch's archive-push
      // and the standby's last archive-get, the new stanza's backup.
      return {"prepare-source", "backup", "restore", "cutover", "finish"};
    case FaultKind::kTargetDiskFull:
      return {"restore"};
  }
  return {};
}

std::string FaultPlan::Describe() const {
  return absl::StrCat(
      "seed=", seed, " fault=", FaultKindName(kind), " phase=", phase,
      " delay_ms=", absl::ToInt64Milliseconds(delay), " host=", host.empty() ? "-" : host,
      " outage_ms=", absl::ToInt64Milliseconds(outage),
      " on_failure=", resume_on_failure ? "resume" : "abort", " slow_link=",
      slow_link_host.empty() ? "-" : absl::StrCat(slow_link_host, ":", slow_link_kbit, "kbit"),
      " lossy_link=",
      lossy_link_host.empty() ? "-" : absl::StrCat(lossy_link_host, ":", loss_permille, "permille"),
      " repo=", s3_repository ? "s3" : "posix");
}

std::string FaultPlan::LossyLinkRuleset() const {
  // numgen random mod 1000 draws 0..999 for each packet; < N drops N in 1000.
  return absl::StrCat("table inet pghaul_faults_loss {\n",
                      "  chain in { type filter hook input priority 0; numgen random mod 1000 < ",
                      loss_permille, " drop; }\n",
                      "  chain out { type filter hook output priority 0; numgen random mod 1000 < ",
                      loss_permille, " drop; }\n", "}\n");
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
  // The disk fills within the restore's first second, while pgBackRest writes (the phase
  // takes 1 to 2 s on this data).
  const absl::Duration max_delay =
      plan.kind == FaultKind::kTargetDiskFull ? absl::Milliseconds(800) : MaxDelay(plan.phase);
  plan.delay =
      absl::Milliseconds(static_cast<int64_t>(pick(absl::ToInt64Milliseconds(max_delay) + 1)));
  switch (plan.kind) {
    case FaultKind::kAgentKill:
      plan.host = pick(2) == 0 ? "legacy" : "target";
      plan.outage = absl::Milliseconds(500 + static_cast<int64_t>(pick(4501)));
      break;
    case FaultKind::kLinkCut: {
      static const char* const kHosts[] = {"legacy", "target", "controller"};
      plan.host = kHosts[pick(3)];
      plan.outage = absl::Seconds(1) + absl::Milliseconds(static_cast<int64_t>(pick(59001)));
      break;
    }
    case FaultKind::kSourcePostgresKill:
      plan.host = "legacy";
      plan.outage = absl::Milliseconds(static_cast<int64_t>(pick(3001)));
      break;
    case FaultKind::kTargetPostgresKill:
      plan.host = "target";
      plan.outage = absl::Milliseconds(static_cast<int64_t>(pick(3001)));
      break;
    case FaultKind::kS3Outage:
      plan.host = "s3";
      plan.outage = absl::Seconds(2) + absl::Milliseconds(static_cast<int64_t>(pick(28001)));
      break;
    case FaultKind::kTargetDiskFull:
      plan.host = "target";
      plan.outage = absl::Seconds(2) + absl::Milliseconds(static_cast<int64_t>(pick(18001)));
      break;
    case FaultKind::kControllerKill:
    case FaultKind::kPgBackRestKill:
    case FaultKind::kSecondController:
      break;
  }
  plan.resume_on_failure = pick(4) != 0;  // mostly resume: it goes further into the migration
  // Drawn last, so that adding it left the earlier draws of every seed as they were.
  if (pick(3) == 0) {
    plan.slow_link_host = pick(2) == 0 ? "legacy" : "target";
    plan.slow_link_kbit = 500 + static_cast<int>(pick(9501));
  }
  // Always drawn (a draw per choice whatever the outcome), so each later draw has a fixed place.
  const bool lossy = pick(3) == 0;
  const std::string lossy_host = pick(2) == 0 ? "legacy" : "target";
  const int permille = 1 + static_cast<int>(pick(30));  // 0.1% to 3%
  if (lossy) {
    plan.lossy_link_host = lossy_host;
    plan.loss_permille = permille;
  }
  const bool s3 = pick(3) == 0;
  plan.s3_repository = s3 || plan.kind == FaultKind::kS3Outage;
  return plan;
}

}  // namespace pghaul::faults
