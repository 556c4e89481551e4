// Verification: the comparison of what both agents computed (SqlQuery TABLE_CHECKSUMS and the
// plan's ApplicationChecks) into the report a migration stores and shows. Pure logic; the rules
// are in docs/preflight.md ("VERIFY RULES").
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

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
//
// Each comparison's kind is "rows", "large objects" or "sequence value". A sequence may be ahead
// on the target (a copy replays values PostgreSQL logged in advance): by at most
// `sequence_slack[key]` when the key is there (SequenceSlack in schema_compare.h), by any amount
// otherwise; behind is a mismatch.
v1::VerifyReport CompareChecksums(const std::map<std::string, std::string>& source,
                                  const std::map<std::string, std::string>& target,
                                  const std::map<std::string, int64_t>& sequence_slack = {});

// Adds the schema comparison (CompareSchema in schema_compare.h) to `report`: the differences go
// first (schema before data), `compared` objects are counted into objects_compared and
// schema_objects_compared, the matching ones into objects_matching; any difference fails it.
void AddSchemaDifferences(const std::vector<v1::TableComparison>& differences, uint32_t compared,
                          v1::VerifyReport* report);

// One difference for people: "index app/public.orders_pkey missing on target", "column
// app/public.orders.note: type: text vs character varying(10)", "app/public.orders: 3 rows on
// the source, 2 on the target; rows differ at id=42 (changed)".
std::string DescribeDifference(const v1::TableComparison& difference);

// "id=42 (changed), id=77 (missing on target)" for at most `max` located rows, then "and N
// more" when more differ.
std::string DescribeLocatedRows(const v1::TableComparison& difference, size_t max);

// The result of one application check (ApplicationCheck task) run on both sides. source/target
// show "rows=<n> digest=<md5> first=<value>" or the task's failure; pass when both SUCCEEDED
// with the same digest, fail otherwise with both sides' messages.
v1::CheckResult CompareApplicationCheck(const std::string& name, const v1::TaskResult& source,
                                        const v1::TaskResult& target);

// Appends `check` to the report's application checks; a failing check makes the report fail.
void AddApplicationCheck(const v1::CheckResult& check, v1::VerifyReport* report);

// One line for people: "412 objects match, 1 expected-empty; 2 application checks pass", or on
// failure "verify failed: 2 of 415 objects differ: index app/public.a_pkey missing on target,
// ...; 1 of 2 application checks fail: totals" (at most 5 objects named, each as
// DescribeDifference, then "and N more").
std::string SummarizeVerify(const v1::VerifyReport& report);

}  // namespace pghaul::controller
