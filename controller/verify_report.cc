#include "controller/verify_report.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace pghaul::controller {
namespace {

constexpr size_t kNamedDifferences = 5;

// "rows=<n> md5=<hex> persistence=<p|u> kind=<r|m>" (tables) or "rows=<n> md5=<hex>" (large
// objects). Unknown keys are ignored so that the agent may add some.
struct TableValue {
  uint64_t rows = 0;
  std::string md5;
  std::string persistence = "p";
  std::string kind = "r";
};

std::optional<TableValue> ParseTableValue(absl::string_view text) {
  TableValue value;
  bool has_rows = false;
  bool has_md5 = false;
  for (absl::string_view token : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(token, absl::MaxSplits('=', 1));
    if (kv.first == "rows") {
      if (!absl::SimpleAtoi(kv.second, &value.rows)) return std::nullopt;
      has_rows = true;
    } else if (kv.first == "md5") {
      // Empty: not read (an unlogged table in recovery, an unpopulated materialized view).
      value.md5 = std::string(kv.second);
      has_md5 = true;
    } else if (kv.first == "persistence") {
      value.persistence = std::string(kv.second);
    } else if (kv.first == "kind") {
      value.kind = std::string(kv.second);
    }
  }
  if (!has_rows || !has_md5) return std::nullopt;
  return value;
}

bool IsSequence(absl::string_view key) { return absl::StrContains(key, "/sequence:"); }

std::string Rows(uint64_t n) { return absl::StrCat(n, n == 1 ? " row" : " rows"); }

v1::TableComparison Compare(const std::string& key, const std::string& source,
                            const std::string& target,
                            const std::map<std::string, int64_t>& sequence_slack) {
  v1::TableComparison result;
  result.set_table(key);
  if (IsSequence(key)) {
    // "" when the sequence was never called. A physical copy may be ahead of the source: a
    // sequence's WAL record is written 32 values ahead of the last value handed out, and the
    // copy replays that record. Behind means values the source handed out may be handed out
    // again on the target.
    if (source.empty() && target.empty()) {
      result.set_status(kObjectMatch);
      return result;
    }
    int64_t source_value = 0;
    int64_t target_value = 0;
    bool source_ok = !source.empty() && absl::SimpleAtoi(source, &source_value);
    bool target_ok = !target.empty() && absl::SimpleAtoi(target, &target_value);
    if ((!source.empty() && !source_ok) || (!target.empty() && !target_ok)) {
      result.set_status(kObjectMismatch);
      result.set_detail(
          absl::StrCat("unreadable sequence value: source '", source, "', target '", target, "'"));
      return result;
    }
    if (source.empty() || target.empty()) {
      result.set_status(kObjectMismatch);
      result.set_detail(
          source.empty()
              ? absl::StrCat("never called on the source, last value ", target, " on the target")
              : absl::StrCat("last value ", source, " on the source, never called on the target"));
      return result;
    }
    auto slack = sequence_slack.find(key);
    if (target_value >= source_value && slack != sequence_slack.end() &&
        static_cast<long double>(target_value) - source_value > slack->second) {
      result.set_status(kObjectMismatch);
      result.set_detail(absl::StrCat("last value ", target_value, " on the target, ", source_value,
                                     " on the source: further ahead than the ", slack->second,
                                     " values PostgreSQL logs in advance"));
      return result;
    }
    if (target_value >= source_value) {
      result.set_status(kObjectMatch);
      return result;
    }
    result.set_status(kObjectMismatch);
    result.set_detail(absl::StrCat("last value ", target_value,
                                   " on the target is behind the "
                                   "source's ",
                                   source_value));
    return result;
  }

  std::optional<TableValue> s = ParseTableValue(source);
  std::optional<TableValue> t = ParseTableValue(target);
  if (!s || !t) {
    result.set_status(kObjectMismatch);
    if (s) result.set_source_rows(s->rows);
    if (t) result.set_target_rows(t->rows);
    result.set_detail(
        absl::StrCat("unreadable checksum: source '", source, "', target '", target, "'"));
    return result;
  }
  result.set_source_rows(s->rows);
  result.set_target_rows(t->rows);
  bool same_data = s->rows == t->rows && s->md5 == t->md5;
  if (same_data && s->persistence == t->persistence && s->kind == t->kind) {
    result.set_status(kObjectMatch);
    return result;
  }
  if (s->persistence == "u") {
    // Unlogged tables are not in the WAL nor in the backup's consistent state: a restored copy
    // starts them empty.
    if (t->rows == 0) {
      result.set_status(kObjectExpectedEmpty);
      result.set_detail(t->md5.empty()
                            ? "unlogged: not readable on a standby, and empty once promoted (its "
                              "data is not in the WAL), as expected"
                            : "unlogged: empty after a physical restore, as expected");
      return result;
    }
    result.set_status(kObjectMismatch);
    result.set_detail(absl::StrCat("unlogged on the source, but the target has ", Rows(t->rows),
                                   " that differ from the source's ", Rows(s->rows)));
    return result;
  }
  result.set_status(kObjectMismatch);
  if (s->rows != t->rows) {
    result.set_detail(
        absl::StrCat(Rows(s->rows), " on the source, ", Rows(t->rows), " on the target"));
  } else if (s->md5 != t->md5) {
    result.set_detail(absl::StrCat("same row count (", s->rows, "), different content"));
  } else if (s->persistence != t->persistence) {
    result.set_detail(absl::StrCat("persistence ", s->persistence, " on the source, ",
                                   t->persistence, " on the target"));
  } else {
    result.set_detail(
        absl::StrCat("kind ", s->kind, " on the source, ", t->kind, " on the target"));
  }
  return result;
}

v1::TableComparison Missing(const std::string& key, const std::string& value, bool on_target) {
  v1::TableComparison result;
  result.set_table(key);
  result.set_status(on_target ? kObjectMissingOnTarget : kObjectMissingOnSource);
  std::optional<TableValue> parsed = IsSequence(key) ? std::nullopt : ParseTableValue(value);
  if (parsed) {
    if (on_target) {
      result.set_source_rows(parsed->rows);
    } else {
      result.set_target_rows(parsed->rows);
    }
  }
  result.set_detail(on_target ? "on the source only" : "on the target only");
  return result;
}

std::string StateName(v1::TaskResult::State state) {
  std::string name = v1::TaskResult::State_Name(state);
  if (name.empty()) name = absl::StrCat("state ", static_cast<int>(state));
  absl::AsciiStrToLower(&name);
  return name;
}

std::string ValueOf(const v1::TaskResult& result, const std::string& key) {
  auto it = result.values().find(key);
  return it == result.values().end() ? "" : it->second;
}

bool Succeeded(const v1::TaskResult& result) {
  return result.state() == v1::TaskResult::SUCCEEDED && !ValueOf(result, "digest").empty();
}

std::string DescribeCheckResult(const v1::TaskResult& result) {
  if (result.state() == v1::TaskResult::SUCCEEDED) {
    if (ValueOf(result, "digest").empty()) return "succeeded without a digest";
    std::string first = ValueOf(result, "first");
    if (first.size() > 40) first = absl::StrCat(first.substr(0, 37), "...");
    return absl::StrCat("rows=", ValueOf(result, "rows"), " digest=", ValueOf(result, "digest"),
                        " first=", first);
  }
  return absl::StrCat(StateName(result.state()), result.message().empty() ? "" : ": ",
                      result.message());
}

bool IsProblem(const v1::TableComparison& difference) {
  return difference.status() != kObjectMatch && difference.status() != kObjectExpectedEmpty;
}

}  // namespace

v1::VerifyReport CompareChecksums(const std::map<std::string, std::string>& source,
                                  const std::map<std::string, std::string>& target,
                                  const std::map<std::string, int64_t>& sequence_slack) {
  v1::VerifyReport report;
  std::set<std::string> keys;
  for (const auto& [key, value] : source) keys.insert(key);
  for (const auto& [key, value] : target) keys.insert(key);
  uint32_t matching = 0;
  bool passed = true;
  uint32_t tables = 0;
  uint64_t rows = 0;
  for (const std::string& key : keys) {
    auto s = source.find(key);
    auto t = target.find(key);
    v1::TableComparison comparison;
    if (t == target.end()) {
      comparison = Missing(key, s->second, /*on_target=*/true);
    } else if (s == source.end()) {
      comparison = Missing(key, t->second, /*on_target=*/false);
    } else {
      comparison = Compare(key, s->second, t->second, sequence_slack);
    }
    comparison.set_kind(IsSequence(key)                         ? "sequence value"
                        : absl::EndsWith(key, "/large_objects") ? "large objects"
                                                                : "rows");
    if (comparison.kind() == "rows") {
      ++tables;
      if (s != source.end()) {
        std::optional<TableValue> parsed = ParseTableValue(s->second);
        if (parsed) rows += parsed->rows;
      }
    }
    if (comparison.status() == kObjectMatch) {
      ++matching;
      continue;
    }
    if (IsProblem(comparison)) passed = false;
    *report.add_differences() = std::move(comparison);
  }
  report.set_objects_compared(static_cast<uint32_t>(keys.size()));
  report.set_objects_matching(matching);
  report.set_passed(passed);
  report.set_tables_compared(tables);
  report.set_rows_compared(rows);
  return report;
}

void AddSchemaDifferences(const std::vector<v1::TableComparison>& differences, uint32_t compared,
                          v1::VerifyReport* report) {
  google::protobuf::RepeatedPtrField<v1::TableComparison> data;
  data.Swap(report->mutable_differences());
  for (const v1::TableComparison& d : differences) *report->add_differences() = d;
  for (v1::TableComparison& d : data) *report->add_differences() = std::move(d);
  report->set_objects_compared(report->objects_compared() + compared);
  report->set_schema_objects_compared(report->schema_objects_compared() + compared);
  report->set_objects_matching(report->objects_matching() + compared -
                               static_cast<uint32_t>(differences.size()));
  for (const v1::TableComparison& d : differences) {
    if (IsProblem(d)) report->set_passed(false);
  }
}

std::string DescribeLocatedRows(const v1::TableComparison& difference, size_t max) {
  std::vector<std::string> named;
  for (int i = 0; i < difference.rows_size() && named.size() < max; ++i) {
    const v1::RowDifference& row = difference.rows(i);
    std::string change = row.change();
    if (change == kObjectMissingOnTarget) change = "missing on target";
    if (change == kObjectMissingOnSource) change = "missing on source";
    named.push_back(absl::StrCat(row.key(), " (", change, ")"));
  }
  std::string text = absl::StrJoin(named, ", ");
  const uint64_t total = std::max<uint64_t>(difference.rows_differing(), difference.rows_size());
  if (total > named.size()) absl::StrAppend(&text, " and ", total - named.size(), " more");
  return text;
}

std::string DescribeDifference(const v1::TableComparison& d) {
  const std::string& kind = d.kind();
  const bool data =
      kind.empty() || kind == "rows" || kind == "large objects" || kind == "sequence value";
  std::string subject = data ? d.table() : absl::StrCat(kind, " ", d.table());
  if (d.status() == kObjectMissingOnTarget) return absl::StrCat(subject, " missing on target");
  if (d.status() == kObjectMissingOnSource) return absl::StrCat(subject, " missing on source");
  std::string text = absl::StrCat(subject, ": ");
  if (d.status() != kObjectMismatch) absl::StrAppend(&text, d.status(), ": ");
  absl::StrAppend(&text, d.detail());
  if (d.rows_size() > 0) {
    absl::StrAppend(&text, "; rows differ at ", DescribeLocatedRows(d, kNamedDifferences));
  } else if (!d.locate().empty() && d.locate() != "located") {
    absl::StrAppend(&text, " (", d.locate(), ")");
  }
  return text;
}

v1::CheckResult CompareApplicationCheck(const std::string& name, const v1::TaskResult& source,
                                        const v1::TaskResult& target) {
  v1::CheckResult check;
  check.set_name(name);
  check.set_source(DescribeCheckResult(source));
  check.set_target(DescribeCheckResult(target));
  bool source_ok = Succeeded(source);
  bool target_ok = Succeeded(target);
  if (source_ok && target_ok) {
    if (ValueOf(source, "digest") == ValueOf(target, "digest")) {
      check.set_status("pass");
      check.set_message(
          absl::StrCat("same result on both sides (", ValueOf(source, "rows"), " rows)"));
      return check;
    }
    std::string message =
        absl::StrCat("results differ: ", ValueOf(source, "rows"), " rows on the source, ",
                     ValueOf(target, "rows"), " on the target");
    if (ValueOf(source, "first") != ValueOf(target, "first")) {
      absl::StrAppend(&message, "; first value '", ValueOf(source, "first"), "' on the source, '",
                      ValueOf(target, "first"), "' on the target");
    }
    check.set_status("fail");
    check.set_message(message);
    check.set_fix(
        "run the check's query on both sides (psql) and compare the rows; the query "
        "must order its rows (ORDER BY) to give the same digest");
    return check;
  }
  std::vector<std::string> failures;
  if (!source_ok) failures.push_back(absl::StrCat("on the source: ", DescribeCheckResult(source)));
  if (!target_ok) failures.push_back(absl::StrCat("on the target: ", DescribeCheckResult(target)));
  check.set_status("fail");
  check.set_message(absl::StrCat("the check did not run ", absl::StrJoin(failures, "; ")));
  check.set_fix(
      "correct the check's SQL (one read-only statement) or its database, then run "
      "verify again");
  return check;
}

void AddApplicationCheck(const v1::CheckResult& check, v1::VerifyReport* report) {
  *report->add_application_checks() = check;
  if (check.status() == "fail") report->set_passed(false);
}

std::string SummarizeVerify(const v1::VerifyReport& report) {
  uint32_t expected_empty = 0;
  std::vector<const v1::TableComparison*> problems;
  for (const v1::TableComparison& difference : report.differences()) {
    if (difference.status() == kObjectExpectedEmpty) ++expected_empty;
    if (IsProblem(difference)) problems.push_back(&difference);
  }
  std::vector<std::string> failed_checks;
  for (const v1::CheckResult& check : report.application_checks()) {
    if (check.status() == "fail") failed_checks.push_back(check.name());
  }
  int checks = report.application_checks_size();
  auto objects = [](uint32_t n) { return absl::StrCat(n, n == 1 ? " object" : " objects"); };

  std::vector<std::string> parts;
  if (problems.empty()) {
    std::string part = absl::StrCat(objects(report.objects_matching()),
                                    report.objects_matching() == 1 ? " matches" : " match");
    if (expected_empty > 0) absl::StrAppend(&part, ", ", expected_empty, " expected-empty");
    parts.push_back(part);
  } else {
    std::vector<std::string> named;
    for (size_t i = 0; i < problems.size() && i < kNamedDifferences; ++i) {
      named.push_back(DescribeDifference(*problems[i]));
    }
    std::string part =
        absl::StrCat(problems.size(), " of ", objects(report.objects_compared()),
                     problems.size() == 1 ? " differs: " : " differ: ", absl::StrJoin(named, "; "));
    if (problems.size() > kNamedDifferences) {
      const size_t more = problems.size() - kNamedDifferences;
      absl::StrAppend(&part, "; and ", more, more == 1 ? " more object" : " more objects");
    }
    parts.push_back(part);
  }
  if (checks > 0) {
    if (failed_checks.empty()) {
      parts.push_back(absl::StrCat(
          checks, checks == 1 ? " application check passes" : " application checks pass"));
    } else {
      parts.push_back(absl::StrCat(
          failed_checks.size(), " of ", checks, " application ",
          checks == 1 ? "check fails: " : "checks fail: ", absl::StrJoin(failed_checks, ", ")));
    }
  }
  std::string text = absl::StrJoin(parts, "; ");
  bool failed = !problems.empty() || !failed_checks.empty() || !report.passed();
  return failed ? absl::StrCat("verify failed: ", text) : text;
}

}  // namespace pghaul::controller
