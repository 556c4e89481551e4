#include "agent/task_manager.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/task_names.h"
#include "common/time_proto.h"

namespace pghaul::agent {
namespace {

// The result of a task that was running when the agent died carries this sequence number, so it
// follows every event the controller may have received before the restart.
constexpr uint64_t kInterruptedResultSeq = uint64_t{1} << 40;

constexpr absl::string_view kTasksSubdirectory = "/tasks";

}  // namespace

struct TaskManager::TaskState {
  std::string task_id;
  std::string op;
  std::deque<v1::TaskEvent> events;  // unacknowledged, in seq order
  uint64_t last_seq = 0;
  uint64_t acked_seq = 0;
  uint64_t sent_seq = 0;  // highest seq handed to the current sink
  uint64_t dropped_log_lines = 0;
  bool finished = false;
  bool dormant = false;  // loaded from disk: sent only when the controller asks again
  v1::TaskResult::State state = v1::TaskResult::STATE_UNSPECIFIED;
  bool cancelled = false;
  std::vector<std::function<void()>> cancel_hooks;
  std::thread thread;
};

class TaskManager::Context final : public TaskContext {
 public:
  Context(TaskManager* manager, std::shared_ptr<TaskState> task)
      : manager_(manager), task_(std::move(task)) {}

  void Log(absl::string_view stream, absl::string_view line) override {
    v1::TaskEvent event;
    event.mutable_log()->set_stream(std::string(stream));
    event.mutable_log()->set_text(std::string(line));
    absl::MutexLock lock(&manager_->mu_);
    if (task_->events.size() >= kMaxBufferedEvents) {
      ++task_->dropped_log_lines;
      return;
    }
    manager_->Append(*task_, std::move(event));
  }

  void ReportProgress(const v1::Progress& progress) override {
    v1::TaskEvent event;
    *event.mutable_progress() = progress;
    absl::MutexLock lock(&manager_->mu_);
    manager_->Append(*task_, std::move(event));
  }

  bool cancelled() const override {
    absl::MutexLock lock(&manager_->mu_);
    return task_->cancelled;
  }

  void OnCancel(std::function<void()> hook) override {
    {
      absl::MutexLock lock(&manager_->mu_);
      if (!task_->cancelled) {
        task_->cancel_hooks.push_back(std::move(hook));
        return;
      }
    }
    hook();
  }

 private:
  TaskManager* const manager_;
  const std::shared_ptr<TaskState> task_;
};

TaskManager::TaskManager(std::string state_dir, ExecutorFactory factory, Clock* clock)
    : tasks_dir_(absl::StrCat(state_dir, kTasksSubdirectory)),
      factory_(std::move(factory)),
      clock_(clock) {}

TaskManager::~TaskManager() {
  std::vector<std::function<void()>> hooks;
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    sink_ = nullptr;
    for (auto& [id, task] : tasks_) {
      if (!task->finished && !task->cancelled) {
        task->cancelled = true;
        for (auto& hook : task->cancel_hooks) hooks.push_back(std::move(hook));
      }
      if (task->thread.joinable()) threads.push_back(std::move(task->thread));
    }
  }
  for (auto& hook : hooks) hook();
  for (auto& thread : threads) thread.join();
}

std::string TaskManager::ResultPath(absl::string_view task_id) const {
  return absl::StrCat(tasks_dir_, "/", task_id, ".result");
}

std::string TaskManager::StartedPath(absl::string_view task_id) const {
  return absl::StrCat(tasks_dir_, "/", task_id, ".started");
}

absl::Status TaskManager::LoadPersisted() {
  // state_dir itself may be a link (the operator's choice); tasks/ may not, so results are never
  // written or read through one.
  const std::string state_dir = tasks_dir_.substr(0, tasks_dir_.size() - kTasksSubdirectory.size());
  if (absl::Status s = MakeDirectoriesBelow(state_dir, tasks_dir_, 0700); !s.ok()) return s;
  DIR* dir = ::opendir(tasks_dir_.c_str());
  if (dir == nullptr) return absl::InternalError(absl::StrCat("cannot list ", tasks_dir_));
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(dir)) names.emplace_back(entry->d_name);
  ::closedir(dir);
  std::sort(names.begin(), names.end());

  absl::MutexLock lock(&mu_);
  for (const std::string& name : names) {
    bool is_result = absl::EndsWith(name, ".result");
    bool is_started = absl::EndsWith(name, ".started");
    if (!is_result && !is_started) continue;
    std::string task_id = name.substr(0, name.rfind('.'));
    if (!ValidateTaskId(task_id).ok() || tasks_.contains(task_id)) continue;
    auto task = std::make_shared<TaskState>();
    task->task_id = task_id;
    task->finished = true;
    task->dormant = true;
    v1::TaskEvent result_event;
    if (is_result) {
      absl::StatusOr<std::string> bytes = ReadRegularFile(absl::StrCat(tasks_dir_, "/", name));
      if (!bytes.ok() || !result_event.ParseFromString(*bytes) || !result_event.has_result()) {
        PGH_LOG_WARN("ignoring unreadable task result {}/{}", tasks_dir_, name);
        continue;
      }
    } else {
      if (::access(ResultPath(task_id).c_str(), F_OK) == 0) continue;  // the result wins
      absl::StatusOr<std::string> op = ReadRegularFile(StartedPath(task_id), /*max_bytes=*/4096);
      task->op = op.ok() ? *op : "unknown";
      result_event.set_task_id(task_id);
      result_event.set_seq(kInterruptedResultSeq);
      *result_event.mutable_time() = ToProto(clock_->Now());
      result_event.mutable_result()->set_state(v1::TaskResult::FAILED);
      result_event.mutable_result()->set_interrupted(true);
      result_event.mutable_result()->set_message(absl::StrCat(
          "interrupted: the agent stopped while this task (", task->op,
          ") ran; whatever it ran may have finished or not, so check before retrying (for "
          "pgBackRest: `info`)"));
      PGH_LOG_WARN("task {} ({}) was interrupted by an agent restart", task_id, task->op);
    }
    task->state = result_event.result().state();
    task->last_seq = result_event.seq();
    task->acked_seq = result_event.seq() - 1;
    task->sent_seq = task->acked_seq;
    task->events.push_back(std::move(result_event));
    tasks_.emplace(task_id, std::move(task));
  }
  return absl::OkStatus();
}

void TaskManager::Submit(const v1::Task& task) {
  absl::Status id_ok = ValidateTaskId(task.task_id());
  if (!id_ok.ok()) {
    PGH_LOG_WARN("refused a task with an invalid id: {}", id_ok.message());
    return;  // there is no id to report a result under
  }
  std::unique_ptr<TaskExecutor> executor;
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(task.task_id());
    if (it != tasks_.end()) {
      TaskState& known = *it->second;
      PGH_LOG_INFO("task {} ({}) sent again: re-attaching from seq {}", known.task_id, known.op,
                   known.acked_seq + 1);
      known.dormant = false;
      known.sent_seq = known.acked_seq;
      Pump(known);
      return;
    }
  }
  absl::StatusOr<std::unique_ptr<TaskExecutor>> made =
      task.reattach_only()
          ? absl::FailedPreconditionError(
                "this agent does not know the task (it was restarted since) and the controller "
                "asked only to re-attach: not started")
          : factory_(task);
  auto state = std::make_shared<TaskState>();
  state->task_id = task.task_id();
  state->op = DescribeOperation(task);
  absl::MutexLock lock(&mu_);
  if (tasks_.contains(task.task_id())) return;  // a concurrent Submit won
  if (made.ok()) {
    size_t running = 0;
    for (const auto& [id, known] : tasks_) running += known->finished ? 0 : 1;
    if (running >= kMaxRunningTasks) {
      made = absl::ResourceExhaustedError(absl::StrCat(
          "this agent already runs ", running, " tasks, its limit; not started (send it again "
          "once one has finished)"));
    }
  }
  tasks_.emplace(state->task_id, state);
  if (!made.ok()) {
    PGH_LOG_WARN("refused task {} ({}): {}", state->task_id, state->op, made.status().message());
    v1::TaskResult result;
    result.set_state(v1::TaskResult::REFUSED);
    result.set_message(std::string(made.status().message()));
    Finish(*state, std::move(result));
    return;
  }
  if (absl::Status s = WriteFileAtomically(StartedPath(state->task_id), state->op, 0600); !s.ok()) {
    PGH_LOG_WARN("cannot record the start of task {}: {}", state->task_id, s.message());
  }
  PGH_LOG_INFO("task {} ({}) started", state->task_id, state->op);
  TaskState* raw = state.get();
  raw->thread = std::thread([this, state, executor = std::move(made).value()]() mutable {
    Context context(this, state);
    v1::TaskResult result = executor->Run(context);
    absl::MutexLock lock(&mu_);
    if (state->cancelled && result.state() == v1::TaskResult::FAILED) {
      result.set_state(v1::TaskResult::CANCELLED);
    }
    Finish(*state, std::move(result));
  });
}

void TaskManager::Append(TaskState& task, v1::TaskEvent event) {
  event.set_task_id(task.task_id);
  event.set_seq(++task.last_seq);
  *event.mutable_time() = ToProto(clock_->Now());
  task.events.push_back(std::move(event));
  Pump(task);
}

void TaskManager::Finish(TaskState& task, v1::TaskResult result) {
  result.set_dropped_log_lines(task.dropped_log_lines);
  task.state = result.state();
  v1::TaskEvent event;
  *event.mutable_result() = std::move(result);
  event.set_task_id(task.task_id);
  event.set_seq(task.last_seq + 1);
  *event.mutable_time() = ToProto(clock_->Now());
  if (absl::Status s =
          WriteFileAtomically(ResultPath(task.task_id), event.SerializeAsString(), 0600);
      !s.ok()) {
    PGH_LOG_WARN("cannot persist the result of task {}: {}", task.task_id, s.message());
  }
  ::unlink(StartedPath(task.task_id).c_str());
  PGH_LOG_INFO("task {} ({}) finished: {} {}", task.task_id, task.op,
               v1::TaskResult::State_Name(task.state), event.result().message());
  task.finished = true;
  ++task.last_seq;
  task.events.push_back(std::move(event));
  Pump(task);
}

void TaskManager::Pump(TaskState& task) {
  if (!sink_ || task.dormant) return;
  for (const v1::TaskEvent& event : task.events) {
    if (event.seq() <= task.sent_seq) continue;
    if (event.seq() > task.acked_seq + kSendWindow) break;
    sink_(event);
    task.sent_seq = event.seq();
  }
}

void TaskManager::Ack(absl::string_view task_id, uint64_t seq) {
  absl::MutexLock lock(&mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return;
  TaskState& task = *it->second;
  if (seq <= task.acked_seq) return;
  task.acked_seq = std::min(seq, task.last_seq);
  task.sent_seq = std::max(task.sent_seq, task.acked_seq);
  while (!task.events.empty() && task.events.front().seq() <= task.acked_seq) {
    task.events.pop_front();
  }
  Pump(task);
}

void TaskManager::Cancel(absl::string_view task_id) {
  std::vector<std::function<void()>> hooks;
  {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(task_id);
    if (it == tasks_.end() || it->second->finished || it->second->cancelled) return;
    PGH_LOG_INFO("cancelling task {} ({})", task_id, it->second->op);
    it->second->cancelled = true;
    hooks.swap(it->second->cancel_hooks);
  }
  for (auto& hook : hooks) hook();
}

void TaskManager::SetSink(Sink sink) {
  absl::MutexLock lock(&mu_);
  sink_ = std::move(sink);
  for (auto& [id, task] : tasks_) {
    task->sent_seq = task->acked_seq;
    Pump(*task);
  }
}

std::vector<TaskManager::TaskSummary> TaskManager::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<TaskSummary> out;
  for (const auto& [id, task] : tasks_) {
    out.push_back({task->task_id, task->op, task->state, task->last_seq, task->acked_seq});
  }
  return out;
}

bool TaskManager::WaitFinished(absl::string_view task_id, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto finished = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = tasks_.find(task_id);
    return it != tasks_.end() && it->second->finished;
  };
  return mu_.AwaitWithDeadline(absl::Condition(&finished), absl::Now() + timeout);
}

}  // namespace pghaul::agent
