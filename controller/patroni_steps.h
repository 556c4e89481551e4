// The steps of a migration whose target Patroni manages (docs/patroni.md), called by the
// restore, cutover and abort of migration_phases.cc.
//
//   rehearsal  HandOverToPatroni: PREPARE_RESTORED (private recovery, Patroni's roles) ->
//              CLEAR_INITIALIZE -> START -> Leader (role master) with the copy's identifier
//   standby    GiveSourcePatroniRoles (before anything changes on the target) -> [stop, restore
//              --type=standby] -> FollowSourceUnderPatroni: FOLLOW_ARCHIVE -> START ->
//              standby leader
//   abort      DropSourcePatroniRoles
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "controller/phase_context.h"

namespace pghaul::controller {

// Polls Patroni STATUS on the target until it holds the leader lock in `role` ("master", or
// "standby_leader"), with `system_identifier` ("" when unknown). Errors: Unavailable when
// Patroni stops answering for 10 s, FailedPrecondition when the leader has another identifier,
// DeadlineExceeded after `timeout`, each with what to do.
absl::StatusOr<v1::TaskResult> WaitForPatroniLeader(PhaseContext& ctx,
                                                    const std::string& system_identifier,
                                                    absl::string_view role, absl::Duration timeout);

// The rehearsal restore's hand-over, after pgBackRest's delta restore with Patroni stopped:
// the recovery finished privately and Patroni's roles given (PREPARE_RESTORED), the DCS's
// `initialize` key cleared, then Patroni started to adopt the copy as its Leader. Journals
// info.target_patroni_roles.
absl::Status HandOverToPatroni(PhaseContext& ctx);

// A standby is read-only, so Patroni's superuser, replication and rewind users must reach it
// through the archive: their SCRAM verifiers from the target's agent (ROLE_VERIFIERS), those
// missing on the source created there (ENSURE_ROLES) when plan.source_patroni_roles_allowed,
// journaled in source_created_roles first, then a WAL switch. Errors: FailedPrecondition, with
// the plan key to set, when roles are missing and the plan does not allow creating them
// (nothing changed); those of the tasks.
absl::Status GiveSourcePatroniRoles(PhaseContext& ctx);

// After pgBackRest's --type=standby restore with Patroni stopped: FOLLOW_ARCHIVE (Patroni's
// standby_cluster gets the restore_command, `initialize` is cleared), START, then wait until
// Patroni is the standby leader.
absl::Status FollowSourceUnderPatroni(PhaseContext& ctx);

// Abort: DROP_ROLES of source_created_roles (a failure is a warning event), then clears them.
absl::Status DropSourcePatroniRoles(PhaseContext& ctx);

}  // namespace pghaul::controller
