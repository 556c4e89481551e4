// The verify phase: what both agents compute (schema catalogue, per-table row counts and
// checksums, sequences, large objects, the plan's application checks) compared into the report
// `pghaul status` and `pghaul verify -o json` show, with the differing rows of a table located
// by primary key. The comparison rules are in verify_report.h and schema_compare.h.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "controller/phase_context.h"
#include "pghaul/v1/migrations.pb.h"
#include "pghaul/v1/tasks.pb.h"

namespace pghaul::controller {

// Runs the verify phase for the migration behind `ctx`, journals the report in its info, and
// fails (FailedPrecondition, with a summary) when anything differs.
absl::Status RunVerify(PhaseContext& ctx);

// Verify without the application checks: both agents' schema catalogues and checksums compared
// into a report, the differing rows of each mismatching table located (passed or not; not
// journaled). Reads only, so it works with the target a hot standby in recovery. `step_prefix`
// keeps the step names of different callers apart ("" in the verify phase, "exact-" in the
// cutover). A dry run: a passing, empty report. Errors: those of PhaseContext::Run (a failed
// checksum or catalogue task); a locate that fails is noted in the report, not an error, unless
// it was cancelled.
absl::StatusOr<v1::VerifyReport> CompareData(PhaseContext& ctx, absl::string_view step_prefix);

// ---- Locating differing rows (exposed for tests) ----

// What one side said about a range (agent/row_ranges.h, ROW_RANGES).
struct RangeBucket {
  uint64_t rows = 0;
  std::string md5;
  std::vector<std::string> last;  // the bucket's last key (only from the side that split)
};
struct RangeAnswer {
  std::vector<std::string> key_columns;  // empty: no primary key
  std::vector<RangeBucket> buckets;
};
// What one side said about the rows of a range (ROW_DIGESTS), in key order.
struct DigestAnswer {
  std::vector<std::string> key_columns;
  std::vector<std::pair<std::vector<std::string>, std::string>> rows;  // key, md5
  bool truncated = false;
};
// Parse the agents' values. Errors: InvalidArgument naming what is missing or malformed.
absl::StatusOr<RangeAnswer> ParseRangeAnswer(const std::map<std::string, std::string>& values);
absl::StatusOr<DigestAnswer> ParseDigestAnswer(const std::map<std::string, std::string>& values);

// "id=42", or "(a, b)=(1, x)" for a composite key; each value cut at 40 characters.
std::string FormatRowKey(const std::vector<std::string>& columns,
                         const std::vector<std::string>& values);

// Asks the agents; LocateRows's only window on the world.
class RowRangeReader {
 public:
  enum class Side { kSource, kTarget };
  virtual ~RowRangeReader() = default;
  // ROW_RANGES on `side` for `range` (boundaries empty: that side splits).
  virtual absl::StatusOr<RangeAnswer> Ranges(Side side, const v1::RowRange& range) = 0;
  // ROW_DIGESTS on both sides.
  virtual absl::StatusOr<std::pair<DigestAnswer, DigestAnswer>> Digests(
      const v1::RowRange& range) = 0;
};

struct LocateOptions {
  uint64_t small_range_rows = 1000;  // ranges this small are compared row by row
  uint32_t buckets = 16;             // ranges larger are split into this many
  int max_steps = 100;               // ROW_RANGES/ROW_DIGESTS rounds per table
  size_t max_listed = 20;            // rows listed in the report
  size_t max_found = 1000;           // stop looking after this many differing rows
};

// Narrows the table `range` names (lower/upper/boundaries unset) down to its differing rows:
// splits the range on the side with more rows (ROW_RANGES without boundaries), asks the other
// side for the same buckets, recurses into the buckets that differ (in key order), and compares
// ranges of at most small_range_rows row by row. Fills `difference`'s rows (first max_listed in
// key order), rows_differing and locate ("located"; "no primary key: cannot locate rows";
// "stopped after N steps: at least M rows differ"). Errors: only Cancelled (from the reader);
// other reader errors end the search with the error in `locate`.
absl::Status LocateRows(RowRangeReader& reader, const v1::RowRange& range, uint64_t source_rows,
                        uint64_t target_rows, const LocateOptions& options,
                        v1::TableComparison* difference);

}  // namespace pghaul::controller
