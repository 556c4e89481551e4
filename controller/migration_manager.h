// Runs migrations: stores plans, runs their phases in the background (one worker thread per
// busy migration), journals every transition before it takes effect, and resumes after a
// controller restart. The Migrations gRPC service is a thin layer over this class.
//
// Resuming without running anything twice: every task a phase sends has a deterministic id
// (migration, phase, attempt, step) journaled by the TaskTracker before it is sent. A phase
// re-run after a crash sends the same ids again; the tracker answers finished ones from its
// journal and the agents re-attach to running ones (docs/architecture.md).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "controller/agent_registry.h"
#include "controller/migration_store.h"
#include "controller/plan.h"
#include "controller/task_tracker.h"
#include "pghaul/v1/controller_state.pb.h"
#include "pghaul/v1/migrations.pb.h"

namespace pghaul::controller {

struct MigrationDeps {
  AgentRegistry* registry = nullptr;
  TaskTracker* tasks = nullptr;
  MigrationStore* store = nullptr;
  Clock* clock = Clock::Real();
  // Where secrets named by `{env: NAME}` come from (::getenv in the controller).
  std::function<const char*(const char*)> env;
  // How often waits look at task results and the clock (real time).
  absl::Duration poll_interval = absl::Milliseconds(200);
};

class MigrationManager {
 public:
  explicit MigrationManager(MigrationDeps deps);
  // Stops the workers without changing any journaled state (a later start resumes).
  ~MigrationManager();

  // Loads every migration and resumes those that were running, scheduled or aborting.
  absl::Status Load();

  // Errors: InvalidArgument (plan problems, every one listed; unknown agents), AlreadyExists.
  absl::StatusOr<v1::MigrationInfo> Apply(const v1::ApplyPlanRequest& request);
  std::vector<v1::MigrationInfo> List();
  // NotFound for an unknown id.
  absl::StatusOr<v1::MigrationInfo> Get(const std::string& migration_id, uint64_t events_after,
                                        int max_events);
  // Errors: NotFound, InvalidArgument (command, phase, type or mode), FailedPrecondition (busy,
  // aborted, completed, or a phase it needs has not succeeded yet: the message says which
  // command to run first).
  absl::StatusOr<v1::StartPhaseResponse> Start(const v1::StartPhaseRequest& request);
  // Errors: NotFound; FailedPrecondition once the target is promoted.
  absl::StatusOr<v1::MigrationInfo> Abort(const std::string& migration_id);

  // Stops every worker at its next wait and joins them. Idempotent.
  void Shutdown();

 private:
  class LiveContext;
  class DryRunContext;
  struct Slot {
    v1::MigrationRecord record;
    std::shared_ptr<const Plan> plan;
    bool worker_running = false;
    v1::Progress progress;  // in memory only
    std::string current_task_id;
  };

  absl::Status SaveLocked(Slot& slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Event(const std::string& migration_id, absl::string_view phase, absl::string_view level,
             absl::string_view text);
  void StartWorkerLocked(const std::string& migration_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Work(const std::string& migration_id);
  void Abort(const std::string& migration_id, const std::shared_ptr<const Plan>& plan);
  v1::MigrationInfo InfoLocked(const Slot& slot) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  bool stopping() const;

  const MigrationDeps deps_;
  mutable absl::Mutex mu_;
  std::map<std::string, Slot> slots_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pghaul::controller
