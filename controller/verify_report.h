// Verification: the comparison of what both agents computed (SqlQuery TABLE_CHECKSUMS and the
// plan's ApplicationChecks) into the report a migration stores and shows. Pure logic; the rules
// are in docs/preflight.md ("VERIFY RULES").
#pragma once

#include <map>
#include <string>

#include "pghaul/v1/agent_link.pb.h"
#include "pghaul/v1/migrations.pb.h"

namespace pghaul::controller {

// TableComparison.status values.
inline constexpr char kObjectMatch[] = "match";
inline constexpr char kObjectMismatch[] = "mismatch";
inline constexpr char kObjectMissingOnTarget[] = "missing-on-target";
inline constexpr char kObjectMissingOnSource[] = "missing-on-source";
inline constexpr char kObjectExpectedEmpty[] = "expected-empty";

// Compares the TABLE_CHECKSUMS values of the source and the target (keys "<db>/<schema>.<name>",
// "<db>/large_objects", "<db>/sequence:<schema>.<name>"; values as tasks.proto describes them).
// Every key of either side is one object: objects_compared counts them, objects_matching the
// matches, differences lists every other one (expected-empty included) in key order, and passed
// is true when nothing is a mismatch or missing. Application checks and finished_at are left for
// the caller (see AddApplicationCheck).
v1::VerifyReport CompareChecksums(const std::map<std::string, std::string>& source,
                                  const std::map<std::string, std::string>& target);

// The result of one application check (ApplicationCheck task) run on both sides. source/target
// show "rows=<n> digest=<md5> first=<value>" or the task's failure; pass when both SUCCEEDED
// with the same digest, fail otherwise with both sides' messages.
v1::CheckResult CompareApplicationCheck(const std::string& name, const v1::TaskResult& source,
                                        const v1::TaskResult& target);

// Appends `check` to the report's application checks; a failing check makes the report fail.
void AddApplicationCheck(const v1::CheckResult& check, v1::VerifyReport* report);

// One line for people: "412 objects match, 1 expected-empty; 2 application checks pass", or on
// failure "verify failed: 2 of 415 objects differ: db/public.a (mismatch: ...), ...; 1 of 2
// application checks fail: totals" (at most 5 objects named, then "and N more").
std::string SummarizeVerify(const v1::VerifyReport& report);

}  // namespace pghaul::controller
