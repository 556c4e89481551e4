// The controller's durable record of the tasks it gave agents, and the exactly-once intake of
// their events.
//
// Every task is journaled (SQLite) before it is sent; every event is journaled before it is
// acknowledged, so after a controller crash the agent replays exactly the events not yet
// journaled and none is recorded twice. A task's state: pending (journaled, agent not heard from
// on it) -> running (first event) -> succeeded | failed | cancelled | refused (its result).
//
// Secrets (ConfigurePgBackRest.secrets) are never journaled: the journal holds the task with
// them cleared. Unfinished tasks are re-sent when their agent reconnects; one whose secrets this
// controller no longer has (it restarted) is re-sent as reattach_only, so an agent that lost it
// reports it failed instead of running it without its secrets.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "controller/sqlite_db.h"
#include "pghaul/v1/migrations.pb.h"

namespace pghaul::controller {

class TaskTracker {
 public:
  // Creates the tables if needed and loads every task.
  static absl::StatusOr<std::unique_ptr<TaskTracker>> Open(SqliteDb* db,
                                                           Clock* clock = Clock::Real());

  // Journals a new task for `agent_id` (making a task id if it has none) and returns the task
  // to send, with its secrets. A task id already journaled is not journaled again: the stored
  // task is returned (SubmitTask is idempotent). InvalidArgument for a malformed id.
  absl::StatusOr<v1::Task> Register(absl::string_view agent_id, v1::Task task);

  // Journals `event` if it is new and returns the acknowledgement to send either way.
  absl::StatusOr<v1::Ack> Record(absl::string_view agent_id, const v1::TaskEvent& event);

  // The agent's unfinished tasks, to send again on a new stream (re-attach), oldest first.
  std::vector<v1::Task> Unfinished(absl::string_view agent_id) const;

  // NotFound for an unknown task id.
  absl::StatusOr<v1::TaskInfo> Get(absl::string_view task_id, int recent_events = 20) const;
  // Newest first; agent_id "" for all.
  std::vector<v1::TaskInfo> List(absl::string_view agent_id, int limit = 50) const;

 private:
  struct Entry {
    v1::TaskInfo info;
    v1::Task task;  // secrets cleared
    bool has_secrets = false;
    int64_t order = 0;  // creation order
  };
  TaskTracker(SqliteDb* db, Clock* clock) : db_(db), clock_(clock) {}
  absl::Status Load();
  absl::Status Persist(const Entry& entry, const v1::TaskEvent* event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  SqliteDb* const db_;
  Clock* const clock_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> tasks_ ABSL_GUARDED_BY(mu_);
  // Full tasks (with secrets) submitted since this controller started, until they finish.
  absl::flat_hash_map<std::string, v1::Task> with_secrets_ ABSL_GUARDED_BY(mu_);
  int64_t next_order_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace pghaul::controller
