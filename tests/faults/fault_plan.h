// What one run of the fault suite does, drawn from its seed alone, so that any run can be
// replayed with `pghaul_faults --seed N`.
//
// The draws use std::mt19937_64 and plain modulo arithmetic (not the <random> distributions,
// whose results the standard leaves to each library), so a seed means the same run everywhere.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace pghaul::faults {

enum class FaultKind {
  kControllerKill,      // kill -9 of the controller, started again at once
  kAgentKill,           // kill -9 of one agent, started again after `outage`
  kPgBackRestKill,      // kill -9 of a pgBackRest process the agents run
  kLinkCut,             // one host's link down for `outage`, then up
  kSourcePostgresKill,  // kill -9 of the source's postmaster and its children, restarted
};

// "controller-kill", "agent-kill", "pgbackrest-kill", "link-cut", "source-pg-kill".
std::string FaultKindName(FaultKind kind);

struct FaultPlan {
  uint64_t seed = 0;
  FaultKind kind = FaultKind::kControllerKill;
  // The phase during which the fault is injected: prepare-source, backup, restore, cutover or
  // finish.
  std::string phase;
  // From the moment the phase is seen running to the injection.
  absl::Duration delay;
  // The host the fault hits: "legacy" or "target" (agent kill), "legacy", "target" or
  // "controller" (link cut); "" for the others.
  std::string host;
  // How long the link stays down / the killed process stays dead before it is started again.
  absl::Duration outage;
  // When the migration ends `failed`: give the same command again (true) or abort it.
  bool resume_on_failure = true;
  // A slow link throughout the run, besides the fault: a token bucket (tc tbf) of
  // `slow_link_kbit` kbit/s on the eth0 of `slow_link_host` ("legacy" or "target"; "" for none).
  // (netem's loss and delay would be better; this machine's kernel has no sch_netem.)
  std::string slow_link_host;
  int slow_link_kbit = 0;

  // The `tc qdisc add dev eth0 root ...` arguments for the slow link.
  std::vector<std::string> SlowLinkArgs() const;

  // One line: every choice, for the log and the results file.
  std::string Describe() const;
};

// The phases each kind of fault may hit.
std::vector<std::string> PhasesFor(FaultKind kind);

FaultPlan ChooseFaultPlan(uint64_t seed);

}  // namespace pghaul::faults
