// LocateRows against a fake pair of agents that hold tables in memory and answer ROW_RANGES and
// ROW_DIGESTS the way agent/row_ranges.cc does (ntile buckets, boundaries, (lower, upper]).
#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "controller/verify_phase.h"
#include "controller/verify_report.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::controller {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Side = RowRangeReader::Side;

// Keys are numbers, printed zero-padded so that text order is key order.
std::string Key(int64_t id) { return absl::StrFormat("%08d", id); }

class FakeTables : public RowRangeReader {
 public:
  std::map<std::string, std::string> source;
  std::map<std::string, std::string> target;
  bool has_primary_key = true;
  int ranges_calls = 0;
  int digests_calls = 0;
  absl::Status fail_with = absl::OkStatus();

  absl::StatusOr<RangeAnswer> Ranges(Side side, const v1::RowRange& range) override {
    ++ranges_calls;
    if (!fail_with.ok()) return fail_with;
    RangeAnswer answer;
    if (!has_primary_key) return answer;
    answer.key_columns = {"id"};
    std::vector<std::pair<std::string, std::string>> rows = InRange(Rows(side), range);
    if (range.boundaries().empty()) {
      // ntile: the first n % k buckets get one row more.
      const size_t k = std::min<size_t>(range.buckets(), rows.size());
      size_t at = 0;
      for (size_t b = 0; b < k; ++b) {
        size_t size = rows.size() / k + (b < rows.size() % k ? 1 : 0);
        RangeBucket bucket;
        for (size_t i = 0; i < size; ++i, ++at) Add(bucket, rows[at]);
        bucket.last = {rows[at - 1].first};
        answer.buckets.push_back(std::move(bucket));
      }
      return answer;
    }
    answer.buckets.resize(range.boundaries_size() + 1);
    for (const auto& row : rows) {
      int b = 0;
      while (b < range.boundaries_size() && row.first > range.boundaries(b).columns(0)) ++b;
      Add(answer.buckets[b], row);
    }
    return answer;
  }

  absl::StatusOr<std::pair<DigestAnswer, DigestAnswer>> Digests(
      const v1::RowRange& range) override {
    ++digests_calls;
    if (!fail_with.ok()) return fail_with;
    auto side = [&](Side s) {
      DigestAnswer answer;
      if (!has_primary_key) return answer;
      answer.key_columns = {"id"};
      for (const auto& [key, md5] : InRange(Rows(s), range)) {
        answer.rows.emplace_back(std::vector<std::string>{key}, md5);
      }
      return answer;
    };
    return std::make_pair(side(Side::kSource), side(Side::kTarget));
  }

 private:
  const std::map<std::string, std::string>& Rows(Side side) const {
    return side == Side::kSource ? source : target;
  }
  static std::vector<std::pair<std::string, std::string>> InRange(
      const std::map<std::string, std::string>& rows, const v1::RowRange& range) {
    std::vector<std::pair<std::string, std::string>> in;
    for (const auto& row : rows) {
      if (range.lower().columns_size() > 0 && row.first <= range.lower().columns(0)) continue;
      if (range.upper().columns_size() > 0 && row.first > range.upper().columns(0)) continue;
      in.push_back(row);
    }
    return in;
  }
  static void Add(RangeBucket& bucket, const std::pair<std::string, std::string>& row) {
    ++bucket.rows;
    bucket.md5 += row.first + ":" + row.second + ";";
  }
};

class LocateRowsTest : public ::testing::Test {
 protected:
  void Fill(int rows) {
    for (int i = 1; i <= rows; ++i) tables_.source[Key(i)] = absl::StrCat("md5-", i);
    tables_.target = tables_.source;
  }
  v1::TableComparison Locate(LocateOptions options = {}) {
    v1::RowRange range;
    range.set_database("app");
    range.set_schema("public");
    range.set_table("orders");
    v1::TableComparison d;
    absl::Status status =
        LocateRows(tables_, range, tables_.source.size(), tables_.target.size(), options, &d);
    EXPECT_TRUE(status.ok()) << status;
    return d;
  }
  static std::vector<std::string> Keys(const v1::TableComparison& d) {
    std::vector<std::string> keys;
    for (const v1::RowDifference& row : d.rows()) keys.push_back(row.key() + " " + row.change());
    return keys;
  }

  FakeTables tables_;
};

TEST_F(LocateRowsTest, FindsAChangedAMissingAndAnExtraRowInAFiftyThousandRowTable) {
  Fill(50000);
  tables_.target[Key(4242)] = "changed";
  tables_.target.erase(Key(17077));
  tables_.target[Key(60000)] = "new";
  v1::TableComparison d = Locate();
  EXPECT_THAT(Keys(d), ElementsAre("id=00004242 changed", "id=00017077 missing-on-target",
                                   "id=00060000 missing-on-source"));
  EXPECT_EQ(d.rows_differing(), 3u);
  EXPECT_EQ(d.locate(), "located");
  // Narrowed by ranges, not by reading every row: a handful of rounds.
  EXPECT_LE(tables_.ranges_calls, 20);
  EXPECT_EQ(tables_.digests_calls, 3);
}

TEST_F(LocateRowsTest, SmallTableIsComparedRowByRowAtOnce) {
  Fill(300);
  tables_.target[Key(7)] = "changed";
  v1::TableComparison d = Locate();
  EXPECT_THAT(Keys(d), ElementsAre("id=00000007 changed"));
  EXPECT_EQ(tables_.ranges_calls, 0);
  EXPECT_EQ(tables_.digests_calls, 1);
}

TEST_F(LocateRowsTest, TargetWithManyMoreRowsIsSplitOnTheTargetSide) {
  Fill(100);
  for (int i = 1000; i < 6000; ++i) tables_.target[Key(i)] = "extra";
  v1::TableComparison d = Locate();
  EXPECT_GE(d.rows_differing(), 1000u);  // max_found: stops once 1000 are found
  EXPECT_EQ(d.rows_size(), 20);
  EXPECT_EQ(d.rows(0).key(), "id=00001000");
  EXPECT_EQ(d.rows(0).change(), kObjectMissingOnSource);
  EXPECT_THAT(d.locate(), HasSubstr("at least"));
}

TEST_F(LocateRowsTest, ListsAtMostTwentyInKeyOrderAndCountsTheRest) {
  Fill(20000);
  for (int i = 100; i <= 20000; i += 400) tables_.target[Key(i)] = "changed";
  v1::TableComparison d = Locate();
  EXPECT_EQ(d.rows_differing(), 50u);
  ASSERT_EQ(d.rows_size(), 20);
  EXPECT_EQ(d.rows(0).key(), "id=00000100");
  EXPECT_EQ(d.rows(19).key(), "id=00007700");
  EXPECT_EQ(d.locate(), "located");
  d.set_table("app/public.orders");
  d.set_kind("rows");
  d.set_status(kObjectMismatch);
  EXPECT_THAT(DescribeDifference(d), HasSubstr("id=00001700 (changed) and 45 more"));
}

TEST_F(LocateRowsTest, TableWithoutPrimaryKeySaysSo) {
  Fill(5000);
  tables_.target[Key(1)] = "changed";
  tables_.has_primary_key = false;
  v1::TableComparison d = Locate();
  EXPECT_THAT(d.rows(), IsEmpty());
  EXPECT_EQ(d.locate(), "no primary key: cannot locate rows");
}

TEST_F(LocateRowsTest, StopsAfterItsStepBudgetAndSaysHowFarItGot) {
  Fill(50000);
  for (int i = 1; i <= 50000; i += 1000) tables_.target[Key(i)] = "changed";
  LocateOptions options;
  options.max_steps = 5;
  v1::TableComparison d = Locate(options);
  EXPECT_LE(tables_.ranges_calls + tables_.digests_calls, 2 * 5);
  EXPECT_THAT(d.locate(), HasSubstr("stopped after 5 steps"));
}

TEST_F(LocateRowsTest, AgentErrorIsNotedAndCancelGoesUp) {
  Fill(5000);
  tables_.target[Key(1)] = "changed";
  tables_.fail_with = absl::NotFoundError("no table app/public.orders on this server");
  v1::TableComparison d = Locate();
  EXPECT_THAT(d.locate(), HasSubstr("could not locate all rows: no table"));

  tables_.fail_with = absl::CancelledError("aborting");
  v1::RowRange range;
  EXPECT_EQ(LocateRows(tables_, range, 5000, 5000, {}, &d).code(), absl::StatusCode::kCancelled);
}

TEST(ParseRangeAnswerTest, ReadsBucketsAndEscapedLastKeys) {
  absl::StatusOr<RangeAnswer> answer = ParseRangeAnswer({{"key_columns", "a\tb"},
                                                         {"buckets", "2"},
                                                         {"bucket:0000", "rows=3 md5=abc"},
                                                         {"bucket:0000:last", "1\tx\\ty"},
                                                         {"bucket:0001", "rows=0 md5="}});
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_THAT(answer->key_columns, ElementsAre("a", "b"));
  ASSERT_EQ(answer->buckets.size(), 2u);
  EXPECT_EQ(answer->buckets[0].rows, 3u);
  EXPECT_THAT(answer->buckets[0].last, ElementsAre("1", "x\ty"));
  EXPECT_EQ(answer->buckets[1].rows, 0u);

  EXPECT_TRUE(
      ParseRangeAnswer({{"key_columns", ""}, {"no_primary_key", "true"}})->key_columns.empty());
  EXPECT_EQ(ParseRangeAnswer({{"key_columns", "id"}, {"buckets", "1"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseRangeAnswer({}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseDigestAnswerTest, ReadsRowsInOrder) {
  absl::StatusOr<DigestAnswer> answer = ParseDigestAnswer({{"key_columns", "id"},
                                                           {"rows", "2"},
                                                           {"truncated", "false"},
                                                           {"row:000000", "m1\t7"},
                                                           {"row:000001", "m2\t8"}});
  ASSERT_TRUE(answer.ok()) << answer.status();
  ASSERT_EQ(answer->rows.size(), 2u);
  EXPECT_THAT(answer->rows[1].first, ElementsAre("8"));
  EXPECT_EQ(answer->rows[1].second, "m2");
  EXPECT_FALSE(answer->truncated);
}

TEST(FormatRowKeyTest, SingleAndCompositeKeysReadLikePostgresMessages) {
  EXPECT_EQ(FormatRowKey({"id"}, {"42"}), "id=42");
  EXPECT_EQ(FormatRowKey({"a", "b"}, {"1", "x"}), "(a, b)=(1, x)");
  EXPECT_EQ(FormatRowKey({"t"}, {"line\nbreak"}), "t=line\\nbreak");
  EXPECT_EQ(FormatRowKey({"t"}, {std::string(100, 'x')}),
            absl::StrCat("t=", std::string(37, 'x'), "..."));
}

}  // namespace
}  // namespace pghaul::controller
