// The phases of a migration, in order, and what each one does on the hosts (docs/architecture.md
// has the table). Each phase is idempotent: run again after a failure or a controller crash, it
// re-attaches to the tasks it had sent and repeats only what is safe to repeat.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "controller/phase_context.h"

namespace pghaul::controller {

inline constexpr absl::string_view kPhasePreflight = "preflight";
inline constexpr absl::string_view kPhasePrepareSource = "prepare-source";
inline constexpr absl::string_view kPhaseBackup = "backup";
inline constexpr absl::string_view kPhaseRestore = "restore";
inline constexpr absl::string_view kPhaseVerify = "verify";
inline constexpr absl::string_view kPhaseCutover = "cutover";
inline constexpr absl::string_view kPhaseFinish = "finish";

// Every phase, in order.
const std::vector<std::string>& AllPhases();
// Index in AllPhases(), or -1.
int PhaseIndex(absl::string_view phase);

// Runs `phase` for the migration behind `ctx`. The error says what failed and what to do.
absl::Status RunPhase(absl::string_view phase, PhaseContext& ctx);

// Puts the hosts back as they were before the migration (what the record says pghaul changed):
// lifts the fence, restores the source's archiving settings (restarting it only when pghaul
// restarted it to change them), stops the target.
absl::Status RunAbort(PhaseContext& ctx);

// Whether `when` may start `phase` given the plan's window and the request's not_before; when
// not, `why` says until when.
bool MayStartNow(absl::string_view phase, const Plan& plan, const v1::StartPhaseRequest& request,
                 absl::Time when, std::string* why);

}  // namespace pghaul::controller
