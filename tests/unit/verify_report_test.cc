#include "controller/verify_report.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::controller {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

using Values = std::map<std::string, std::string>;

constexpr char kMd5A[] = "0cc175b9c0f1b6a831c399e269772661";
constexpr char kMd5B[] = "92eb5ffee6ae2fec3ad71c777531578f";

std::string Table(uint64_t rows, const std::string& md5, const std::string& persistence = "p",
                  const std::string& kind = "r") {
  return absl::StrCat("rows=", rows, " md5=", md5, " persistence=", persistence, " kind=", kind);
}

// A realistic pair of TABLE_CHECKSUMS results of identical clusters.
Values Identical() {
  return {
      {"shop/public.orders", Table(1000, kMd5A)},
      {"shop/public.customers", Table(20, kMd5B)},
      {"shop/public.order_totals", Table(12, kMd5A, "p", "m")},
      {"shop/large_objects", absl::StrCat("rows=2 md5=", kMd5B)},
      {"shop/sequence:public.orders_id_seq", "1000"},
      {"shop/sequence:public.unused_seq", ""},
      {"postgres/public.notes", Table(0, "d41d8cd98f00b204e9800998ecf8427e")},
  };
}

const v1::TableComparison* Find(const v1::VerifyReport& report, const std::string& table) {
  for (const v1::TableComparison& difference : report.differences()) {
    if (difference.table() == table) return &difference;
  }
  return nullptr;
}

TEST(CompareChecksumsTest, IdenticalClustersPass) {
  v1::VerifyReport report = CompareChecksums(Identical(), Identical());
  EXPECT_TRUE(report.passed());
  EXPECT_EQ(report.objects_compared(), 7u);
  EXPECT_EQ(report.objects_matching(), 7u);
  EXPECT_THAT(report.differences(), IsEmpty());
  EXPECT_EQ(SummarizeVerify(report), "7 objects match");
}

TEST(CompareChecksumsTest, ChangedRowIsAMismatchWithTheSameRowCount) {
  Values target = Identical();
  target["shop/public.orders"] = Table(1000, kMd5B);
  v1::VerifyReport report = CompareChecksums(Identical(), target);
  EXPECT_FALSE(report.passed());
  EXPECT_EQ(report.objects_matching(), 6u);
  ASSERT_EQ(report.differences_size(), 1);
  const v1::TableComparison& d = report.differences(0);
  EXPECT_EQ(d.table(), "shop/public.orders");
  EXPECT_EQ(d.status(), kObjectMismatch);
  EXPECT_EQ(d.source_rows(), 1000u);
  EXPECT_EQ(d.target_rows(), 1000u);
  EXPECT_EQ(d.detail(), "same row count (1000), different content");
}

TEST(CompareChecksumsTest, DeletedRowIsAMismatchNamingBothCounts) {
  Values target = Identical();
  target["shop/public.customers"] = Table(19, kMd5A);
  v1::VerifyReport report = CompareChecksums(Identical(), target);
  EXPECT_FALSE(report.passed());
  const v1::TableComparison* d = Find(report, "shop/public.customers");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->status(), kObjectMismatch);
  EXPECT_EQ(d->target_rows(), 19u);
  EXPECT_EQ(d->detail(), "20 rows on the source, 19 rows on the target");
}

TEST(CompareChecksumsTest, LargeObjectsAndMaterializedViewsAreCompared) {
  Values target = Identical();
  target["shop/large_objects"] = absl::StrCat("rows=1 md5=", kMd5A);
  target["shop/public.order_totals"] = Table(12, kMd5B, "p", "m");
  v1::VerifyReport report = CompareChecksums(Identical(), target);
  EXPECT_EQ(report.differences_size(), 2);
  EXPECT_EQ(Find(report, "shop/large_objects")->status(), kObjectMismatch);
  EXPECT_EQ(Find(report, "shop/public.order_totals")->status(), kObjectMismatch);
}

TEST(CompareChecksumsTest, EmptyUnloggedTableOnTheTargetIsExpected) {
  Values source = Identical();
  Values target = Identical();
  source["shop/public.sessions"] = Table(500, kMd5A, "u");
  target["shop/public.sessions"] = Table(0, "d41d8cd98f00b204e9800998ecf8427e", "u");
  v1::VerifyReport report = CompareChecksums(source, target);
  EXPECT_TRUE(report.passed());
  EXPECT_EQ(report.objects_compared(), 8u);
  EXPECT_EQ(report.objects_matching(), 7u);
  ASSERT_EQ(report.differences_size(), 1);
  EXPECT_EQ(report.differences(0).status(), kObjectExpectedEmpty);
  EXPECT_EQ(report.differences(0).source_rows(), 500u);
  EXPECT_EQ(report.differences(0).detail(),
            "unlogged: empty after a physical restore, as expected");
  EXPECT_EQ(SummarizeVerify(report), "7 objects match, 1 expected-empty");
}

TEST(CompareChecksumsTest, UnreadableUnloggedTableOnAStandbyTargetIsExpected) {
  // In recovery the agent cannot read an unlogged table: it reports no rows and no checksum.
  Values source = Identical();
  Values target = Identical();
  source["shop/public.sessions"] = Table(500, kMd5A, "u");
  target["shop/public.sessions"] = Table(0, "", "u");
  v1::VerifyReport report = CompareChecksums(source, target);
  EXPECT_TRUE(report.passed());
  ASSERT_EQ(report.differences_size(), 1);
  EXPECT_EQ(report.differences(0).status(), kObjectExpectedEmpty);
  EXPECT_THAT(report.differences(0).detail(), HasSubstr("not readable on a standby"));
}

TEST(CompareChecksumsTest, PersistentTableNotReadOnTheTargetIsAMismatch) {
  Values target = Identical();
  target["shop/public.orders"] = Table(1000, "");
  v1::VerifyReport report = CompareChecksums(Identical(), target);
  EXPECT_FALSE(report.passed());
  EXPECT_EQ(Find(report, "shop/public.orders")->status(), kObjectMismatch);
}

TEST(CompareChecksumsTest, UnloggedTableWithOtherRowsOnTheTargetIsAMismatch) {
  Values source = Identical();
  Values target = Identical();
  source["shop/public.sessions"] = Table(500, kMd5A, "u");
  target["shop/public.sessions"] = Table(3, kMd5B, "u");
  v1::VerifyReport report = CompareChecksums(source, target);
  EXPECT_FALSE(report.passed());
  EXPECT_EQ(Find(report, "shop/public.sessions")->status(), kObjectMismatch);
  EXPECT_THAT(Find(report, "shop/public.sessions")->detail(), HasSubstr("unlogged on the source"));
}

TEST(CompareChecksumsTest, UnloggedTableEqualOnBothSidesMatches) {
  Values source = Identical();
  source["shop/public.sessions"] = Table(0, kMd5A, "u");
  v1::VerifyReport report = CompareChecksums(source, source);
  EXPECT_EQ(report.objects_matching(), 8u);
  EXPECT_THAT(report.differences(), IsEmpty());
}

TEST(CompareChecksumsTest, ChangedPersistenceIsAMismatch) {
  Values target = Identical();
  target["shop/public.orders"] = Table(1000, kMd5A, "u");
  v1::VerifyReport report = CompareChecksums(Identical(), target);
  EXPECT_FALSE(report.passed());
  EXPECT_EQ(Find(report, "shop/public.orders")->detail(),
            "persistence p on the source, u on the target");
}

TEST(CompareChecksumsTest, TablesOnOneSideOnlyAreMissing) {
  Values source = Identical();
  Values target = Identical();
  source.erase("postgres/public.notes");
  target.erase("shop/public.orders");
  v1::VerifyReport report = CompareChecksums(source, target);
  EXPECT_FALSE(report.passed());
  EXPECT_EQ(report.objects_compared(), 7u);
  EXPECT_EQ(report.objects_matching(), 5u);
  ASSERT_EQ(report.differences_size(), 2);
  // In key order.
  EXPECT_EQ(report.differences(0).table(), "postgres/public.notes");
  EXPECT_EQ(report.differences(0).status(), kObjectMissingOnSource);
  EXPECT_EQ(report.differences(1).table(), "shop/public.orders");
  EXPECT_EQ(report.differences(1).status(), kObjectMissingOnTarget);
  EXPECT_EQ(report.differences(1).source_rows(), 1000u);
}

TEST(CompareChecksumsTest, SequenceAheadOnTheTargetMatchesAndBehindIsAMismatch) {
  Values target = Identical();
  target["shop/sequence:public.orders_id_seq"] = "1032";  // WAL logged 32 values ahead
  EXPECT_TRUE(CompareChecksums(Identical(), target).passed());

  target["shop/sequence:public.orders_id_seq"] = "999";
  v1::VerifyReport report = CompareChecksums(Identical(), target);
  EXPECT_FALSE(report.passed());
  const v1::TableComparison* d = Find(report, "shop/sequence:public.orders_id_seq");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->status(), kObjectMismatch);
  EXPECT_EQ(d->detail(), "last value 999 on the target is behind the source's 1000");
}

TEST(CompareChecksumsTest, SequenceCalledOnOneSideOnlyIsAMismatch) {
  Values target = Identical();
  target["shop/sequence:public.orders_id_seq"] = "";
  target["shop/sequence:public.unused_seq"] = "5";
  v1::VerifyReport report = CompareChecksums(Identical(), target);
  EXPECT_EQ(report.differences_size(), 2);
  EXPECT_THAT(Find(report, "shop/sequence:public.orders_id_seq")->detail(),
              HasSubstr("never called on the target"));
  EXPECT_THAT(Find(report, "shop/sequence:public.unused_seq")->detail(),
              HasSubstr("never called on the source"));
}

TEST(CompareChecksumsTest, SequenceValuesCompareAsSignedNumbers) {
  Values source = {{"db/sequence:public.s", "-5"}};
  EXPECT_TRUE(CompareChecksums(source, {{"db/sequence:public.s", "-3"}}).passed());
  EXPECT_FALSE(CompareChecksums(source, {{"db/sequence:public.s", "-7"}}).passed());
}

TEST(CompareChecksumsTest, UnreadableValuesAreMismatches) {
  Values source = {{"db/public.t", "rows=abc md5=x"},
                   {"db/sequence:public.s", "1.5"},
                   {"db/public.u", "md5=abc"}};
  v1::VerifyReport report = CompareChecksums(source, source);
  EXPECT_FALSE(report.passed());
  EXPECT_EQ(report.differences_size(), 3);
  for (const v1::TableComparison& d : report.differences()) {
    EXPECT_EQ(d.status(), kObjectMismatch);
    EXPECT_THAT(d.detail(), StartsWith("unreadable"));
  }
}

TEST(CompareChecksumsTest, NothingToCompareStillPasses) {
  v1::VerifyReport report = CompareChecksums({}, {});
  EXPECT_TRUE(report.passed());
  EXPECT_EQ(report.objects_compared(), 0u);
  EXPECT_EQ(SummarizeVerify(report), "0 objects match");
}

v1::TaskResult CheckTask(const std::string& rows, const std::string& digest,
                         const std::string& first) {
  v1::TaskResult result;
  result.set_state(v1::TaskResult::SUCCEEDED);
  (*result.mutable_values())["rows"] = rows;
  (*result.mutable_values())["digest"] = digest;
  (*result.mutable_values())["first"] = first;
  return result;
}

TEST(CompareApplicationCheckTest, SameDigestPasses) {
  v1::CheckResult check = CompareApplicationCheck("totals.sql", CheckTask("3", kMd5A, "42"),
                                                  CheckTask("3", kMd5A, "42"));
  EXPECT_EQ(check.name(), "totals.sql");
  EXPECT_EQ(check.status(), "pass");
  EXPECT_EQ(check.source(), absl::StrCat("rows=3 digest=", kMd5A, " first=42"));
  EXPECT_EQ(check.source(), check.target());
  EXPECT_THAT(check.fix(), IsEmpty());
}

TEST(CompareApplicationCheckTest, OtherDigestFailsWithBothResults) {
  v1::CheckResult check = CompareApplicationCheck("totals.sql", CheckTask("3", kMd5A, "42"),
                                                  CheckTask("2", kMd5B, "41"));
  EXPECT_EQ(check.status(), "fail");
  EXPECT_EQ(check.message(),
            "results differ: 3 rows on the source, 2 on the target; first value '42' on the "
            "source, '41' on the target");
  EXPECT_THAT(check.fix(), HasSubstr("ORDER BY"));
}

TEST(CompareApplicationCheckTest, FailedQueryFailsWithTheServersMessage) {
  v1::TaskResult failed;
  failed.set_state(v1::TaskResult::FAILED);
  failed.set_message("ERROR:  relation \"orders\" does not exist");
  v1::CheckResult check =
      CompareApplicationCheck("totals.sql", CheckTask("3", kMd5A, "42"), failed);
  EXPECT_EQ(check.status(), "fail");
  EXPECT_EQ(check.target(), "failed: ERROR:  relation \"orders\" does not exist");
  EXPECT_THAT(check.message(), HasSubstr("on the target: failed: ERROR:  relation"));
  EXPECT_THAT(check.message(), Not(HasSubstr("on the source")));

  v1::TaskResult refused;
  refused.set_state(v1::TaskResult::REFUSED);
  refused.set_message("sql is longer than 64 KiB");
  check = CompareApplicationCheck("big.sql", refused, refused);
  EXPECT_THAT(check.message(), HasSubstr("on the source: refused: sql is longer"));
  EXPECT_THAT(check.message(), HasSubstr("on the target: refused"));
}

TEST(CompareApplicationCheckTest, SuccessWithoutDigestFails) {
  v1::TaskResult empty;
  empty.set_state(v1::TaskResult::SUCCEEDED);
  v1::CheckResult check = CompareApplicationCheck("x.sql", empty, empty);
  EXPECT_EQ(check.status(), "fail");
  EXPECT_EQ(check.source(), "succeeded without a digest");
}

TEST(SummarizeVerifyTest, NamesAtMostFiveDifferencesThenCounts) {
  Values source;
  Values target;
  for (int i = 0; i < 8; ++i) {
    std::string key = absl::StrCat("db/public.t", i);
    source[key] = Table(10, kMd5A);
    target[key] = Table(10, i < 7 ? kMd5B : kMd5A);
  }
  source["db/public.sessions"] = Table(5, kMd5A, "u");
  target["db/public.sessions"] = Table(0, kMd5B, "u");
  v1::VerifyReport report = CompareChecksums(source, target);
  std::string summary = SummarizeVerify(report);
  EXPECT_THAT(summary, StartsWith("verify failed: 7 of 9 objects differ: db/public.t0: "
                                  "same row count (10), different content; db/public.t1"));
  EXPECT_THAT(summary, HasSubstr("db/public.t4: same row count"));
  EXPECT_THAT(summary, Not(HasSubstr("db/public.t5")));
  EXPECT_THAT(summary, HasSubstr("; and 2 more objects"));
  EXPECT_THAT(summary, Not(HasSubstr("sessions")));  // expected-empty is not a difference
}

TEST(SummarizeVerifyTest, ApplicationChecksAreCountedAndAFailureFailsTheReport) {
  v1::VerifyReport report = CompareChecksums(Identical(), Identical());
  AddApplicationCheck(
      CompareApplicationCheck("a.sql", CheckTask("1", kMd5A, "x"), CheckTask("1", kMd5A, "x")),
      &report);
  AddApplicationCheck(
      CompareApplicationCheck("b.sql", CheckTask("1", kMd5A, "x"), CheckTask("1", kMd5A, "x")),
      &report);
  EXPECT_TRUE(report.passed());
  EXPECT_EQ(SummarizeVerify(report), "7 objects match; 2 application checks pass");

  AddApplicationCheck(
      CompareApplicationCheck("totals.sql", CheckTask("1", kMd5A, "x"), CheckTask("1", kMd5B, "y")),
      &report);
  EXPECT_FALSE(report.passed());
  EXPECT_EQ(SummarizeVerify(report),
            "verify failed: 7 objects match; 1 of 3 application checks fail: totals.sql");
}

TEST(SummarizeVerifyTest, SingularsReadNaturally) {
  v1::VerifyReport report =
      CompareChecksums({{"db/public.t", Table(1, kMd5A)}}, {{"db/public.t", Table(1, kMd5A)}});
  AddApplicationCheck(
      CompareApplicationCheck("a.sql", CheckTask("1", kMd5A, "x"), CheckTask("1", kMd5A, "x")),
      &report);
  EXPECT_EQ(SummarizeVerify(report), "1 object matches; 1 application check passes");
  report = CompareChecksums({{"db/public.t", Table(1, kMd5A)}}, {});
  EXPECT_EQ(SummarizeVerify(report),
            "verify failed: 1 of 1 object differs: db/public.t missing on target");
}

TEST(CompareChecksumsTest, EveryObjectHasAKindAndTablesAndRowsAreCounted) {
  v1::VerifyReport report = CompareChecksums(Identical(), Identical());
  EXPECT_EQ(report.tables_compared(), 4u);
  EXPECT_EQ(report.rows_compared(), 1032u);
  Values target = Identical();
  target["shop/public.orders"] = Table(999, kMd5B);
  target["shop/large_objects"] = absl::StrCat("rows=1 md5=", kMd5A);
  target["shop/sequence:public.orders_id_seq"] = "1";
  report = CompareChecksums(Identical(), target);
  EXPECT_EQ(Find(report, "shop/public.orders")->kind(), "rows");
  EXPECT_EQ(Find(report, "shop/large_objects")->kind(), "large objects");
  EXPECT_EQ(Find(report, "shop/sequence:public.orders_id_seq")->kind(), "sequence value");
}

TEST(CompareChecksumsTest, SequenceFurtherAheadThanPostgresLogsIsAMismatchWhenTheSlackIsKnown) {
  const std::map<std::string, int64_t> slack = {{"shop/sequence:public.orders_id_seq", 33}};
  Values target = Identical();
  target["shop/sequence:public.orders_id_seq"] = "1033";
  EXPECT_TRUE(CompareChecksums(Identical(), target, slack).passed());
  target["shop/sequence:public.orders_id_seq"] = "5000";
  v1::VerifyReport report = CompareChecksums(Identical(), target, slack);
  EXPECT_FALSE(report.passed());
  EXPECT_THAT(Find(report, "shop/sequence:public.orders_id_seq")->detail(),
              HasSubstr("further ahead than the 33 values"));
  // Without the slack (an older agent's catalogue), any value ahead passes as before.
  EXPECT_TRUE(CompareChecksums(Identical(), target).passed());
}

TEST(AddSchemaDifferencesTest, SchemaDifferencesComeFirstAndFailTheReport) {
  v1::VerifyReport report = CompareChecksums(Identical(), Identical());
  v1::TableComparison index;
  index.set_table("shop/public.orders_pkey");
  index.set_kind("index");
  index.set_status(kObjectMissingOnTarget);
  AddSchemaDifferences({index}, 40, &report);
  EXPECT_FALSE(report.passed());
  EXPECT_EQ(report.objects_compared(), 47u);
  EXPECT_EQ(report.schema_objects_compared(), 40u);
  EXPECT_EQ(report.objects_matching(), 46u);
  ASSERT_EQ(report.differences_size(), 1);
  EXPECT_EQ(SummarizeVerify(report),
            "verify failed: 1 of 47 objects differs: index shop/public.orders_pkey missing on "
            "target");
}

TEST(DescribeDifferenceTest, NamesKindObjectAndLocatedRows) {
  v1::TableComparison column;
  column.set_table("app/public.orders.note");
  column.set_kind("column");
  column.set_status(kObjectMismatch);
  column.set_detail("type: text vs character varying(10)");
  EXPECT_EQ(DescribeDifference(column),
            "column app/public.orders.note: type: text vs character varying(10)");

  v1::TableComparison rows;
  rows.set_table("app/public.orders");
  rows.set_kind("rows");
  rows.set_status(kObjectMismatch);
  rows.set_detail("3 rows on the source, 2 on the target");
  v1::RowDifference* changed = rows.add_rows();
  changed->set_key("id=42");
  changed->set_change("changed");
  v1::RowDifference* missing = rows.add_rows();
  missing->set_key("id=77");
  missing->set_change(kObjectMissingOnTarget);
  rows.set_rows_differing(9);
  rows.set_locate("located");
  EXPECT_EQ(DescribeDifference(rows),
            "app/public.orders: 3 rows on the source, 2 on the target; rows differ at id=42 "
            "(changed), id=77 (missing on target) and 7 more");

  v1::TableComparison keyless = rows;
  keyless.clear_rows();
  keyless.set_rows_differing(0);
  keyless.set_locate("no primary key: cannot locate rows");
  EXPECT_THAT(DescribeDifference(keyless), HasSubstr("(no primary key: cannot locate rows)"));
}

}  // namespace
}  // namespace pghaul::controller
