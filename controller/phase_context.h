// What a migration phase sees of the world: its plan and record, a way to run one task on an
// agent and wait for its result, and the event journal. Two implementations: the live one in
// MigrationManager, and a dry run that records the tasks a phase would send and answers each
// with a made-up success (so `--dry-run` walks the same code as a real run).
#pragma once

#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controller/plan.h"
#include "pghaul/v1/controller_state.pb.h"

namespace pghaul::controller {

struct StepOptions {
  // A task that only reads (facts, LSNs, checksums) may be sent again after a controller
  // restart: its id gets a unique suffix. Every other task id is deterministic (migration,
  // phase, attempt, step), so that a phase re-run after a crash re-attaches to the task it had
  // sent instead of running it again.
  bool read_only = false;
  // Report a FAILED/REFUSED result as a value instead of an error.
  bool allow_failure = false;
  // Show the task's progress in the migration (backup, restore).
  bool track_progress = false;
  uint32_t timeout_seconds = 0;  // 0: none
};

class PhaseContext {
 public:
  virtual ~PhaseContext() = default;

  virtual const Plan& plan() const = 0;
  // A copy of the current record.
  virtual v1::MigrationRecord record() const = 0;
  // Changes the record and journals it before returning.
  virtual absl::Status Update(absl::FunctionRef<void(v1::MigrationRecord&)> change) = 0;
  virtual void Event(absl::string_view level, absl::string_view text) = 0;

  // Sends `task` to `agent_id` as step `step` of the current phase and waits for its result.
  // Errors: FailedPrecondition naming the agent, the operation and the agent's message when the
  // task did not succeed (unless allow_failure); Cancelled when the migration is being aborted
  // or the controller stops.
  virtual absl::StatusOr<v1::TaskResult> Run(const std::string& agent_id, absl::string_view step,
                                             v1::Task task, StepOptions options = {}) = 0;
  // Runs several tasks at once (e.g. checksums on both sides) and waits for all.
  struct Parallel {
    std::string agent_id;
    std::string step;
    v1::Task task;
    StepOptions options;
  };
  virtual std::vector<absl::StatusOr<v1::TaskResult>> RunAll(std::vector<Parallel> tasks) = 0;

  // Waits `d` (false: aborting or stopping, give up).
  virtual bool Sleep(absl::Duration d) = 0;
  virtual absl::Time Now() const = 0;
  virtual bool dry_run() const = 0;
  // The secrets the plan points at (resolved now, never stored).
  virtual absl::StatusOr<v1::Secrets> Secrets() const = 0;
};

}  // namespace pghaul::controller
