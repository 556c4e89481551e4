// The verify phase: what both agents compute (per-table row counts and checksums, sequences,
// large objects, the plan's application checks) compared into the report `pghaul status` and
// `pghaul verify -o json` show. The comparison rules are in verify_report.h.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "controller/phase_context.h"
#include "pghaul/v1/migrations.pb.h"

namespace pghaul::controller {

// Runs the verify phase for the migration behind `ctx`, journals the report in its info, and
// fails (FailedPrecondition, with a summary) when anything differs.
absl::Status RunVerify(PhaseContext& ctx);

// The data half of verify, without the application checks: both agents' checksums compared into
// a report (passed or not; not journaled). `step_prefix` keeps the step names of different
// callers apart ("" in the verify phase, "exact-" in the cutover). A dry run: a passing, empty
// report.
absl::StatusOr<v1::VerifyReport> CompareData(PhaseContext& ctx, absl::string_view step_prefix);

}  // namespace pghaul::controller
