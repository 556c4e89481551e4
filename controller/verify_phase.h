// The verify phase: what both agents compute (per-table row counts and checksums, sequences,
// large objects, the plan's application checks) compared into the report `pghaul status` and
// `pghaul verify -o json` show. The comparison rules are in verify_report.h.
#pragma once

#include "absl/status/status.h"
#include "controller/phase_context.h"

namespace pghaul::controller {

// Runs the verify phase for the migration behind `ctx`, journals the report in its info, and
// fails (FailedPrecondition, with a summary) when anything differs.
absl::Status RunVerify(PhaseContext& ctx);

}  // namespace pghaul::controller
