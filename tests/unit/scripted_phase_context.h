// A PhaseContext for unit tests of the phases (cutover_phase_test.cc,
// patroni_restore_phase_test.cc): the record and events in memory, parallel tasks run one by
// one, and a clock of its own that Sleep advances. Each test's context answers Run itself.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "controller/phase_context.h"

namespace pghaul::controller {

class ScriptedPhaseContextBase : public PhaseContext {
 public:
  const Plan& plan() const override { return plan_; }
  v1::MigrationRecord record() const override { return record_; }
  absl::Status Update(absl::FunctionRef<void(v1::MigrationRecord&)> change) override {
    change(record_);
    return absl::OkStatus();
  }
  void Event(absl::string_view level, absl::string_view text) override {
    events_.push_back(absl::StrCat(level, ": ", text));
  }
  std::vector<absl::StatusOr<v1::TaskResult>> RunAll(std::vector<Parallel> tasks) override {
    std::vector<absl::StatusOr<v1::TaskResult>> results;
    for (Parallel& p : tasks) results.push_back(Run(p.agent_id, p.step, p.task, p.options));
    return results;
  }
  bool Sleep(absl::Duration d) override {
    now_ += d;
    return true;
  }
  absl::Time Now() const override { return now_; }
  bool dry_run() const override { return false; }
  absl::StatusOr<v1::Secrets> Secrets() const override { return v1::Secrets(); }

  Plan plan_;
  v1::MigrationRecord record_;
  std::vector<std::string> events_;
  absl::Time now_ = absl::FromUnixSeconds(1795730400);  // 2026-11-26 22:00:00 UTC
};

}  // namespace pghaul::controller
