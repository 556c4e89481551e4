// Preflight: the comparison of the source's and the target's facts that decides whether a physical
// copy (pgBackRest backup on the source, restore on the target) is safe, before anything changes
// on either host. Pure logic: the migration gathers the inputs (facts from the agent registry, the
// output of `pgbackrest info` run on the source) and stores the results; this file only compares.
//
// Every check is always reported, in the order of PreflightCheckNames(), so that scripts can rely
// on the names (docs/preflight.md describes each). A check that cannot be made because one side's
// facts are missing reports "warn" with "not compared: ..."; whatever made the facts missing
// (agent offline, no facts, PostgreSQL unreachable) is itself a "fail" of an earlier check, so a
// preflight with a "not compared" check never passes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "controller/plan.h"
#include "pghaul/v1/facts.pb.h"
#include "pghaul/v1/migrations.pb.h"

namespace pghaul::controller {

// Status values of v1::CheckResult.status.
inline constexpr char kCheckPass[] = "pass";
inline constexpr char kCheckWarn[] = "warn";
inline constexpr char kCheckFail[] = "fail";

// The target must have this much free space on its data directory's filesystem: the source's
// databases plus 20 % (relation files grow while the backup runs, and the restore lays out free
// space maps and visibility maps at their full size), plus 1 GiB for the WAL the restored
// cluster replays and keeps (max_wal_size defaults to 1 GB).
inline constexpr uint64_t kTargetDiskMarginBytes = uint64_t{1} << 30;
inline constexpr double kTargetDiskGrowthFactor = 1.2;

struct PreflightInput {
  const Plan* plan = nullptr;  // never null
  v1::HostFacts source;        // the last facts each agent reported (empty if none)
  v1::HostFacts target;
  std::string source_agent;  // agent ids as registered (normally the plan's)
  std::string target_agent;
  bool source_online = false;
  bool target_online = false;
  // `pgbackrest info --output=json` of the plan's stanza as seen from the source (raw JSON text,
  // "" when it was not run or failed), the stanza's status.code (agent/pgbackrest_info.h; -1 when
  // unknown) and why the command failed ("" when it ran). When the JSON is present its
  // status.code is authoritative.
  std::string stanza_info_json;
  int stanza_status_code = -1;
  std::string stanza_info_error;
  // A posix repository's path (or nearest existing parent) that the source agent's user cannot
  // write, as its `pgbackrest info` task reported; "" when writable or not known.
  std::string repository_not_writable;
};

// The names of the checks, in the order RunPreflightChecks returns them. Stable: scripts and
// docs/preflight.md rely on them.
const std::vector<std::string>& PreflightCheckNames();

// Runs every check; the result has one entry per name of PreflightCheckNames(), in that order.
std::vector<v1::CheckResult> RunPreflightChecks(const PreflightInput& in);

// True when no check failed (warnings do not stop a migration).
bool PreflightPassed(const std::vector<v1::CheckResult>& checks);

// "24 pass, 2 warn, 1 fail: target-disk, stanza" (the failing checks named), for phase messages.
std::string SummarizePreflight(const std::vector<v1::CheckResult>& checks);

// Helpers shared with the tests and the CLI's texts.

// "15.18" from server_version_num 150018 ("9.6.24" from 90624); "" for 0.
std::string FormatServerVersion(int32_t server_version_num);

// 1536 -> "1.5 KiB"; below 1024: "512 B".
std::string FormatByteCount(uint64_t bytes);

// Compares two pgBackRest versions ("2.45", "2.50dev", "2.9") numerically component by
// component (a trailing non-digit suffix such as "dev" is ignored): -1, 0 or 1. Errors are not
// possible: a component without digits counts as 0.
int ComparePgBackRestVersions(const std::string& a, const std::string& b);

}  // namespace pghaul::controller
