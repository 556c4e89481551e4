#include "controller/verify_phase.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "common/time_proto.h"
#include "controller/phase_tasks.h"
#include "controller/schema_compare.h"
#include "controller/verify_report.h"

namespace pghaul::controller {

namespace {

using Values = std::map<std::string, std::string>;

// Tables located per compare; the rest are named without their rows.
constexpr int kMaxTablesLocated = 10;
constexpr uint32_t kLocateTaskTimeoutSeconds = 3600;
constexpr size_t kKeyValueWidth = 40;

std::vector<std::string> DecodeKey(absl::string_view encoded) {
  std::vector<std::string> columns;
  for (absl::string_view part : absl::StrSplit(encoded, '\t')) {
    std::string value;
    if (!absl::CUnescape(part, &value)) value = std::string(part);
    columns.push_back(std::move(value));
  }
  return columns;
}

absl::StatusOr<std::string> Required(const Values& values, const std::string& key) {
  auto it = values.find(key);
  if (it == values.end()) {
    return absl::InvalidArgumentError(absl::StrCat("the agent's answer has no '", key, "'"));
  }
  return it->second;
}

// "rows=<n> md5=<hex>".
absl::Status ParseBucket(absl::string_view text, RangeBucket* bucket) {
  bool has_rows = false;
  for (absl::string_view token : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&token, "rows=")) {
      has_rows = absl::SimpleAtoi(token, &bucket->rows);
    } else if (absl::ConsumePrefix(&token, "md5=")) {
      bucket->md5 = std::string(token);
    }
  }
  if (!has_rows) return absl::InvalidArgumentError(absl::StrCat("bad bucket '", text, "'"));
  return absl::OkStatus();
}

bool Differs(const RangeBucket& a, const RangeBucket& b) {
  return a.rows != b.rows || (a.rows > 0 && a.md5 != b.md5);
}

// Sends ROW_RANGES and ROW_DIGESTS as read-only steps of the current phase.
class TaskRangeReader : public RowRangeReader {
 public:
  TaskRangeReader(PhaseContext& ctx, absl::string_view step_prefix)
      : ctx_(ctx), prefix_(step_prefix) {}

  absl::StatusOr<RangeAnswer> Ranges(Side side, const v1::RowRange& range) override {
    PGH_ASSIGN_OR_RETURN(
        v1::TaskResult result,
        ctx_.Run(Agent(side), Step(side), Task(v1::SqlQuery::ROW_RANGES, range), Options()));
    return ParseRangeAnswer(Values(result.values().begin(), result.values().end()));
  }

  absl::StatusOr<std::pair<DigestAnswer, DigestAnswer>> Digests(
      const v1::RowRange& range) override {
    v1::Task task = Task(v1::SqlQuery::ROW_DIGESTS, range);
    std::vector<absl::StatusOr<v1::TaskResult>> both =
        ctx_.RunAll({{Agent(Side::kSource), Step(Side::kSource), task, Options()},
                     {Agent(Side::kTarget), Step(Side::kTarget), task, Options()}});
    for (const auto& result : both) PGH_RETURN_IF_ERROR(result.status());
    PGH_ASSIGN_OR_RETURN(DigestAnswer source, ParseDigestAnswer(Values(both[0]->values().begin(),
                                                                       both[0]->values().end())));
    PGH_ASSIGN_OR_RETURN(DigestAnswer target, ParseDigestAnswer(Values(both[1]->values().begin(),
                                                                       both[1]->values().end())));
    return std::make_pair(std::move(source), std::move(target));
  }

 private:
  static v1::Task Task(v1::SqlQuery::Query query, const v1::RowRange& range) {
    v1::Task task;
    task.mutable_sql()->set_query(query);
    *task.mutable_sql()->mutable_range() = range;
    return task;
  }
  static StepOptions Options() {
    return {.read_only = true, .timeout_seconds = kLocateTaskTimeoutSeconds};
  }
  const std::string& Agent(Side side) const {
    return side == Side::kSource ? ctx_.plan().source_agent : ctx_.plan().target_agent;
  }
  std::string Step(Side side) {
    return absl::StrCat(prefix_, "locate-", ++steps_,
                        side == Side::kSource ? "-source" : "-target");
  }

  PhaseContext& ctx_;
  const std::string prefix_;
  int steps_ = 0;
};

// A range still to look into, with both sides' row counts in it.
struct PendingRange {
  v1::RowKey lower;
  v1::RowKey upper;
  uint64_t source_rows = 0;
  uint64_t target_rows = 0;
};

void AppendRowDifferences(const std::vector<std::string>& key_columns, const DigestAnswer& source,
                          const DigestAnswer& target, std::vector<v1::RowDifference>& found) {
  std::map<std::vector<std::string>, std::string> target_rows;
  for (const auto& [key, md5] : target.rows) target_rows[key] = md5;
  std::map<std::vector<std::string>, bool> source_keys;
  for (const auto& [key, md5] : source.rows) {
    source_keys[key] = true;
    auto t = target_rows.find(key);
    v1::RowDifference row;
    row.set_key(FormatRowKey(key_columns, key));
    if (t == target_rows.end()) {
      row.set_change(kObjectMissingOnTarget);
    } else if (t->second != md5) {
      row.set_change("changed");
    } else {
      continue;
    }
    found.push_back(std::move(row));
  }
  for (const auto& [key, md5] : target.rows) {
    if (source_keys.count(key) > 0) continue;
    v1::RowDifference row;
    row.set_key(FormatRowKey(key_columns, key));
    row.set_change(kObjectMissingOnSource);
    found.push_back(std::move(row));
  }
}

}  // namespace

absl::StatusOr<RangeAnswer> ParseRangeAnswer(const std::map<std::string, std::string>& values) {
  RangeAnswer answer;
  PGH_ASSIGN_OR_RETURN(std::string columns, Required(values, "key_columns"));
  auto no_key = values.find("no_primary_key");
  if (no_key != values.end() && no_key->second == "true") return answer;
  answer.key_columns = DecodeKey(columns);
  PGH_ASSIGN_OR_RETURN(std::string count_text, Required(values, "buckets"));
  int count = 0;
  if (!absl::SimpleAtoi(count_text, &count) || count < 0 || count > 1000) {
    return absl::InvalidArgumentError(absl::StrCat("bad bucket count '", count_text, "'"));
  }
  for (int i = 0; i < count; ++i) {
    const std::string name = absl::StrFormat("bucket:%04d", i);
    PGH_ASSIGN_OR_RETURN(std::string text, Required(values, name));
    RangeBucket bucket;
    PGH_RETURN_IF_ERROR(ParseBucket(text, &bucket));
    auto last = values.find(absl::StrCat(name, ":last"));
    if (last != values.end()) bucket.last = DecodeKey(last->second);
    answer.buckets.push_back(std::move(bucket));
  }
  return answer;
}

absl::StatusOr<DigestAnswer> ParseDigestAnswer(const std::map<std::string, std::string>& values) {
  DigestAnswer answer;
  PGH_ASSIGN_OR_RETURN(std::string columns, Required(values, "key_columns"));
  auto no_key = values.find("no_primary_key");
  if (no_key != values.end() && no_key->second == "true") return answer;
  answer.key_columns = DecodeKey(columns);
  PGH_ASSIGN_OR_RETURN(std::string count_text, Required(values, "rows"));
  int count = 0;
  if (!absl::SimpleAtoi(count_text, &count) || count < 0) {
    return absl::InvalidArgumentError(absl::StrCat("bad row count '", count_text, "'"));
  }
  auto truncated = values.find("truncated");
  answer.truncated = truncated != values.end() && truncated->second == "true";
  for (int i = 0; i < count; ++i) {
    PGH_ASSIGN_OR_RETURN(std::string text, Required(values, absl::StrFormat("row:%06d", i)));
    size_t tab = text.find('\t');
    if (tab == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad row digest '", text, "'"));
    }
    answer.rows.emplace_back(DecodeKey(text.substr(tab + 1)), text.substr(0, tab));
  }
  return answer;
}

std::string FormatRowKey(const std::vector<std::string>& columns,
                         const std::vector<std::string>& values) {
  std::vector<std::string> shown;
  for (const std::string& value : values) {
    std::string printable = absl::CHexEscape(value);
    if (printable.size() > kKeyValueWidth) {
      printable = absl::StrCat(printable.substr(0, kKeyValueWidth - 3), "...");
    }
    shown.push_back(std::move(printable));
  }
  if (columns.size() == 1 && shown.size() == 1) return absl::StrCat(columns[0], "=", shown[0]);
  return absl::StrCat("(", absl::StrJoin(columns, ", "), ")=(", absl::StrJoin(shown, ", "), ")");
}

absl::Status LocateRows(RowRangeReader& reader, const v1::RowRange& table, uint64_t source_rows,
                        uint64_t target_rows, const LocateOptions& options,
                        v1::TableComparison* difference) {
  using Side = RowRangeReader::Side;
  std::vector<PendingRange> stack;
  stack.push_back({{}, {}, source_rows, target_rows});
  std::vector<v1::RowDifference> found;
  std::vector<std::string> key_columns;
  int steps = 0;
  bool complete = true;
  std::string failure;
  auto range_of = [&table](const PendingRange& p) {
    v1::RowRange range = table;
    *range.mutable_lower() = p.lower;
    *range.mutable_upper() = p.upper;
    return range;
  };
  // The error that ends the search: Cancelled goes up, the rest is noted.
  auto stop = [&failure](const absl::Status& status) -> absl::Status {
    if (absl::IsCancelled(status)) return status;
    failure = std::string(status.message());
    return absl::OkStatus();
  };
  bool no_primary_key = false;
  while (!stack.empty() && failure.empty()) {
    if (steps >= options.max_steps || found.size() >= options.max_found) {
      complete = false;
      break;
    }
    PendingRange pending = std::move(stack.back());
    stack.pop_back();
    ++steps;
    const v1::RowRange range = range_of(pending);
    if (std::max(pending.source_rows, pending.target_rows) <= options.small_range_rows) {
      absl::StatusOr<std::pair<DigestAnswer, DigestAnswer>> digests = reader.Digests(range);
      if (!digests.ok()) {
        PGH_RETURN_IF_ERROR(stop(digests.status()));
        break;
      }
      if (digests->first.key_columns.empty() || digests->second.key_columns.empty()) {
        no_primary_key = true;
        break;
      }
      key_columns = digests->first.key_columns;
      if (digests->first.truncated || digests->second.truncated) complete = false;
      AppendRowDifferences(key_columns, digests->first, digests->second, found);
      continue;
    }
    const Side splitter =
        pending.source_rows >= pending.target_rows ? Side::kSource : Side::kTarget;
    const Side other = splitter == Side::kSource ? Side::kTarget : Side::kSource;
    v1::RowRange split_request = range;
    split_request.set_buckets(options.buckets);
    absl::StatusOr<RangeAnswer> split = reader.Ranges(splitter, split_request);
    if (!split.ok()) {
      PGH_RETURN_IF_ERROR(stop(split.status()));
      break;
    }
    if (split->key_columns.empty()) {
      no_primary_key = true;
      break;
    }
    key_columns = split->key_columns;
    const size_t n = split->buckets.size();
    if (n == 0) {
      // The counts changed under us (the splitter's range is empty now): nothing to split.
      complete = false;
      continue;
    }
    v1::RowRange follow = range;
    for (size_t i = 0; i + 1 < n; ++i) {
      v1::RowKey* boundary = follow.add_boundaries();
      for (const std::string& column : split->buckets[i].last) boundary->add_columns(column);
    }
    absl::StatusOr<RangeAnswer> followed = reader.Ranges(other, follow);
    if (!followed.ok()) {
      PGH_RETURN_IF_ERROR(stop(followed.status()));
      break;
    }
    if (followed->buckets.size() != n) {
      failure = absl::StrCat("asked for ", n, " buckets, the other side answered ",
                             followed->buckets.size());
      break;
    }
    std::vector<PendingRange> children;
    for (size_t i = 0; i < n; ++i) {
      const RangeBucket& a = split->buckets[i];
      const RangeBucket& b = followed->buckets[i];
      if (!Differs(a, b)) continue;
      PendingRange child;
      child.lower = i == 0 ? pending.lower : follow.boundaries(static_cast<int>(i - 1));
      child.upper = i + 1 == n ? pending.upper : follow.boundaries(static_cast<int>(i));
      child.source_rows = splitter == Side::kSource ? a.rows : b.rows;
      child.target_rows = splitter == Side::kSource ? b.rows : a.rows;
      children.push_back(std::move(child));
    }
    // Depth first, lowest keys first: the first rows found are the first in key order.
    for (auto it = children.rbegin(); it != children.rend(); ++it) stack.push_back(std::move(*it));
  }
  if (!stack.empty()) complete = false;

  difference->clear_rows();
  for (size_t i = 0; i < found.size() && i < options.max_listed; ++i) {
    *difference->add_rows() = found[i];
  }
  difference->set_rows_differing(found.size());
  if (no_primary_key) {
    difference->set_locate("no primary key: cannot locate rows");
  } else if (!failure.empty()) {
    difference->set_locate(absl::StrCat("could not locate all rows: ", failure));
  } else if (!complete) {
    difference->set_locate(absl::StrCat("stopped after ", steps, " steps: at least ", found.size(),
                                        found.size() == 1 ? " row differs" : " rows differ"));
  } else {
    difference->set_locate("located");
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::VerifyReport> CompareData(PhaseContext& ctx, absl::string_view step_prefix) {
  const Plan& plan = ctx.plan();
  v1::Task checksums = SqlTask(v1::SqlQuery::TABLE_CHECKSUMS);
  v1::Task catalogue = SqlTask(v1::SqlQuery::SCHEMA_CATALOG);
  std::vector<absl::StatusOr<v1::TaskResult>> sums =
      ctx.RunAll({{plan.source_agent,
                   absl::StrCat(step_prefix, "checksums-source"),
                   checksums,
                   {.read_only = true}},
                  {plan.target_agent,
                   absl::StrCat(step_prefix, "checksums-target"),
                   checksums,
                   {.read_only = true}},
                  {plan.source_agent,
                   absl::StrCat(step_prefix, "schema-source"),
                   catalogue,
                   {.read_only = true}},
                  {plan.target_agent,
                   absl::StrCat(step_prefix, "schema-target"),
                   catalogue,
                   {.read_only = true}}});
  for (const auto& sum : sums) PGH_RETURN_IF_ERROR(sum.status());
  if (ctx.dry_run()) {
    v1::VerifyReport report;
    report.set_passed(true);
    return report;
  }
  Values source(sums[0]->values().begin(), sums[0]->values().end());
  Values target(sums[1]->values().begin(), sums[1]->values().end());
  Values source_schema(sums[2]->values().begin(), sums[2]->values().end());
  Values target_schema(sums[3]->values().begin(), sums[3]->values().end());

  v1::VerifyReport report = CompareChecksums(source, target, SequenceSlack(source_schema));
  uint32_t schema_objects = 0;
  std::vector<v1::TableComparison> schema =
      CompareSchema(source_schema, target_schema, &schema_objects);
  const v1::MigrationRecord record = ctx.record();  // a copy: record() returns by value
  const auto& patroni_roles = record.info().target_patroni_roles();
  std::vector<std::string> set_aside =
      SetAsideRoles({patroni_roles.begin(), patroni_roles.end()}, &schema);
  if (!set_aside.empty()) {
    ctx.Event("info", absl::StrCat("not counted as differences: the roles the restore gave "
                                   "Patroni on the target (",
                                   absl::StrJoin(set_aside, ", "), ")"));
  }
  AddSchemaDifferences(schema, schema_objects, &report);

  const std::set<std::string> reshaped = TablesWithColumnDifferences(schema);
  TaskRangeReader reader(ctx, step_prefix);
  int located = 0;
  for (v1::TableComparison& d : *report.mutable_differences()) {
    if (d.kind() != "rows" || d.status() != kObjectMismatch) continue;
    if (reshaped.count(d.table()) > 0) {
      d.set_locate("its columns differ: rows not compared one by one");
      continue;
    }
    if (located >= kMaxTablesLocated) {
      d.set_locate(
          absl::StrCat("not located: only the first ", kMaxTablesLocated, " differing tables are"));
      continue;
    }
    std::optional<TableName> name = SplitTableKey(d.table(), source_schema);
    if (!name) {
      d.set_locate("not located: cannot tell the database, schema and table apart in its name");
      continue;
    }
    ++located;
    v1::RowRange range;
    range.set_database(name->database);
    range.set_schema(name->schema);
    range.set_table(name->table);
    PGH_RETURN_IF_ERROR(
        LocateRows(reader, range, d.source_rows(), d.target_rows(), LocateOptions{}, &d));
    ctx.Event("warn", DescribeDifference(d));
  }
  return report;
}

absl::Status RunVerify(PhaseContext& ctx) {
  const Plan& plan = ctx.plan();
  v1::MigrationRecord record = ctx.record();
  PGH_RETURN_IF_ERROR(StartTargetIfDown(ctx, "", "before verify"));
  ctx.Event("info", "comparing the schema and every table's row count and checksum on both sides");
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
    AddApplicationCheck(CompareApplicationCheck(checks[i].first, *ran[i].first, *ran[i].second),
                        &report);
  }
  *report.mutable_finished_at() = ToProto(ctx.Now());
  PGH_RETURN_IF_ERROR(
      ctx.Update([&](v1::MigrationRecord& r) { *r.mutable_info()->mutable_verify() = report; }));
  std::string summary = SummarizeVerify(report);
  if (!report.passed()) {
    // The migration's message already says that verify failed.
    return absl::FailedPreconditionError(
        absl::StrCat("verify found differences: ", absl::StripPrefix(summary, "verify failed: "),
                     ". `pghaul status ", plan.name, "` lists every one"));
  }
  ctx.Event("info", absl::StrCat("verified: ", summary));
  return absl::OkStatus();
}

}  // namespace pghaul::controller
