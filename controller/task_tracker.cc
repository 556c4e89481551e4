#include "controller/task_tracker.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/identifiers.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/task_names.h"
#include "common/time_proto.h"

namespace pghaul::controller {
namespace {

constexpr absl::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS tasks (
  task_id     TEXT PRIMARY KEY,
  agent_id    TEXT NOT NULL,
  ord         INTEGER NOT NULL,
  has_secrets INTEGER NOT NULL,
  task        BLOB NOT NULL,   -- v1.Task, secrets cleared
  info        BLOB NOT NULL    -- v1.TaskInfo without recent_events
);
CREATE TABLE IF NOT EXISTS task_events (
  task_id TEXT NOT NULL REFERENCES tasks(task_id),
  seq     INTEGER NOT NULL,
  event   BLOB NOT NULL,       -- v1.TaskEvent
  PRIMARY KEY (task_id, seq)
);
)sql";

bool StripSecrets(v1::Task& task) {
  if (!task.has_configure_pgbackrest() || !task.configure_pgbackrest().has_secrets()) {
    return false;
  }
  task.mutable_configure_pgbackrest()->clear_secrets();
  return true;
}

std::string StateName(v1::TaskResult::State state) {
  if (state == v1::TaskResult::STATE_UNSPECIFIED) return "failed";
  return absl::AsciiStrToLower(v1::TaskResult::State_Name(state));
}

}  // namespace

absl::StatusOr<std::unique_ptr<TaskTracker>> TaskTracker::Open(SqliteDb* db, Clock* clock) {
  PGH_RETURN_IF_ERROR(db->Exec(kSchema));
  std::unique_ptr<TaskTracker> tracker(new TaskTracker(db, clock));
  PGH_RETURN_IF_ERROR(tracker->Load());
  return tracker;
}

absl::Status TaskTracker::Load() {
  PGH_ASSIGN_OR_RETURN(auto stmt,
                       db_->Prepare("SELECT task_id, ord, has_secrets, task, info FROM tasks"));
  absl::MutexLock lock(&mu_);
  while (true) {
    PGH_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (!row) break;
    Entry entry;
    entry.order = stmt->ColumnInt(1);
    entry.has_secrets = stmt->ColumnInt(2) != 0;
    if (!entry.task.ParseFromString(stmt->ColumnBlob(3)) ||
        !entry.info.ParseFromString(stmt->ColumnBlob(4))) {
      return absl::DataLossError(
          absl::StrCat("state database: task ", stmt->ColumnText(0), " is unreadable"));
    }
    next_order_ = std::max(next_order_, entry.order + 1);
    tasks_[stmt->ColumnText(0)] = std::move(entry);
  }
  return absl::OkStatus();
}

absl::Status TaskTracker::Persist(const Entry& entry, const v1::TaskEvent* event) {
  PGH_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
  auto body = [&]() -> absl::Status {
    if (event != nullptr) {
      PGH_ASSIGN_OR_RETURN(auto insert, db_->Prepare("INSERT OR IGNORE INTO task_events "
                                                     "(task_id, seq, event) VALUES (?, ?, ?)"));
      insert->Bind(1, event->task_id())
          .Bind(2, static_cast<int64_t>(event->seq()))
          .BindBlob(3, event->SerializeAsString());
      PGH_RETURN_IF_ERROR(insert->Run());
    }
    PGH_ASSIGN_OR_RETURN(auto upsert,
                         db_->Prepare("INSERT INTO tasks (task_id, agent_id, ord, has_secrets, "
                                      "task, info) VALUES (?, ?, ?, ?, ?, ?) "
                                      "ON CONFLICT(task_id) DO UPDATE SET info = excluded.info"));
    upsert->Bind(1, entry.info.task_id())
        .Bind(2, entry.info.agent_id())
        .Bind(3, entry.order)
        .Bind(4, static_cast<int64_t>(entry.has_secrets))
        .BindBlob(5, entry.task.SerializeAsString())
        .BindBlob(6, entry.info.SerializeAsString());
    return upsert->Run();
  };
  absl::Status status = body();
  if (!status.ok()) {
    db_->Exec("ROLLBACK").IgnoreError();
    return status;
  }
  return db_->Exec("COMMIT");
}

absl::StatusOr<v1::Task> TaskTracker::Register(absl::string_view agent_id, v1::Task task) {
  PGH_RETURN_IF_ERROR(ValidateAgentId(agent_id));
  if (task.task_id().empty()) task.set_task_id(RandomHexId());
  PGH_RETURN_IF_ERROR(ValidateTaskId(task.task_id()));
  if (task.op_case() == v1::Task::OP_NOT_SET) {
    return absl::InvalidArgumentError("the task names no operation");
  }
  absl::MutexLock lock(&mu_);
  if (auto it = tasks_.find(task.task_id()); it != tasks_.end()) {
    if (it->second.info.agent_id() != agent_id) {
      return absl::AlreadyExistsError(absl::StrCat(
          "task ", task.task_id(), " already exists for agent ", it->second.info.agent_id()));
    }
    auto full = with_secrets_.find(task.task_id());
    return full != with_secrets_.end() ? full->second : it->second.task;
  }
  Entry entry;
  entry.task = task;
  entry.has_secrets = StripSecrets(entry.task);
  entry.order = next_order_++;
  entry.info.set_task_id(task.task_id());
  entry.info.set_agent_id(std::string(agent_id));
  entry.info.set_op(DescribeOperation(task));
  entry.info.set_state("pending");
  *entry.info.mutable_created_at() = ToProto(clock_->Now());
  PGH_RETURN_IF_ERROR(Persist(entry, nullptr));
  if (entry.has_secrets) with_secrets_[task.task_id()] = task;
  tasks_[task.task_id()] = std::move(entry);
  return task;
}

absl::StatusOr<v1::Ack> TaskTracker::Record(absl::string_view agent_id,
                                            const v1::TaskEvent& event) {
  v1::Ack ack;
  ack.set_task_id(event.task_id());
  ack.set_seq(event.seq());
  absl::MutexLock lock(&mu_);
  auto it = tasks_.find(event.task_id());
  if (it == tasks_.end() || it->second.info.agent_id() != agent_id) {
    PGH_LOG_WARN("agent {} sent event #{} of task {} that this controller does not know", agent_id,
                 event.seq(), event.task_id());
    return ack;  // acknowledged so the agent stops resending it
  }
  Entry updated = it->second;
  v1::TaskInfo& info = updated.info;
  bool duplicate = event.has_result() ? info.has_result() : event.seq() <= info.last_seq();
  if (duplicate) {
    ack.set_seq(std::max<uint64_t>(info.last_seq(), event.seq()));
    return ack;
  }
  if (event.seq() > info.last_seq() + 1) {
    uint64_t lost = event.seq() - info.last_seq() - 1;
    // The result of a task interrupted by an agent restart jumps far ahead on purpose.
    if (!event.has_result() || lost < (uint64_t{1} << 32)) {
      info.set_events_lost(info.events_lost() + lost);
      PGH_LOG_WARN("task {}: {} event(s) before #{} were lost", event.task_id(), lost, event.seq());
    }
  }
  info.set_last_seq(std::max<uint64_t>(info.last_seq(), event.seq()));
  info.set_events_received(info.events_received() + 1);
  if (info.state() == "pending") info.set_state("running");
  if (event.has_progress()) *info.mutable_progress() = event.progress();
  if (event.has_result()) {
    *info.mutable_result() = event.result();
    info.set_state(StateName(event.result().state()));
    *info.mutable_finished_at() = event.time();
  }
  PGH_RETURN_IF_ERROR(Persist(updated, &event));
  if (event.has_result()) {
    with_secrets_.erase(event.task_id());
    PGH_LOG_INFO("task {} ({}) on agent {} finished: {}{}", event.task_id(), info.op(), agent_id,
                 info.state(),
                 event.result().message().empty() ? "" : ": " + event.result().message());
  }
  it->second = std::move(updated);
  return ack;
}

std::vector<v1::Task> TaskTracker::Unfinished(absl::string_view agent_id) const {
  absl::MutexLock lock(&mu_);
  std::vector<const Entry*> entries;
  for (const auto& [id, entry] : tasks_) {
    if (entry.info.agent_id() == agent_id && !entry.info.has_result()) entries.push_back(&entry);
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry* a, const Entry* b) { return a->order < b->order; });
  std::vector<v1::Task> out;
  for (const Entry* entry : entries) {
    auto full = with_secrets_.find(entry->info.task_id());
    if (full != with_secrets_.end()) {
      out.push_back(full->second);
    } else {
      out.push_back(entry->task);
      if (entry->has_secrets) out.back().set_reattach_only(true);
    }
  }
  return out;
}

absl::StatusOr<v1::TaskInfo> TaskTracker::Get(absl::string_view task_id, int recent_events) const {
  v1::TaskInfo info;
  {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(task_id);
    if (it == tasks_.end()) {
      return absl::NotFoundError(absl::StrCat("no task '", task_id, "' is known"));
    }
    info = it->second.info;
  }
  if (recent_events > 0) {
    PGH_ASSIGN_OR_RETURN(auto stmt, db_->Prepare("SELECT event FROM task_events WHERE task_id = ? "
                                                 "ORDER BY seq DESC LIMIT ?"));
    stmt->Bind(1, task_id).Bind(2, static_cast<int64_t>(recent_events));
    std::vector<v1::TaskEvent> events;
    while (true) {
      PGH_ASSIGN_OR_RETURN(bool row, stmt->Step());
      if (!row) break;
      v1::TaskEvent event;
      if (event.ParseFromString(stmt->ColumnBlob(0))) events.push_back(std::move(event));
    }
    for (auto it = events.rbegin(); it != events.rend(); ++it) {
      *info.add_recent_events() = std::move(*it);
    }
  }
  return info;
}

std::vector<v1::TaskInfo> TaskTracker::List(absl::string_view agent_id, int limit) const {
  absl::MutexLock lock(&mu_);
  std::vector<const Entry*> entries;
  for (const auto& [id, entry] : tasks_) {
    if (agent_id.empty() || entry.info.agent_id() == agent_id) entries.push_back(&entry);
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry* a, const Entry* b) { return a->order > b->order; });
  std::vector<v1::TaskInfo> out;
  for (const Entry* entry : entries) {
    if (static_cast<int>(out.size()) >= limit) break;
    out.push_back(entry->info);
  }
  return out;
}

}  // namespace pghaul::controller
