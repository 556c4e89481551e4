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
  kTargetPostgresKill,  // kill -9 of the target's postmaster and its children
  kS3Outage,            // the S3 server stopped for `outage`, then started again
  kTargetDiskFull,      // the target's filesystem filled up for `outage`, then freed
  kSecondController,    // a second controller started on the first one's state
};

// "controller-kill", "agent-kill", "pgbackrest-kill", "link-cut", "source-pg-kill",
// "target-pg-kill", "s3-outage", "target-disk-full", "second-controller".
std::string FaultKindName(FaultKind kind);

struct FaultPlan {
  uint64_t seed = 0;
  FaultKind kind = FaultKind::kControllerKill;
  // The phase during which the fault is injected: prepare-source, backup, restore, verify,
  // cutover or finish.
  std::string phase;
  // From the moment the phase is seen running to the injection.
  absl::Duration delay;
  // The host the fault hits: "legacy" or "target" (agent kill), "legacy", "target" or
  // "controller" (link cut); "" for the others.
  std::string host;
  // How long the link stays down / the killed process stays dead before it is started again /
  // the S3 server stays stopped / the target's filesystem stays full.
  absl::Duration outage;
  // When the migration ends `failed`: give the same command again (true) or abort it.
  bool resume_on_failure = true;
  // A slow link throughout the run, besides the fault: a token bucket (tc tbf) of
  // `slow_link_kbit` kbit/s on the eth0 of `slow_link_host` ("legacy" or "target"; "" for none).
  // (netem's loss and delay would be better; this machine's kernel has no sch_netem.)
  std::string slow_link_host;
  int slow_link_kbit = 0;
  // A lossy link throughout the run: nftables drops `loss_permille` of every 1000 packets in
  // and out of `lossy_link_host`'s namespace ("" for none). Drawn after the slow link.
  std::string lossy_link_host;
  int loss_permille = 0;
  // The repository: an S3 server (s3rver over HTTPS on a host of its own) instead of the posix
  // directory. Always for kS3Outage; one run in three otherwise.
  bool s3_repository = false;

  // The `tc qdisc add dev eth0 root ...` arguments for the slow link.
  std::vector<std::string> SlowLinkArgs() const;
  // The nftables ruleset (`nft -f -`) for the lossy link.
  std::string LossyLinkRuleset() const;

  // One line: every choice, for the log and the results file.
  std::string Describe() const;
};

// The phases each kind of fault may hit.
std::vector<std::string> PhasesFor(FaultKind kind);

FaultPlan ChooseFaultPlan(uint64_t seed);

}  // namespace pghaul::faults
