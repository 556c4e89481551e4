// Runs the controller's tasks on the agent and keeps their events until the controller has them.
//
// Lifecycle of one task:
//
//   Submit(new id) --validate--> REFUSED (result event, nothing ran)
//        |
//        +--> RUNNING --executor returns--> FINISHED (result event; result persisted)
//                |                              ^
//                +--Cancel----------------------+  (executor ends its process group)
//
// Events (log lines, progress, the result) get per-task sequence numbers from 1 without gaps.
// They are sent through the sink (the current stream) at most `kSendWindow` ahead of the
// controller's Ack, kept until acknowledged, and replayed from the first unacknowledged one when
// a new sink (a new stream) is set. Submitting a known task id re-attaches: it never starts the
// task a second time. Finished results are written to <state_dir>/tasks/ so an agent restart does
// not lose them; a task that was running when the agent died is reported FAILED as interrupted
// (its pgBackRest may have finished or not: the caller checks with `info`), never run again.
#pragma once

#include <atomic>
#include <deque>
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
#include "pghaul/v1/agent_link.pb.h"

namespace pghaul::agent {

// What a running task may do. Thread-safe.
class TaskContext {
 public:
  virtual ~TaskContext() = default;
  virtual void Log(absl::string_view stream, absl::string_view line) = 0;
  virtual void ReportProgress(const v1::Progress& progress) = 0;
  virtual bool cancelled() const = 0;
  // `hook` is called (from another thread) when the task is cancelled, e.g. to end the task's
  // process group. Called at once if the task is already cancelled.
  virtual void OnCancel(std::function<void()> hook) = 0;
};

// Runs one validated task to completion on its own thread.
class TaskExecutor {
 public:
  virtual ~TaskExecutor() = default;
  virtual v1::TaskResult Run(TaskContext& context) = 0;
};

// Validates a task and makes its executor; an error means REFUSED (nothing runs), and its message
// says what was wrong.
using ExecutorFactory =
    std::function<absl::StatusOr<std::unique_ptr<TaskExecutor>>(const v1::Task& task)>;

class TaskManager {
 public:
  // Events sent ahead of the controller's Ack, per task.
  static constexpr uint64_t kSendWindow = 256;
  // Unacknowledged events kept per task; past it, log lines are dropped (and counted in the
  // result) but progress and the result never are.
  static constexpr size_t kMaxBufferedEvents = 20000;
  // Tasks running at once. A migration needs two or three at a time (checksums and the schema
  // on one host, a wait beside a switch); a task beyond the bound is REFUSED, nothing started,
  // so that a controller gone wrong cannot start pgBackRest processes without end.
  static constexpr size_t kMaxRunningTasks = 16;

  TaskManager(std::string state_dir, ExecutorFactory factory, Clock* clock = Clock::Real());
  ~TaskManager();  // cancels running tasks and waits for them

  // Loads results persisted by an earlier run of the agent. Errors name the file.
  absl::Status LoadPersisted();

  void Submit(const v1::Task& task);
  void Ack(absl::string_view task_id, uint64_t seq);
  void Cancel(absl::string_view task_id);

  using Sink = std::function<void(const v1::TaskEvent&)>;
  // Sets the current stream (null while disconnected). A new sink gets every unacknowledged
  // event again, from the oldest.
  void SetSink(Sink sink);

  struct TaskSummary {
    std::string task_id;
    std::string op;                                                   // e.g. "pgbackrest backup"
    v1::TaskResult::State state = v1::TaskResult::STATE_UNSPECIFIED;  // UNSPECIFIED: running
    uint64_t last_seq = 0;
    uint64_t acked_seq = 0;
  };
  std::vector<TaskSummary> List() const;

  // Blocks until the task has finished (for tests and shutdown). False on timeout.
  bool WaitFinished(absl::string_view task_id, absl::Duration timeout);

 private:
  struct TaskState;
  class Context;

  void Start(std::shared_ptr<TaskState> task, std::unique_ptr<TaskExecutor> executor);
  // Appends an event with the next seq and sends what the window allows.
  void Append(TaskState& task, v1::TaskEvent event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Finish(TaskState& task, v1::TaskResult result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Pump(TaskState& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string ResultPath(absl::string_view task_id) const;
  std::string StartedPath(absl::string_view task_id) const;

  const std::string tasks_dir_;
  const ExecutorFactory factory_;
  Clock* const clock_;

  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<TaskState>, std::less<>> tasks_ ABSL_GUARDED_BY(mu_);
  Sink sink_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pghaul::agent
