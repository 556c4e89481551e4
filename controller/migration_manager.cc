#include "controller/migration_manager.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/identifiers.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/task_names.h"
#include "common/time_proto.h"
#include "controller/migration_phases.h"

namespace pghaul::controller {
namespace {

// The advice after `phase` failed: the command that runs it again, and abort while it still
// applies. `pghaul finish` does not exist (finish runs with `run`), and once cutover promoted the
// target, abort is refused: only `run` finishes the migration.
std::string WhatToDoAfter(absl::string_view phase, absl::string_view id, bool target_promoted) {
  if (target_promoted) {
    return absl::StrCat("The target is already promoted: fix the cause, then finish with pghaul "
                        "run ", id, " (abort no longer applies)");
  }
  const bool by_run =
      phase == kPhasePrepareSource || phase == kPhasePreflight || phase == kPhaseFinish;
  return absl::StrCat("Fix the cause, then run the phase again (pghaul ", by_run ? "run" : phase,
                      " ", id, "), or abort (pghaul abort ", id, ")");
}

constexpr absl::string_view kStatePlanned = "planned";
constexpr absl::string_view kStateScheduled = "scheduled";
constexpr absl::string_view kStateRunning = "running";
constexpr absl::string_view kStateReady = "ready";
constexpr absl::string_view kStateFailed = "failed";
constexpr absl::string_view kStateCompleted = "completed";
constexpr absl::string_view kStateAborting = "aborting";
constexpr absl::string_view kStateAborted = "aborted";

// A task id of at most 64 characters that says where it comes from:
// <migration>.<phase>.<attempt>.<step>[.<unique>]; a long migration id is cut and completed
// with a hash so that ids stay distinct.
std::string TaskIdFor(const std::string& migration_id, absl::string_view phase, uint32_t attempt,
                      absl::string_view step, bool unique) {
  std::string tail = absl::StrCat(".", phase, ".", attempt, ".", step);
  if (unique) absl::StrAppend(&tail, ".", RandomHexId().substr(0, 8));
  std::string head = migration_id;
  if (head.size() + tail.size() > 64) {
    size_t keep = tail.size() + 9 < 64 ? 64 - tail.size() - 9 : 1;
    head = absl::StrCat(head.substr(0, keep), "-",
                        absl::StrFormat("%08x", static_cast<uint32_t>(
                                                    std::hash<std::string>()(migration_id))));
  }
  std::string id = head + tail;
  if (id.size() > 64) id = id.substr(0, 64);
  return id;
}

std::string DescribeRepository(const Plan& plan) {
  switch (plan.repository.kind) {
    case RepositoryKind::kPosix:
      return absl::StrCat("posix ", plan.repository.posix.path);
    case RepositoryKind::kS3:
      return absl::StrCat("s3 ", plan.repository.s3.bucket, " at ", plan.repository.s3.endpoint,
                          ":", plan.repository.s3.port);
    case RepositoryKind::kRepoHost:
      return absl::StrCat("repo-host ", plan.repository.repo_host.host, ":",
                          plan.repository.repo_host.port);
  }
  return "";
}

v1::PhaseInfo* FindPhase(v1::MigrationRecord& record, absl::string_view name) {
  for (v1::PhaseInfo& phase : *record.mutable_info()->mutable_phases()) {
    if (phase.name() == name) return &phase;
  }
  return nullptr;
}

const v1::PhaseInfo* FindPhase(const v1::MigrationRecord& record, absl::string_view name) {
  for (const v1::PhaseInfo& phase : record.info().phases()) {
    if (phase.name() == name) return &phase;
  }
  return nullptr;
}

bool Succeeded(const v1::MigrationRecord& record, absl::string_view name) {
  const v1::PhaseInfo* phase = FindPhase(record, name);
  return phase != nullptr && phase->state() == "succeeded";
}

std::string NextStepHint(const v1::MigrationRecord& record) {
  const std::string& id = record.info().migration_id();
  if (!Succeeded(record, kPhaseBackup)) return absl::StrCat("next: pghaul backup ", id);
  if (!Succeeded(record, kPhaseRestore)) return absl::StrCat("next: pghaul restore ", id);
  if (!Succeeded(record, kPhaseVerify)) return absl::StrCat("next: pghaul verify ", id);
  if (record.info().restore_mode() != "standby") {
    return absl::StrCat("the rehearsal copy is verified; for the final migration: pghaul restore ",
                        id, " --mode standby, then pghaul cutover ", id);
  }
  return absl::StrCat("next: pghaul cutover ", id);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The contexts phases run in.

class MigrationManager::LiveContext : public PhaseContext {
 public:
  LiveContext(MigrationManager* manager, std::string id, std::shared_ptr<const Plan> plan,
              std::string phase, uint32_t attempt, bool aborting)
      : manager_(manager),
        id_(std::move(id)),
        plan_(std::move(plan)),
        phase_(std::move(phase)),
        attempt_(attempt),
        aborting_(aborting) {}

  const Plan& plan() const override { return *plan_; }

  v1::MigrationRecord record() const override {
    absl::MutexLock lock(&manager_->mu_);
    return manager_->slots_.at(id_).record;
  }

  absl::Status Update(absl::FunctionRef<void(v1::MigrationRecord&)> change) override {
    absl::MutexLock lock(&manager_->mu_);
    Slot& slot = manager_->slots_.at(id_);
    change(slot.record);
    return manager_->SaveLocked(slot);
  }

  void Event(absl::string_view level, absl::string_view text) override {
    manager_->Event(id_, phase_, level, text);
  }

  // A read-only task that an agent restart interrupted is sent again (it only reads, and its id
  // is new each time), up to kReadOnlyRetries times: a wait of the cutover's catch-up spans
  // seconds, long enough to be cut by an agent that is restarted under it.
  absl::StatusOr<v1::TaskResult> Run(const std::string& agent_id, absl::string_view step,
                                     v1::Task task, StepOptions options) override {
    constexpr int kReadOnlyRetries = 3;
    for (int attempt = 0;; ++attempt) {
      absl::StatusOr<v1::TaskResult> result = RunOnce(agent_id, step, task, options);
      if (!result.ok() || !result->interrupted() || !options.read_only) return result;
      if (attempt == kReadOnlyRetries) {
        if (options.allow_failure) return result;
        return absl::FailedPreconditionError(
            absl::StrCat(agent_id, ": ", DescribeOperation(task), " was interrupted by ",
                         kReadOnlyRetries + 1, " agent restarts in a row: ", result->message()));
      }
      Event("warn", absl::StrCat(DescribeOperation(task), " on ", agent_id,
                                 " was interrupted by an agent restart; it only reads, so it is "
                                 "sent again"));
    }
  }

  absl::StatusOr<v1::TaskResult> RunOnce(const std::string& agent_id, absl::string_view step,
                                         v1::Task task, StepOptions options) {
    if (Interrupted()) return absl::CancelledError("the migration is being aborted or stopped");
    const std::string task_id = TaskIdFor(id_, phase_, attempt_, step, options.read_only);
    task.set_task_id(task_id);
    task.set_timeout_seconds(options.timeout_seconds);
    TaskTracker& tracker = *manager_->deps_.tasks;
    const bool known = tracker.Get(task_id, 0).ok();
    PGH_ASSIGN_OR_RETURN(v1::Task registered, tracker.Register(agent_id, task));
    PGH_ASSIGN_OR_RETURN(v1::TaskInfo info, tracker.Get(task_id, 0));
    if (!info.has_result()) {
      if (auto session = manager_->deps_.registry->Session(agent_id); session != nullptr) {
        // A task this controller journaled before a restart may have lost its secrets: an
        // agent that does not know it must report it failed rather than run it without them.
        if (known) registered.set_reattach_only(true);
        v1::ControllerMessage message;
        *message.mutable_task() = registered;
        session->Send(message);
      }
    }
    PGH_LOG_DEBUG("migration {}: {} on {} ({})", id_, DescribeOperation(task), agent_id, task_id);
    bool cancel_sent = false;
    bool told_offline = false;
    absl::Time cancel_deadline = absl::InfiniteFuture();
    // Most tasks (SQL, service actions) answer within milliseconds, and in a cutover every one
    // of them is downtime: look often at first, then settle to the poll interval.
    const absl::Time sent_at = absl::Now();
    constexpr absl::Duration kEagerFor = absl::Seconds(2);
    constexpr absl::Duration kEagerPoll = absl::Milliseconds(10);
    while (true) {
      PGH_ASSIGN_OR_RETURN(info, tracker.Get(task_id, 0));
      if (info.has_result()) break;
      if (options.track_progress) SetProgress(task_id, info.progress());
      if (manager_->stopping()) return absl::CancelledError("the controller is stopping");
      if (!aborting_ && AbortRequested()) {
        if (!cancel_sent) {
          if (auto session = manager_->deps_.registry->Session(agent_id); session != nullptr) {
            v1::ControllerMessage message;
            message.mutable_cancel()->set_task_id(task_id);
            session->Send(message);
          }
          cancel_sent = true;
          cancel_deadline = absl::Now() + absl::Seconds(60);
        } else if (absl::Now() > cancel_deadline) {
          return absl::CancelledError("aborted (the task did not confirm its cancellation)");
        }
      }
      if (!told_offline && manager_->deps_.registry->Session(agent_id) == nullptr) {
        Event("warn", absl::StrCat("agent ", agent_id, " is offline; ", DescribeOperation(task),
                                   " waits for it to reconnect"));
        told_offline = true;
      }
      absl::SleepFor(absl::Now() - sent_at < kEagerFor
                         ? std::min(kEagerPoll, manager_->deps_.poll_interval)
                         : manager_->deps_.poll_interval);
    }
    if (options.track_progress) SetProgress("", v1::Progress());
    const v1::TaskResult& result = info.result();
    if (result.state() == v1::TaskResult::SUCCEEDED || options.allow_failure ||
        (result.interrupted() && options.read_only)) {
      return result;
    }
    if (cancel_sent) return absl::CancelledError("aborted");
    std::string detail = result.message();
    if (absl::StatusOr<v1::TaskInfo> full = tracker.Get(task_id, 8); full.ok()) {
      std::vector<std::string> lines;
      for (const v1::TaskEvent& event : full->recent_events()) {
        if (event.has_log() && event.log().stream() == "stderr") lines.push_back(event.log().text());
      }
      if (!lines.empty()) absl::StrAppend(&detail, " (stderr: ", absl::StrJoin(lines, " | "), ")");
    }
    return absl::FailedPreconditionError(absl::StrCat(agent_id, ": ", DescribeOperation(task),
                                                      " ", info.state(), ": ", detail,
                                                      " [task ", task_id, "]"));
  }

  std::vector<absl::StatusOr<v1::TaskResult>> RunAll(std::vector<Parallel> tasks) override {
    std::vector<absl::StatusOr<v1::TaskResult>> results(tasks.size(),
                                                        absl::UnknownError("not run"));
    std::vector<std::thread> threads;
    for (size_t i = 0; i < tasks.size(); ++i) {
      threads.emplace_back([&, i] {
        results[i] = Run(tasks[i].agent_id, tasks[i].step, tasks[i].task, tasks[i].options);
      });
    }
    for (std::thread& thread : threads) thread.join();
    return results;
  }

  bool Sleep(absl::Duration d) override {
    absl::Time until = absl::Now() + d;
    while (absl::Now() < until) {
      if (Interrupted()) return false;
      absl::SleepFor(std::min(manager_->deps_.poll_interval, until - absl::Now()));
    }
    return !Interrupted();
  }

  absl::Time Now() const override { return manager_->deps_.clock->Now(); }
  bool dry_run() const override { return false; }
  absl::StatusOr<v1::Secrets> Secrets() const override {
    return ResolveSecrets(*plan_, manager_->deps_.env);
  }

 private:
  bool AbortRequested() const {
    absl::MutexLock lock(&manager_->mu_);
    return manager_->slots_.at(id_).record.abort_requested();
  }
  bool Interrupted() const { return manager_->stopping() || (!aborting_ && AbortRequested()); }
  void SetProgress(const std::string& task_id, const v1::Progress& progress) {
    absl::MutexLock lock(&manager_->mu_);
    Slot& slot = manager_->slots_.at(id_);
    slot.current_task_id = task_id;
    slot.progress = progress;
  }

  MigrationManager* const manager_;
  const std::string id_;
  const std::shared_ptr<const Plan> plan_;
  const std::string phase_;
  const uint32_t attempt_;
  const bool aborting_;
};

// Walks a phase without touching anything: every task is recorded and answered with a success.
class MigrationManager::DryRunContext : public PhaseContext {
 public:
  DryRunContext(const Plan& plan, v1::MigrationRecord record,
                std::function<absl::StatusOr<v1::Secrets>()> secrets)
      : plan_(plan), record_(std::move(record)), secrets_(std::move(secrets)) {}
  void set_phase(std::string phase) { phase_ = std::move(phase); }
  const std::vector<v1::PlannedTask>& planned() const { return planned_; }

  const Plan& plan() const override { return plan_; }
  v1::MigrationRecord record() const override { return record_; }
  absl::Status Update(absl::FunctionRef<void(v1::MigrationRecord&)> change) override {
    change(record_);
    return absl::OkStatus();
  }
  void Event(absl::string_view, absl::string_view) override {}
  absl::StatusOr<v1::TaskResult> Run(const std::string& agent_id, absl::string_view step,
                                     v1::Task task, StepOptions) override {
    if (task.has_configure_pgbackrest()) task.mutable_configure_pgbackrest()->clear_secrets();
    v1::PlannedTask* planned = &planned_.emplace_back();
    planned->set_agent_id(agent_id);
    planned->set_phase(phase_);
    planned->set_description(DescribeOperation(task));
    task.set_task_id(std::string(step));
    *planned->mutable_task() = std::move(task);
    v1::TaskResult result;
    result.set_state(v1::TaskResult::SUCCEEDED);
    return result;
  }
  std::vector<absl::StatusOr<v1::TaskResult>> RunAll(std::vector<Parallel> tasks) override {
    std::vector<absl::StatusOr<v1::TaskResult>> results;
    for (Parallel& task : tasks) {
      results.push_back(Run(task.agent_id, task.step, std::move(task.task), task.options));
    }
    return results;
  }
  bool Sleep(absl::Duration) override { return true; }
  absl::Time Now() const override { return absl::Now(); }
  bool dry_run() const override { return true; }
  absl::StatusOr<v1::Secrets> Secrets() const override { return secrets_(); }

 private:
  const Plan& plan_;
  v1::MigrationRecord record_;
  std::function<absl::StatusOr<v1::Secrets>()> secrets_;
  std::string phase_;
  std::vector<v1::PlannedTask> planned_;
};

// ---------------------------------------------------------------------------------------------

MigrationManager::MigrationManager(MigrationDeps deps) : deps_(std::move(deps)) {}

MigrationManager::~MigrationManager() { Shutdown(); }

void MigrationManager::Shutdown() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    threads.swap(threads_);
  }
  for (std::thread& thread : threads) thread.join();
}

bool MigrationManager::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

absl::Status MigrationManager::SaveLocked(Slot& slot) {
  *slot.record.mutable_info()->mutable_updated_at() = ToProto(deps_.clock->Now());
  return deps_.store->Save(slot.record);
}

void MigrationManager::Event(const std::string& migration_id, absl::string_view phase,
                             absl::string_view level, absl::string_view text) {
  v1::MigrationEvent event;
  *event.mutable_time() = ToProto(deps_.clock->Now());
  event.set_phase(std::string(phase));
  event.set_level(std::string(level));
  event.set_text(std::string(text));
  if (level == "error") {
    PGH_LOG_ERROR("migration {} [{}]: {}", migration_id, phase, text);
  } else if (level == "warn") {
    PGH_LOG_WARN("migration {} [{}]: {}", migration_id, phase, text);
  } else {
    PGH_LOG_INFO("migration {} [{}]: {}", migration_id, phase, text);
  }
  if (absl::StatusOr<uint64_t> seq = deps_.store->AppendEvent(migration_id, event); !seq.ok()) {
    PGH_LOG_ERROR("migration {}: cannot journal an event: {}", migration_id, seq.status());
  }
}

absl::Status MigrationManager::Load() {
  PGH_ASSIGN_OR_RETURN(std::vector<v1::MigrationRecord> records, deps_.store->LoadAll());
  absl::MutexLock lock(&mu_);
  for (v1::MigrationRecord& record : records) {
    const std::string id = record.info().migration_id();
    absl::StatusOr<Plan> plan = ParsePlan(record.plan_yaml(), record.info().plan_source());
    if (!plan.ok()) {
      PGH_LOG_ERROR("migration {}: its stored plan no longer parses ({}); it is left as is", id,
                    plan.status().message());
      continue;
    }
    Slot& slot = slots_[id];
    slot.record = std::move(record);
    slot.plan = std::make_shared<const Plan>(*std::move(plan));
    const std::string& state = slot.record.info().state();
    if (state == kStateRunning || state == kStateScheduled || state == kStateAborting) {
      PGH_LOG_INFO("migration {} was {} when the controller stopped: resuming", id, state);
      StartWorkerLocked(id);
    }
  }
  return absl::OkStatus();
}

v1::MigrationInfo MigrationManager::InfoLocked(const Slot& slot) const {
  v1::MigrationInfo info = slot.record.info();
  if (!slot.current_task_id.empty()) {
    info.set_current_task_id(slot.current_task_id);
    *info.mutable_progress() = slot.progress;
  }
  return info;
}

absl::StatusOr<v1::MigrationInfo> MigrationManager::Apply(const v1::ApplyPlanRequest& request) {
  const std::string source_name =
      request.source_name().empty() ? "plan" : request.source_name();
  PGH_ASSIGN_OR_RETURN(Plan plan, ParsePlan(request.plan_yaml(), source_name));
  std::vector<std::string> problems;
  for (const std::string& path : plan.checks) {
    if (!request.check_files().contains(path)) {
      problems.push_back(absl::StrCat("checks: the content of ", path,
                                      " was not sent with the plan (pghaul plan apply reads it)"));
    }
  }
  std::vector<std::string> known;
  for (const v1::AgentInfo& agent : deps_.registry->List()) known.push_back(agent.agent_id());
  for (const auto& [key, agent] : {std::pair<std::string, std::string>{"source.agent",
                                                                        plan.source_agent},
                                   {"target.agent", plan.target_agent}}) {
    if (!deps_.registry->Get(agent).ok()) {
      problems.push_back(absl::StrCat(
          key, ": no agent '", agent, "' has ever connected to this controller (known: ",
          known.empty() ? "none" : absl::StrJoin(known, ", "),
          "); start pghaul-agent on that host with agent_id: ", agent));
    }
  }
  if (!problems.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source_name, ": ", absl::StrJoin(problems, "\n" + source_name + ": ")));
  }

  v1::MigrationRecord record;
  v1::MigrationInfo* info = record.mutable_info();
  info->set_migration_id(plan.name);
  info->set_source_agent(plan.source_agent);
  info->set_target_agent(plan.target_agent);
  info->set_stanza(plan.stanza);
  info->set_repository(DescribeRepository(plan));
  info->set_state(std::string(kStatePlanned));
  info->set_plan_source(source_name);
  *info->mutable_created_at() = ToProto(deps_.clock->Now());
  *info->mutable_updated_at() = info->created_at();
  for (const std::string& phase : AllPhases()) {
    v1::PhaseInfo* p = info->add_phases();
    p->set_name(phase);
    p->set_state("pending");
  }
  info->set_message(absl::StrCat("next: pghaul preflight ", plan.name, " or pghaul run ",
                                 plan.name));
  record.set_plan_yaml(request.plan_yaml());
  for (const auto& [path, content] : request.check_files()) {
    (*record.mutable_check_files())[path] = content;
  }
  if (request.dry_run()) return record.info();

  absl::ReleasableMutexLock lock(&mu_);
  if (auto existing = slots_.find(plan.name); existing != slots_.end()) {
    const v1::MigrationInfo& old = existing->second.record.info();
    if (!request.replace() || old.state() != kStatePlanned || existing->second.worker_running) {
      return absl::AlreadyExistsError(absl::StrCat(
          "migration ", plan.name, " already exists (state ", old.state(), ", plan from ",
          old.plan_source(), "); ",
          old.state() == kStatePlanned ? "use --replace to replace its plan"
                                       : "a migration whose phases have started cannot be "
                                         "replaced: give the plan another name"));
    }
    PGH_RETURN_IF_ERROR(deps_.store->Delete(plan.name));
  }
  Slot& slot = slots_[plan.name];
  slot = Slot();
  slot.record = record;
  slot.plan = std::make_shared<const Plan>(std::move(plan));
  PGH_RETURN_IF_ERROR(deps_.store->Save(slot.record));
  const std::string id = slot.record.info().migration_id();
  lock.Release();
  Event(id, "plan", "info",
        absl::StrCat("plan applied from ", source_name, ": ", record.info().source_agent(),
                     " -> ", record.info().target_agent(), ", stanza ", record.info().stanza(),
                     ", repository ", record.info().repository()));
  absl::MutexLock relock(&mu_);
  return InfoLocked(slots_.at(id));
}

std::vector<v1::MigrationInfo> MigrationManager::List() {
  absl::MutexLock lock(&mu_);
  std::vector<v1::MigrationInfo> list;
  for (const auto& [id, slot] : slots_) list.push_back(InfoLocked(slot));
  std::sort(list.begin(), list.end(), [](const v1::MigrationInfo& a, const v1::MigrationInfo& b) {
    return FromProto(a.created_at()) < FromProto(b.created_at());
  });
  return list;
}

absl::StatusOr<v1::MigrationInfo> MigrationManager::Get(const std::string& migration_id,
                                                        uint64_t events_after, int max_events) {
  v1::MigrationInfo info;
  {
    absl::MutexLock lock(&mu_);
    auto it = slots_.find(migration_id);
    if (it == slots_.end()) {
      return absl::NotFoundError(absl::StrCat("no migration '", migration_id,
                                              "'; `pghaul migrations` lists them"));
    }
    info = InfoLocked(it->second);
  }
  PGH_ASSIGN_OR_RETURN(std::vector<v1::MigrationEvent> events,
                       deps_.store->Events(migration_id, events_after, max_events));
  for (v1::MigrationEvent& event : events) *info.add_events() = std::move(event);
  PGH_ASSIGN_OR_RETURN(uint64_t last, deps_.store->LastSeq(migration_id));
  info.set_last_event_seq(last);
  return info;
}

absl::StatusOr<v1::StartPhaseResponse> MigrationManager::Start(
    const v1::StartPhaseRequest& request) {
  const std::string& command = request.command();
  static const std::set<std::string> kCommands = {"run", "preflight", "backup", "restore",
                                                  "verify", "cutover"};
  if (!kCommands.contains(command)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown command '", command, "': expected run, preflight, backup, restore, verify or "
        "cutover"));
  }
  if (!request.backup_type().empty() && request.backup_type() != "full" &&
      request.backup_type() != "diff" && request.backup_type() != "incr") {
    return absl::InvalidArgumentError(absl::StrCat("backup type '", request.backup_type(),
                                                   "': expected full, diff or incr"));
  }
  if (!request.restore_mode().empty() && request.restore_mode() != "rehearsal" &&
      request.restore_mode() != "standby") {
    return absl::InvalidArgumentError(absl::StrCat("restore mode '", request.restore_mode(),
                                                   "': expected rehearsal or standby"));
  }
  if (!request.until().empty() && PhaseIndex(request.until()) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--until '", request.until(), "': expected one of ",
                     absl::StrJoin(AllPhases(), ", ")));
  }

  absl::ReleasableMutexLock lock(&mu_);
  auto it = slots_.find(request.migration_id());
  if (it == slots_.end()) {
    return absl::NotFoundError(absl::StrCat("no migration '", request.migration_id(),
                                            "'; `pghaul migrations` lists them"));
  }
  Slot& slot = it->second;
  const v1::MigrationRecord& record = slot.record;
  const std::string& state = record.info().state();
  const std::string& id = request.migration_id();
  if (state == kStateRunning || state == kStateScheduled || state == kStateAborting ||
      slot.worker_running) {
    return absl::FailedPreconditionError(absl::StrCat(
        "migration ", id, " is ", state, " (phase ", record.info().phase(),
        "); wait for it (pghaul watch ", id, ") or abort it (pghaul abort ", id, ")"));
  }
  if (state == kStateAborted || state == kStateCompleted) {
    return absl::FailedPreconditionError(
        absl::StrCat("migration ", id, " is ", state, "; apply a new plan to start another"));
  }
  if (record.target_promoted() && command != "run") {
    return absl::FailedPreconditionError(absl::StrCat(
        "the target of ", id, " is already promoted; only `pghaul run ", id,
        "` (to finish) is possible"));
  }

  // Which phases to run, in order.
  std::vector<std::string> phases;
  std::string mode = request.restore_mode();
  auto add = [&](absl::string_view phase) {
    if (std::find(phases.begin(), phases.end(), phase) == phases.end()) {
      phases.emplace_back(phase);
    }
  };
  auto missing = [&](absl::string_view phase) { return !Succeeded(record, phase); };
  if (command == "run") {
    int until = request.until().empty() ? PhaseIndex(kPhaseFinish) : PhaseIndex(request.until());
    if (mode.empty()) mode = until >= PhaseIndex(kPhaseCutover) ? "standby" : "rehearsal";
    bool redo_restore = until >= PhaseIndex(kPhaseCutover) && !record.target_promoted() &&
                        Succeeded(record, kPhaseRestore) &&
                        record.info().restore_mode() != "standby";
    for (int i = 0; i <= until; ++i) {
      const std::string& phase = AllPhases()[i];
      if (missing(phase) ||
          (redo_restore && (phase == kPhaseRestore || phase == kPhaseVerify))) {
        add(phase);
      }
    }
  } else if (command == "preflight") {
    add(kPhasePreflight);
  } else if (command == "backup") {
    if (missing(kPhasePreflight)) add(kPhasePreflight);
    if (missing(kPhasePrepareSource)) add(kPhasePrepareSource);
    add(kPhaseBackup);
  } else if (command == "restore") {
    if (missing(kPhaseBackup) && request.set().empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "migration ", id, " has no backup yet: run `pghaul backup ", id, "` first"));
    }
    if (mode.empty()) mode = "rehearsal";
    add(kPhaseRestore);
  } else if (command == "verify") {
    if (missing(kPhaseRestore)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "migration ", id, " has no restored target yet: run `pghaul restore ", id,
          "` first"));
    }
    add(kPhaseVerify);
  } else if (command == "cutover") {
    if (missing(kPhaseRestore) || record.info().restore_mode() != "standby") {
      return absl::FailedPreconditionError(absl::StrCat(
          "cutover needs a target restored as a standby that follows the source: run `pghaul "
          "restore ",
          id, " --mode standby` first"));
    }
    add(kPhaseCutover);
    add(kPhaseFinish);
  }
  if (phases.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "nothing to run: every phase up to ",
        request.until().empty() ? std::string(kPhaseFinish) : request.until(),
        " has succeeded. ", NextStepHint(record)));
  }

  v1::StartPhaseResponse response;
  if (request.dry_run()) {
    std::shared_ptr<const Plan> plan = slot.plan;
    v1::MigrationRecord copy = record;
    *copy.mutable_request() = request;
    if (!mode.empty()) copy.mutable_info()->set_restore_mode(mode);
    if (copy.info().backup_label().empty()) copy.mutable_info()->set_backup_label("");
    DryRunContext dry(*plan, copy, [this, plan] { return ResolveSecrets(*plan, deps_.env); });
    for (const std::string& phase : phases) {
      dry.set_phase(phase);
      if (absl::Status s = RunPhase(phase, dry); !s.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat("dry run of ", phase, " stopped: ", s.message()));
      }
    }
    for (const v1::PlannedTask& task : dry.planned()) *response.add_planned() = task;
    *response.mutable_migration() = InfoLocked(slot);
    return response;
  }

  v1::MigrationRecord& rec = slot.record;
  *rec.mutable_request() = request;
  rec.clear_phases_to_run();
  for (const std::string& phase : phases) rec.add_phases_to_run(phase);
  if (!mode.empty() && std::find(phases.begin(), phases.end(), kPhaseRestore) != phases.end()) {
    rec.mutable_info()->set_restore_mode(mode);
  }
  rec.mutable_info()->set_goal(phases.back());
  rec.mutable_info()->set_state(std::string(kStateRunning));
  rec.mutable_info()->set_message("");
  if (request.has_not_before()) {
    *rec.mutable_info()->mutable_not_before() = request.not_before();
  } else {
    rec.mutable_info()->clear_not_before();
  }
  for (const std::string& phase : phases) {
    v1::PhaseInfo* p = FindPhase(rec, phase);
    if (p->state() != "running") p->set_state("pending");
  }
  PGH_RETURN_IF_ERROR(SaveLocked(slot));
  StartWorkerLocked(id);
  *response.mutable_migration() = InfoLocked(slot);
  lock.Release();
  Event(id, phases.front(), "info",
        absl::StrCat("`", command, "` requested: ", absl::StrJoin(phases, ", ")));
  return response;
}

absl::StatusOr<v1::MigrationInfo> MigrationManager::Abort(const std::string& migration_id) {
  absl::ReleasableMutexLock lock(&mu_);
  auto it = slots_.find(migration_id);
  if (it == slots_.end()) {
    return absl::NotFoundError(absl::StrCat("no migration '", migration_id,
                                            "'; `pghaul migrations` lists them"));
  }
  Slot& slot = it->second;
  v1::MigrationRecord& record = slot.record;
  if (record.target_promoted()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the target of ", migration_id, " was promoted by cutover: it is the primary now and "
        "abort would leave no writable database; there is nothing to abort"));
  }
  if (record.info().state() == kStateAborted) return InfoLocked(slot);
  record.set_abort_requested(true);
  record.mutable_info()->set_state(std::string(kStateAborting));
  record.mutable_info()->set_message("");
  PGH_RETURN_IF_ERROR(SaveLocked(slot));
  if (!slot.worker_running) StartWorkerLocked(migration_id);
  v1::MigrationInfo info = InfoLocked(slot);
  lock.Release();
  Event(migration_id, "abort", "info", "abort requested");
  return info;
}

void MigrationManager::StartWorkerLocked(const std::string& migration_id) {
  if (stopping_) return;
  slots_.at(migration_id).worker_running = true;
  threads_.emplace_back([this, migration_id] { Work(migration_id); });
}

void MigrationManager::Abort(const std::string& id, const std::shared_ptr<const Plan>& plan) {
  uint32_t attempt = 0;
  {
    absl::MutexLock lock(&mu_);
    Slot& slot = slots_.at(id);
    for (v1::PhaseInfo& phase : *slot.record.mutable_info()->mutable_phases()) {
      if (phase.state() == "running" || phase.state() == "waiting") {
        phase.set_state("aborted");
        *phase.mutable_finished_at() = ToProto(deps_.clock->Now());
      }
    }
    attempt = static_cast<uint32_t>(absl::ToUnixSeconds(deps_.clock->Now()) % 100000);
    (void)SaveLocked(slot);
  }
  LiveContext ctx(this, id, plan, "abort", attempt, /*aborting=*/true);
  absl::Status status = RunAbort(ctx);
  if (stopping()) return;  // resumed by the next controller
  absl::ReleasableMutexLock lock(&mu_);
  Slot& slot = slots_.at(id);
  v1::MigrationInfo* info = slot.record.mutable_info();
  slot.record.clear_phases_to_run();
  if (status.ok()) {
    slot.record.set_abort_requested(false);
    info->set_state(std::string(kStateAborted));
    info->set_message(
        "aborted: the source is as it was before the migration and accepts writes; the target "
        "is stopped");
  } else {
    info->set_state(std::string(kStateFailed));
    info->set_message(absl::StrCat("abort incomplete: ", status.message(),
                                   "; fix that, then run `pghaul abort ", id, "` again"));
  }
  (void)SaveLocked(slot);
  std::string message = info->message();
  lock.Release();
  Event(id, "abort", status.ok() ? "info" : "error", message);
}

void MigrationManager::Work(const std::string& id) {
  std::shared_ptr<const Plan> plan;
  {
    absl::MutexLock lock(&mu_);
    plan = slots_.at(id).plan;
  }
  bool told_waiting = false;
  while (!stopping()) {
    v1::MigrationRecord record;
    {
      absl::MutexLock lock(&mu_);
      record = slots_.at(id).record;
    }
    if (record.abort_requested()) {
      Abort(id, plan);
      break;
    }
    if (record.phases_to_run_size() == 0) {
      absl::MutexLock lock(&mu_);
      Slot& slot = slots_.at(id);
      const bool finished = Succeeded(slot.record, kPhaseFinish);
      slot.record.mutable_info()->set_state(
          std::string(finished ? kStateCompleted : kStateReady));
      slot.record.mutable_info()->set_message(
          finished ? "completed: the target is the primary" : NextStepHint(slot.record));
      (void)SaveLocked(slot);
      break;
    }
    const std::string phase = record.phases_to_run(0);
    std::string why;
    if (!MayStartNow(phase, *plan, record.request(), deps_.clock->Now(), &why)) {
      if (!told_waiting) {
        {
          absl::MutexLock lock(&mu_);
          Slot& slot = slots_.at(id);
          slot.record.mutable_info()->set_state(std::string(kStateScheduled));
          slot.record.mutable_info()->set_phase(phase);
          slot.record.mutable_info()->set_message(why);
          FindPhase(slot.record, phase)->set_state("waiting");
          (void)SaveLocked(slot);
        }
        Event(id, phase, "info", why);
        told_waiting = true;
      }
      absl::SleepFor(deps_.poll_interval);
      continue;
    }
    told_waiting = false;
    uint32_t attempt = 0;
    bool resumed = false;
    {
      absl::MutexLock lock(&mu_);
      Slot& slot = slots_.at(id);
      v1::PhaseInfo* p = FindPhase(slot.record, phase);
      resumed = p->state() == "running";
      if (!resumed) {
        p->set_attempt(p->attempt() + 1);
        p->set_state("running");
        *p->mutable_started_at() = ToProto(deps_.clock->Now());
        p->clear_finished_at();
        p->set_message("");
      }
      attempt = p->attempt();
      slot.record.mutable_info()->set_state(std::string(kStateRunning));
      slot.record.mutable_info()->set_phase(phase);
      slot.record.mutable_info()->set_message("");
      if (absl::Status s = SaveLocked(slot); !s.ok()) {
        PGH_LOG_ERROR("migration {}: cannot journal the start of {}: {}; not starting it", id,
                      phase, s.message());
        break;
      }
    }
    Event(id, phase, "info",
          resumed ? absl::StrCat(phase, " resumed after a controller restart (attempt ", attempt,
                                 ")")
                  : absl::StrCat(phase, " started (attempt ", attempt, ")"));
    LiveContext ctx(this, id, plan, phase, attempt, /*aborting=*/false);
    absl::Status status = RunPhase(phase, ctx);
    if (stopping()) break;  // journaled as running: the next controller resumes it
    std::string message;
    {
      absl::MutexLock lock(&mu_);
      Slot& slot = slots_.at(id);
      if (slot.record.abort_requested()) continue;
      v1::PhaseInfo* p = FindPhase(slot.record, phase);
      absl::Time started = FromProto(p->started_at());
      *p->mutable_finished_at() = ToProto(deps_.clock->Now());
      if (status.ok()) {
        p->set_state("succeeded");
        slot.record.mutable_phases_to_run()->erase(slot.record.mutable_phases_to_run()->begin());
        message = absl::StrFormat("%s succeeded in %.1f s", phase,
                                  absl::ToDoubleSeconds(deps_.clock->Now() - started));
      } else {
        p->set_state("failed");
        p->set_message(std::string(status.message()));
        slot.record.clear_phases_to_run();
        slot.record.mutable_info()->set_state(std::string(kStateFailed));
        message = absl::StrCat(phase, " failed: ", status.message());
        slot.record.mutable_info()->set_message(
            absl::StrCat(message, ". ", WhatToDoAfter(phase, id, slot.record.target_promoted())));
      }
      (void)SaveLocked(slot);
    }
    Event(id, phase, status.ok() ? "info" : "error", message);
    if (!status.ok()) break;
  }
  // An abort requested while this worker was finishing found it still running and left the
  // abort to it.
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      Slot& slot = slots_.at(id);
      if (stopping_ || !slot.record.abort_requested() ||
          slot.record.info().state() != kStateAborting) {
        slot.worker_running = false;
        return;
      }
    }
    Abort(id, plan);
  }
}

}  // namespace pghaul::controller
