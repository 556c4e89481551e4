// One run of the fault suite: a whole migration, under a bounded write load, with one fault,
// then the invariants.
//
//   controller 198.18.0.10    legacy 198.18.0.11 (PG 15, pgbench -s 2, `app` writing)
//                             target 198.18.0.12 (PG 15, restored over as a standby)
//
// The migration is driven as an operator would: `run m1 --until restore --mode standby`, then
// `verify m1` (the writer paused and the standby caught up first, so both sides hold the same
// rows; the writer resumes after), then `cutover m1` (which runs through finish), each with
// --detach and then followed through `pghaul status` until it settles. The fault is injected during the phase the plan names,
// `delay` after that phase is seen running. A migration that ends `failed` is resumed (the same
// command again, at most kMaxResumes times) or aborted, as the plan says; once the target is
// promoted it can only be resumed.
//
// Invariants checked after the run (each a named violation when it fails):
//   ended-cleanly         the migration ended `completed` or `aborted`
//   failed-says-why       every `failed` state seen on the way had a message
//   daemons-alive         no pghaul process died that the run had not killed
//   acked-on-target       completed: every acknowledged commit is on the target, and the
//                         counter there matches its rows
//   source-fenced         completed: the source refuses the application's writes
//   acked-on-source       not cut over: every acknowledged commit is still on the source
//   source-writable       not cut over: the source accepts the application's writes
//   one-writable          the sampler never saw both sides accept a write at the same instant
//   sampler-works         the sampler saw the source writable (and, once completed, the target)
//   one-system-id         the source stanza's archive.info and backup.info list only the
//                         source's system identifier, and its archive holds only timeline 1
//   one-controller        (second-controller) the second controller on the same state exits
//                         75 naming the first one's PID and the state directory
//   status-tells          `pghaul status -o json` answers with the final state (and, when
//                         completed, the new stanza's backup label); a failure's message
//                         advises only commands the CLI has, and no abort once promoted
// The migration never settling within kSettleTimeout is itself a violation (`stuck`).
#pragma once

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tests/faults/fault_plan.h"

namespace pghaul::faults {

inline constexpr int kMaxResumes = 2;
inline constexpr absl::Duration kSettleTimeout = absl::Minutes(6);

struct RunResult {
  FaultPlan plan;
  // completed | completed-after-resume | aborted | aborted-after-failure | stuck | harness-error
  std::string outcome = "harness-error";
  // Where the fault landed: the phase running when it was injected; "missed: <why>" when it
  // could not be injected (the run still checks the invariants).
  std::string injected = "not-yet";
  std::vector<std::string> violations;  // "name: detail"
  std::string harness_error;            // the rig could not be built or driven
  absl::Duration duration;

  bool ok() const { return violations.empty() && harness_error.empty(); }
  // One line for the results file: seed, fault, phase, outcome, invariants, duration.
  std::string ResultLine() const;
};

// Builds the rig, runs the migration with the plan's fault, checks the invariants and tears
// everything down (processes by PID, namespaces, the temporary directory), whatever happened.
RunResult RunFaultPlan(const FaultPlan& plan);

}  // namespace pghaul::faults
