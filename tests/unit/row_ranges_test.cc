// ROW_RANGES, ROW_DIGESTS and SCHEMA_CATALOG against a real PostgreSQL 15 (the integration
// fixture's PgCluster), on a primary and on its hot standby in recovery, and LocateRows driven
// through them end to end (two real servers, no controller).
#include "agent/row_ranges.h"

#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/schema_catalogue.h"
#include "agent/table_checksums.h"
#include "controller/schema_compare.h"
#include "controller/verify_phase.h"
#include "controller/verify_report.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/fixture/pg_cluster.h"
#include "tests/integration/fixture/temp_dir.h"
#include "tests/integration/fixture/wait_for.h"

namespace pghaul {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Key;
using ::testing::Not;
using Values = std::map<std::string, std::string>;

std::string Tool(const char* name) { return absl::StrCat(integration::kPostgresBinDir, "/", name); }

agent::PostgresConnection Connection(const integration::PgCluster& cluster) {
  agent::PostgresConnection conn;
  conn.socket_dir = cluster.socket_dir();
  conn.port = cluster.port();
  conn.user = "postgres";
  return conn;
}

// Reads ranges through the agent functions, as the controller would through tasks.
class DirectReader : public controller::RowRangeReader {
 public:
  DirectReader(agent::PostgresConnection source, agent::PostgresConnection target)
      : source_(std::move(source)), target_(std::move(target)) {}
  absl::StatusOr<controller::RangeAnswer> Ranges(Side side, const v1::RowRange& range) override {
    absl::StatusOr<Values> values =
        agent::ComputeRowRanges(side == Side::kSource ? source_ : target_, range);
    if (!values.ok()) return values.status();
    return controller::ParseRangeAnswer(*values);
  }
  absl::StatusOr<std::pair<controller::DigestAnswer, controller::DigestAnswer>> Digests(
      const v1::RowRange& range) override {
    absl::StatusOr<Values> s = agent::ComputeRowDigests(source_, range);
    if (!s.ok()) return s.status();
    absl::StatusOr<Values> t = agent::ComputeRowDigests(target_, range);
    if (!t.ok()) return t.status();
    absl::StatusOr<controller::DigestAnswer> ps = controller::ParseDigestAnswer(*s);
    if (!ps.ok()) return ps.status();
    absl::StatusOr<controller::DigestAnswer> pt = controller::ParseDigestAnswer(*t);
    if (!pt.ok()) return pt.status();
    return std::make_pair(*std::move(ps), *std::move(pt));
  }

 private:
  agent::PostgresConnection source_;
  agent::PostgresConnection target_;
};

class RowRangesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0 || access(Tool("initdb").c_str(), X_OK) != 0) {
      GTEST_SKIP() << "needs root and " << Tool("initdb") << " (package postgresql-15)";
    }
    absl::StatusOr<std::unique_ptr<integration::TempDir>> temp =
        integration::TempDir::Create("pghaul-row-ranges-test.");
    ASSERT_TRUE(temp.ok()) << temp.status();
    temp_ = *std::move(temp);
    integration::PgClusterOptions options;
    options.name = "primary";
    options.port = 5433;
    options.initdb_args = {"--encoding=UTF8", "--locale=C.UTF-8"};
    absl::StatusOr<std::unique_ptr<integration::PgCluster>> primary =
        integration::PgCluster::Create(temp_->path(), options);
    ASSERT_TRUE(primary.ok()) << primary.status();
    primary_ = *std::move(primary);
    ASSERT_TRUE(primary_->Start().ok());
    Sql("CREATE DATABASE app");
    Sql("CREATE TABLE orders (id int PRIMARY KEY, note text, amount numeric);"
        "INSERT INTO orders SELECT g, 'note ' || g, g * 1.5 FROM generate_series(1, 20000) g;"
        "CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (a, b));"
        "INSERT INTO pairs SELECT g / 10, 'k' || (g % 10), g FROM generate_series(0, 4999) g;"
        "CREATE TABLE keyless (v int);"
        "INSERT INTO keyless SELECT generate_series(1, 10);"
        "CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY);"
        "CREATE SEQUENCE counter CACHE 5;"
        "CREATE INDEX orders_note ON orders (note);"
        "CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 100;"
        "CREATE FUNCTION total() RETURNS numeric LANGUAGE sql AS 'SELECT sum(amount) FROM orders';"
        "CREATE ROLE readers; CREATE ROLE alice LOGIN IN ROLE readers;",
        "app");
  }

  void TearDown() override {
    standby_.reset();
    copy_.reset();
    primary_.reset();
    temp_.reset();
  }

  std::string Sql(const std::string& sql, const std::string& database = "postgres",
                  integration::PgCluster* cluster = nullptr) {
    absl::StatusOr<std::string> out = (cluster ? cluster : primary_.get())->Query(sql, database);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.value_or("");
  }

  // A second, writable copy of the primary (a standby, promoted): a "restored target".
  void MakeCopy() {
    integration::PgClusterOptions options;
    options.name = "copy";
    options.port = 5434;
    absl::StatusOr<std::unique_ptr<integration::PgCluster>> copy =
        integration::PgCluster::CreateStandby(temp_->path(), options, *primary_);
    ASSERT_TRUE(copy.ok()) << copy.status();
    copy_ = *std::move(copy);
    ASSERT_TRUE(copy_->Start().ok());
    Sql("SELECT pg_promote(true, 60)", "postgres", copy_.get());
  }

  void MakeStandby() {
    integration::PgClusterOptions options;
    options.name = "standby";
    options.port = 5435;
    absl::StatusOr<std::unique_ptr<integration::PgCluster>> standby =
        integration::PgCluster::CreateStandby(temp_->path(), options, *primary_);
    ASSERT_TRUE(standby.ok()) << standby.status();
    standby_ = *std::move(standby);
    ASSERT_TRUE(standby_->Start().ok());
    ASSERT_EQ(Sql("SELECT pg_is_in_recovery()", "postgres", standby_.get()), "t");
  }

  static v1::RowRange Range(const std::string& table) {
    v1::RowRange range;
    range.set_database("app");
    range.set_schema("public");
    range.set_table(table);
    return range;
  }

  std::unique_ptr<integration::TempDir> temp_;
  std::unique_ptr<integration::PgCluster> primary_;
  std::unique_ptr<integration::PgCluster> copy_;
  std::unique_ptr<integration::PgCluster> standby_;
};

TEST_F(RowRangesTest, SplitGivesEqualBucketsAndTheirBoundariesGiveTheSameAnswerBack) {
  v1::RowRange range = Range("orders");
  range.set_buckets(4);
  absl::StatusOr<Values> split = agent::ComputeRowRanges(Connection(*primary_), range);
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_EQ(split->at("key_columns"), "id");
  EXPECT_EQ(split->at("buckets"), "4");
  EXPECT_THAT(split->at("bucket:0000"), HasSubstr("rows=5000 md5="));
  EXPECT_EQ(split->at("bucket:0000:last"), "5000");
  EXPECT_EQ(split->at("bucket:0002:last"), "15000");

  v1::RowRange follow = Range("orders");
  for (const char* last : {"5000", "10000", "15000"}) follow.add_boundaries()->add_columns(last);
  absl::StatusOr<Values> followed = agent::ComputeRowRanges(Connection(*primary_), follow);
  ASSERT_TRUE(followed.ok()) << followed.status();
  for (const char* bucket : {"bucket:0000", "bucket:0001", "bucket:0002", "bucket:0003"}) {
    EXPECT_EQ(followed->at(bucket), split->at(bucket)) << bucket;
  }
}

TEST_F(RowRangesTest, DigestsOfARangeOfACompositeKeyAreInKeyOrder) {
  v1::RowRange range = Range("pairs");
  range.mutable_lower()->add_columns("3");
  range.mutable_lower()->add_columns("k8");
  range.mutable_upper()->add_columns("4");
  range.mutable_upper()->add_columns("k1");
  absl::StatusOr<Values> digests = agent::ComputeRowDigests(Connection(*primary_), range);
  ASSERT_TRUE(digests.ok()) << digests.status();
  EXPECT_EQ(digests->at("key_columns"), "a\tb");
  EXPECT_EQ(digests->at("rows"), "3");  // (3,k9) (4,k0) (4,k1)
  EXPECT_THAT(digests->at("row:000000"), testing::EndsWith("\t3\tk9"));
  EXPECT_THAT(digests->at("row:000002"), testing::EndsWith("\t4\tk1"));
  const std::string md5 =
      Sql("SELECT md5(ROW(p.*)::text) FROM pairs p WHERE a = 4 AND b = 'k0'", "app");
  EXPECT_EQ(digests->at("row:000001"), absl::StrCat(md5, "\t4\tk0"));
}

TEST_F(RowRangesTest, UnknownNamesAndKeylessTablesAreRefusedOrSaidSo) {
  v1::RowRange range = Range("orders");
  range.set_database("nope");
  EXPECT_EQ(agent::ComputeRowRanges(Connection(*primary_), range).status().code(),
            absl::StatusCode::kNotFound);
  range = Range("orders; DROP TABLE orders");
  EXPECT_EQ(agent::ComputeRowDigests(Connection(*primary_), range).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Sql("SELECT count(*) FROM orders", "app"), "20000");
  range = Range("orders");
  range.mutable_lower()->add_columns("1");
  range.mutable_lower()->add_columns("2");
  EXPECT_EQ(agent::ComputeRowDigests(Connection(*primary_), range).status().code(),
            absl::StatusCode::kInvalidArgument);
  range = Range("orders");
  range.mutable_lower()->add_columns("1'); DROP TABLE orders; --");
  EXPECT_FALSE(agent::ComputeRowDigests(Connection(*primary_), range).ok());
  EXPECT_EQ(Sql("SELECT count(*) FROM orders", "app"), "20000");
  absl::StatusOr<Values> keyless = agent::ComputeRowRanges(Connection(*primary_), Range("keyless"));
  ASSERT_TRUE(keyless.ok()) << keyless.status();
  EXPECT_EQ(keyless->at("no_primary_key"), "true");
}

TEST_F(RowRangesTest, WorkOnAHotStandbyInRecoveryButNotOnItsUnloggedTables) {
  MakeStandby();
  ASSERT_TRUE(integration::WaitFor("the standby to replay", absl::Seconds(30), [&] {
                absl::StatusOr<std::string> n =
                    standby_->Query("SELECT count(*) FROM orders", "app");
                return n.ok() && *n == "20000";
              }).ok());
  absl::StatusOr<Values> split = agent::ComputeRowRanges(Connection(*standby_), Range("orders"));
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_EQ(split->at("buckets"), "16");
  absl::StatusOr<Values> catalogue = agent::ComputeSchemaCatalogue(Connection(*standby_));
  ASSERT_TRUE(catalogue.ok()) << catalogue.status();
  absl::StatusOr<Values> primary_catalogue = agent::ComputeSchemaCatalogue(Connection(*primary_));
  ASSERT_TRUE(primary_catalogue.ok()) << primary_catalogue.status();
  EXPECT_EQ(*catalogue, *primary_catalogue);
  absl::StatusOr<Values> sums = agent::ComputeTableChecksums(Connection(*standby_));
  ASSERT_TRUE(sums.ok()) << sums.status();
  EXPECT_THAT(sums->at("app/public.orders"), HasSubstr("rows=20000"));
  EXPECT_EQ(agent::ComputeRowRanges(Connection(*standby_), Range("scratch")).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(RowRangesTest, SchemaCatalogueListsEveryKindOfObject) {
  absl::StatusOr<Values> catalogue = agent::ComputeSchemaCatalogue(Connection(*primary_));
  ASSERT_TRUE(catalogue.ok()) << catalogue.status();
  for (const char* key :
       {"cluster/database:app", "cluster/role:alice", "cluster/membership:alice in readers",
        "app/schema:public", "app/table:public.orders", "app/column:public.orders.note",
        "app/index:public.orders_pkey", "app/index:public.orders_note",
        "app/constraint:public.orders.orders_pkey", "app/sequence:public.counter",
        "app/view:public.big_orders", "app/function:public.total()", "app/extension:plpgsql",
        "app/column:public.big_orders.amount"}) {
    EXPECT_THAT(*catalogue, Contains(Key(key))) << key;
  }
  EXPECT_THAT(catalogue->at("app/column:public.orders.note"), HasSubstr("type=text\t"));
  EXPECT_THAT(catalogue->at("app/sequence:public.counter"), HasSubstr("cache=5"));
  EXPECT_THAT(*catalogue, Not(Contains(Key("app/table:pg_catalog.pg_class"))));
}

// The corruptions, on a writable copy, found by the same comparisons the verify phase
// makes, and the changed rows located by key.
TEST_F(RowRangesTest, CorruptedCopyIsFoundObjectByObjectAndRowsAreLocated) {
  MakeCopy();
  ASSERT_TRUE(integration::WaitFor("the copy to be promoted", absl::Seconds(30), [&] {
                absl::StatusOr<std::string> r = copy_->Query("SELECT pg_is_in_recovery()");
                return r.ok() && *r == "f";
              }).ok());
  Sql("UPDATE orders SET note = 'tampered' WHERE id = 4242;"
      "DELETE FROM orders WHERE id = 17077;"
      "UPDATE pairs SET v = -1 WHERE a = 77 AND b = 'k3';"
      "SELECT setval('counter', 500000);"
      "DROP INDEX orders_note;"
      "ALTER TABLE keyless ADD COLUMN extra int;"
      "UPDATE keyless SET v = 0 WHERE v = 3;",
      "app", copy_.get());
  absl::StatusOr<Values> source_schema = agent::ComputeSchemaCatalogue(Connection(*primary_));
  absl::StatusOr<Values> target_schema = agent::ComputeSchemaCatalogue(Connection(*copy_));
  absl::StatusOr<Values> source = agent::ComputeTableChecksums(Connection(*primary_));
  absl::StatusOr<Values> target = agent::ComputeTableChecksums(Connection(*copy_));
  ASSERT_TRUE(source_schema.ok() && target_schema.ok() && source.ok() && target.ok());

  v1::VerifyReport report =
      controller::CompareChecksums(*source, *target, controller::SequenceSlack(*source_schema));
  uint32_t compared = 0;
  std::vector<v1::TableComparison> schema =
      controller::CompareSchema(*source_schema, *target_schema, &compared);
  controller::AddSchemaDifferences(schema, compared, &report);
  EXPECT_FALSE(report.passed());
  std::map<std::string, const v1::TableComparison*> by_name;
  for (const v1::TableComparison& d : report.differences()) {
    by_name[absl::StrCat(d.kind(), " ", d.table())] = &d;
  }
  ASSERT_THAT(by_name, Contains(Key("index app/public.orders_note")));
  EXPECT_EQ(by_name["index app/public.orders_note"]->status(), controller::kObjectMissingOnTarget);
  ASSERT_THAT(by_name, Contains(Key("column app/public.keyless.extra")));
  EXPECT_EQ(by_name["column app/public.keyless.extra"]->status(),
            controller::kObjectMissingOnSource);
  ASSERT_THAT(by_name, Contains(Key("sequence value app/sequence:public.counter")));
  ASSERT_THAT(by_name, Contains(Key("rows app/public.orders")));
  ASSERT_THAT(by_name, Contains(Key("rows app/public.pairs")));

  DirectReader reader(Connection(*primary_), Connection(*copy_));
  v1::TableComparison orders = *by_name["rows app/public.orders"];
  controller::LocateOptions options;
  ASSERT_TRUE(controller::LocateRows(reader, Range("orders"), orders.source_rows(),
                                     orders.target_rows(), options, &orders)
                  .ok());
  EXPECT_EQ(orders.locate(), "located");
  ASSERT_EQ(orders.rows_size(), 2);
  EXPECT_EQ(orders.rows(0).key(), "id=4242");
  EXPECT_EQ(orders.rows(0).change(), "changed");
  EXPECT_EQ(orders.rows(1).key(), "id=17077");
  EXPECT_EQ(orders.rows(1).change(), controller::kObjectMissingOnTarget);

  v1::TableComparison pairs = *by_name["rows app/public.pairs"];
  ASSERT_TRUE(controller::LocateRows(reader, Range("pairs"), pairs.source_rows(),
                                     pairs.target_rows(), options, &pairs)
                  .ok());
  ASSERT_EQ(pairs.rows_size(), 1);
  EXPECT_EQ(pairs.rows(0).key(), "(a, b)=(77, k3)");

  v1::TableComparison keyless = *by_name["rows app/public.keyless"];
  ASSERT_TRUE(controller::LocateRows(reader, Range("keyless"), keyless.source_rows(),
                                     keyless.target_rows(), options, &keyless)
                  .ok());
  EXPECT_EQ(keyless.locate(), "no primary key: cannot locate rows");
}

}  // namespace
}  // namespace pghaul
