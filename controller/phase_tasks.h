// The small task builders and value helpers every phase uses (migration_phases.cc,
// verify_phase.cc): one place that says what a SQL, service or pgBackRest task of a migration
// looks like.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "controller/phase_context.h"
#include "controller/plan.h"
#include "pghaul/v1/agent_link.pb.h"

namespace pghaul::controller {

// The longest wait_seconds an agent takes for one task.
inline constexpr uint32_t kMaxAgentWaitSeconds = 3600;

// The value `key` of an agent's result, "" when the result lacks it: an agent of another version
// (or one gone wrong) must fail the step with a message, never abort the controller.
std::string ResultValue(const v1::TaskResult& result, const std::string& key);
// "1.5 s".
std::string Seconds(absl::Duration d);

// One query of the agent's catalogue; `migration_id` for the queries that need it.
v1::Task SqlTask(v1::SqlQuery::Query query, const std::string& migration_id = "");
// A service action; STOP is always "fast" (archives the last segment when archiving works).
v1::Task ServiceTask(v1::ServiceAction::Action action);
// A pgBackRest command with the migration's config (the command itself is set by the caller).
v1::Task PgBackRestTask(const Plan& plan);

// Writes the migration's pgBackRest config on `agent_id` (with the secrets, which live only in
// the agent's memory: sent again at the start of every phase, so an agent restart between
// phases loses nothing).
absl::Status Configure(PhaseContext& ctx, const std::string& agent_id);

// Brings the target's PostgreSQL back when it is down (a crash, a host reboot, a stop by hand
// since pghaul restored it): STATUS on the target's agent and, only when it says not running,
// START, with a warning event naming `why` ("before verify"). The target is pghaul's until the
// migration completes, and a standby that starts again goes on following the archive, so the
// phase that needs it running starts it rather than failing. Under Patroni: Patroni STATUS,
// and START when its REST API does not answer. `step_prefix` keeps the steps of
// different phases apart in the journal. Errors: those of the tasks (a START that fails says
// why in its message).
absl::Status StartTargetIfDown(PhaseContext& ctx, absl::string_view step_prefix,
                               absl::string_view why);

// A Patroni action for the target's agent; wait_seconds 0 is the agent's default (60 s).
v1::Task PatroniTask(v1::PatroniAction::Action action, uint32_t wait_seconds = 0);

// Whether Patroni manages the target's PostgreSQL (info.target_manager, set by the restore).
bool TargetUnderPatroni(const v1::MigrationRecord& record);

// Stops the target's PostgreSQL: under Patroni, Patroni STOP (Patroni stops PostgreSQL on its
// way out, and the agent stops one that a killed Patroni left running), never the agent's
// service section, which does not manage that PostgreSQL; otherwise the agent's service STOP.
// Both are no-ops when already stopped.
absl::Status StopTarget(PhaseContext& ctx, absl::string_view step_prefix);

// "16/B374D848" -> its 64-bit position.
absl::StatusOr<uint64_t> ParseLsn(absl::string_view lsn);
std::string FormatLsn(uint64_t lsn);
// 1536 -> "1.5 KiB".
std::string HumanBytes(uint64_t bytes);

}  // namespace pghaul::controller
