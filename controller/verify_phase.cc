#include "controller/verify_phase.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/time_proto.h"
#include "controller/phase_tasks.h"
#include "controller/verify_report.h"

namespace pghaul::controller {

absl::StatusOr<v1::VerifyReport> CompareData(PhaseContext& ctx, absl::string_view step_prefix) {
  const Plan& plan = ctx.plan();
  v1::Task checksums = SqlTask(v1::SqlQuery::TABLE_CHECKSUMS);
  std::vector<absl::StatusOr<v1::TaskResult>> sums = ctx.RunAll(
      {{plan.source_agent, absl::StrCat(step_prefix, "checksums-source"), checksums,
        {.read_only = true}},
       {plan.target_agent, absl::StrCat(step_prefix, "checksums-target"), checksums,
        {.read_only = true}}});
  for (const auto& sum : sums) PGH_RETURN_IF_ERROR(sum.status());
  if (ctx.dry_run()) {
    v1::VerifyReport report;
    report.set_passed(true);
    return report;
  }
  std::map<std::string, std::string> source(sums[0]->values().begin(), sums[0]->values().end());
  std::map<std::string, std::string> target(sums[1]->values().begin(), sums[1]->values().end());
  return CompareChecksums(source, target);
}

absl::Status RunVerify(PhaseContext& ctx) {
  const Plan& plan = ctx.plan();
  v1::MigrationRecord record = ctx.record();
  ctx.Event("info", "computing row counts and checksums of every table on both sides");
  PGH_ASSIGN_OR_RETURN(v1::VerifyReport report, CompareData(ctx, ""));
  std::vector<std::pair<std::string, std::string>> checks;
  for (const std::string& path : plan.checks) {
    auto found = record.check_files().find(path);
    if (found == record.check_files().end()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the application check ", path, " was not stored with the plan: apply the plan again"));
    }
    checks.emplace_back(path.substr(path.rfind('/') + 1), found->second);
  }
  std::vector<std::pair<absl::StatusOr<v1::TaskResult>, absl::StatusOr<v1::TaskResult>>> ran;
  for (size_t i = 0; i < checks.size(); ++i) {
    v1::Task task;
    task.mutable_check()->set_name(checks[i].first);
    task.mutable_check()->set_sql(checks[i].second);
    StepOptions options{.read_only = true, .allow_failure = true};
    std::vector<absl::StatusOr<v1::TaskResult>> both =
        ctx.RunAll({{plan.source_agent, absl::StrCat("check-", i + 1, "-source"), task, options},
                    {plan.target_agent, absl::StrCat("check-", i + 1, "-target"), task, options}});
    ran.emplace_back(std::move(both[0]), std::move(both[1]));
  }
  if (ctx.dry_run()) return absl::OkStatus();

  for (size_t i = 0; i < checks.size(); ++i) {
    PGH_RETURN_IF_ERROR(ran[i].first.status());
    PGH_RETURN_IF_ERROR(ran[i].second.status());
    AddApplicationCheck(
        CompareApplicationCheck(checks[i].first, *ran[i].first, *ran[i].second), &report);
  }
  *report.mutable_finished_at() = ToProto(ctx.Now());
  PGH_RETURN_IF_ERROR(
      ctx.Update([&](v1::MigrationRecord& r) { *r.mutable_info()->mutable_verify() = report; }));
  std::string summary = SummarizeVerify(report);
  if (!report.passed()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "verify found differences: ", summary, ". `pghaul status ", plan.name,
        "` lists every one"));
  }
  ctx.Event("info", absl::StrCat("verified: ", summary));
  return absl::OkStatus();
}

}  // namespace pghaul::controller
