// TABLE_CHECKSUMS against a real PostgreSQL 15 (the integration fixture's PgCluster): what is
// read, how it is hashed (md5 of the row count and PostgreSQL's own sum of hashtextextended), a hot
// standby's unlogged tables, a reader that is not a superuser, and cancel.
#include "agent/table_checksums.h"

#include <unistd.h>

#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/md5.h"
#include "agent/pg_connection.h"
#include "agent/query_canceller.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/fixture/command.h"
#include "tests/integration/fixture/pg_cluster.h"
#include "tests/integration/fixture/temp_dir.h"
#include "tests/integration/fixture/wait_for.h"

namespace pghaul::agent {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Key;
using ::testing::MatchesRegex;
using ::testing::Not;
using Values = std::map<std::string, std::string>;

constexpr char kEmptyMd5[] = "d41d8cd98f00b204e9800998ecf8427e";

std::string Tool(const char* name) { return absl::StrCat(integration::kPostgresBinDir, "/", name); }

class TableChecksumsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0 || access(Tool("initdb").c_str(), X_OK) != 0) {
      GTEST_SKIP() << "needs root and " << Tool("initdb") << " (package postgresql-15)";
    }
    absl::StatusOr<std::unique_ptr<integration::TempDir>> temp =
        integration::TempDir::Create("pghaul-checksums-test.");
    ASSERT_TRUE(temp.ok()) << temp.status();
    temp_ = *std::move(temp);
    absl::StatusOr<std::unique_ptr<integration::PgCluster>> primary =
        integration::PgCluster::Create(temp_->path(), Options("primary"));
    ASSERT_TRUE(primary.ok()) << primary.status();
    primary_ = *std::move(primary);
    absl::Status started = primary_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  void TearDown() override {
    standby_.reset();
    primary_.reset();
    temp_.reset();
  }

  static integration::PgClusterOptions Options(const std::string& name) {
    integration::PgClusterOptions options;
    options.name = name;
    options.initdb_args = {"--encoding=UTF8", "--locale=C.UTF-8"};
    return options;
  }

  static PostgresConnection Connection(const integration::PgCluster& cluster,
                                       const std::string& user = "postgres") {
    PostgresConnection conn;
    conn.socket_dir = cluster.socket_dir();
    conn.port = cluster.port();
    conn.user = user;
    return conn;
  }

  // Runs the test's own SQL (psql, as postgres) on the primary; fails the test on error.
  std::string Sql(const std::string& sql, const std::string& database = "postgres") {
    absl::StatusOr<std::string> out = primary_->Query(sql, database);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.value_or("");
  }

  absl::StatusOr<Values> Checksums(const integration::PgCluster& cluster,
                                   const std::string& user = "postgres") {
    return ComputeTableChecksums(Connection(cluster, user));
  }

  static uint64_t Rows(const std::string& value) {
    uint64_t rows = 0;
    size_t at = value.find("rows=");
    if (at == std::string::npos) return ~uint64_t{0};
    std::string digits = value.substr(at + 5, value.find(' ', at) - at - 5);
    if (!absl::SimpleAtoi(digits, &rows)) return ~uint64_t{0};
    return rows;
  }

  static std::string Md5Of(const std::string& value) {
    size_t at = value.find("md5=");
    if (at == std::string::npos) return "?";
    return value.substr(at + 4, value.find(' ', at) - at - 4);
  }

  std::unique_ptr<integration::TempDir> temp_;
  std::unique_ptr<integration::PgCluster> primary_;
  std::unique_ptr<integration::PgCluster> standby_;
};

TEST_F(TableChecksumsTest, Md5IsOfTheRowCountAndPostgresSumOfRowHashes) {
  Sql("CREATE SCHEMA app; CREATE TABLE app.items (id int, label text, price numeric, "
      "seen timestamptz, ratio float8, blob bytea, doc jsonb, tags text[], span interval)");
  Sql("INSERT INTO app.items SELECT i, CASE WHEN i % 7 = 0 THEN NULL ELSE "
      "'it''s' || chr(9) || i || E'\\n\\\\' END, i * 1.5, "
      "timestamptz '2024-02-29 12:00:00+02' + i * interval '1 hour', 1.0 / i, "
      "decode(lpad(to_hex(i), 8, '0'), 'hex'), jsonb_build_object('i', i), ARRAY['a', i::text], "
      "i * interval '90 minutes' FROM generate_series(1, 2000) AS i");
  Sql("INSERT INTO app.items SELECT * FROM app.items WHERE id <= 10");  // duplicate rows
  Sql("CREATE TABLE app.empty (i int)");

  absl::StatusOr<Values> values = Checksums(*primary_);
  ASSERT_TRUE(values.ok()) << values.status();
  // The same settings the agent fixes, then PostgreSQL's own definition of the checksum.
  const std::string expected =
      Sql("SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; "
          "SET extra_float_digits = 1; SET bytea_output = 'hex'; "
          "SELECT md5(count(*) || ':' || coalesce(sum(hashtextextended(t::text, 0)), 0)) "
          "FROM app.items AS t");
  ASSERT_THAT(expected, MatchesRegex("[0-9a-f]{32}"));
  EXPECT_EQ(values->at("postgres/app.items"),
            absl::StrCat("rows=2010 md5=", expected, " persistence=p kind=r"));
  EXPECT_EQ(values->at("postgres/app.empty"),
            absl::StrCat("rows=0 md5=", Md5::Hex("0:0"), " persistence=p kind=r"));
  // Order-independent: the same rows in another physical order give the same value.
  Sql("CREATE TABLE app.shuffled AS SELECT * FROM app.items ORDER BY random()");
  Sql("ALTER TABLE app.items RENAME TO items_before; ALTER TABLE app.shuffled RENAME TO items");
  absl::StatusOr<Values> again = Checksums(*primary_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->at("postgres/app.items"), values->at("postgres/app.items"));
}

TEST_F(TableChecksumsTest, TablesOfExactlyHashedTypesHashEachColumnByItsType) {
  Sql("CREATE TABLE typed (id int8, small int2, n int4, flag bool, name text, code char(6), "
      "label varchar(20), day date, at timestamptz, key uuid, blob bytea)");
  Sql("INSERT INTO typed SELECT i, i % 100, i * 7, i % 2 = 0, CASE WHEN i % 5 = 0 THEN NULL "
      "ELSE 'row ' || i END, 'c' || i % 9, 'l' || i, date '2024-02-29' + i, "
      "timestamptz '2024-02-29 12:00:00+02' + i * interval '1 minute', "
      "md5(i::text)::uuid, decode(md5(i::text), 'hex') FROM generate_series(1, 3000) AS i");
  absl::StatusOr<Values> values = Checksums(*primary_);
  ASSERT_TRUE(values.ok()) << values.status();
  const std::string expected = Sql(
      "SELECT md5(count(*) || ':' || coalesce(sum(hash_record_extended(ROW(t.*), 0)), 0)) "
      "FROM typed AS t");
  ASSERT_THAT(expected, MatchesRegex("[0-9a-f]{32}"));
  EXPECT_EQ(values->at("postgres/public.typed"),
            absl::StrCat("rows=3000 md5=", expected, " persistence=p kind=r"));
  Sql("UPDATE typed SET code = 'c9' WHERE id = 17");
  absl::StatusOr<Values> changed = Checksums(*primary_);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_NE(changed->at("postgres/public.typed"), values->at("postgres/public.typed"));
}

TEST_F(TableChecksumsTest, TablesOfCommonTypesHashEachColumnSeededWithItsNumber) {
  Sql("CREATE TABLE plain (id int8, small int2, n int4, flag bool, note text, code char(6), "
      "label varchar(20), at timestamptz, local timestamp, t time, key uuid, nm name, o oid)");
  Sql("INSERT INTO plain SELECT i, i % 100, i * 7, i % 2 = 0, CASE WHEN i % 5 = 0 THEN NULL "
      "ELSE 'row ' || i END, 'c' || i % 9, 'l' || i, "
      "timestamptz '2024-02-29 12:00:00+02' + i * interval '1 minute', "
      "timestamp '2024-02-29 12:00:00' + i * interval '1 second', time '10:00' + i * "
      "interval '1 second', md5(i::text)::uuid, 'n' || i, i FROM generate_series(1, 3000) AS i");
  absl::StatusOr<Values> values = Checksums(*primary_);
  ASSERT_TRUE(values.ok()) << values.status();
  // The definition, written out (the agent's session is in UTC, like this one).
  const std::string expected = Sql(
      "SET TimeZone = 'UTC'; SELECT md5(count(*) || ':' || coalesce(sum("
      "coalesce(hashint8extended(id, 1), hashint4extended(1, 0)) # "
      "coalesce(hashint2extended(small, 2), hashint4extended(2, 0)) # "
      "coalesce(hashint4extended(n, 3), hashint4extended(3, 0)) # "
      "coalesce(hashint4extended(flag::int4, 4), hashint4extended(4, 0)) # "
      "coalesce(hashtextextended(note, 5), hashint4extended(5, 0)) # "
      "coalesce(hashbpcharextended(code, 6), hashint4extended(6, 0)) # "
      "coalesce(hashtextextended(label::text, 7), hashint4extended(7, 0)) # "
      "coalesce(timestamp_hash_extended(at::timestamp, 8), hashint4extended(8, 0)) # "
      "coalesce(timestamp_hash_extended(local, 9), hashint4extended(9, 0)) # "
      "coalesce(time_hash_extended(t, 10), hashint4extended(10, 0)) # "
      "coalesce(uuid_hash_extended(key, 11), hashint4extended(11, 0)) # "
      "coalesce(hashnameextended(nm, 12), hashint4extended(12, 0)) # "
      "coalesce(hashoidextended(o, 13), hashint4extended(13, 0))), 0)) FROM plain");
  ASSERT_THAT(expected, MatchesRegex("[0-9a-f]{32}"));
  EXPECT_EQ(values->at("postgres/public.plain"),
            absl::StrCat("rows=3000 md5=", expected, " persistence=p kind=r"));

  // Swapped values, or a NULL moved to another column, change the sum.
  Sql("CREATE TABLE pairs (a int, b int, c text)");
  Sql("INSERT INTO pairs VALUES (1, 2, NULL), (3, NULL, 'x')");
  absl::StatusOr<Values> before = Checksums(*primary_);
  ASSERT_TRUE(before.ok()) << before.status();
  Sql("UPDATE pairs SET a = 2, b = 1 WHERE a = 1");
  absl::StatusOr<Values> swapped = Checksums(*primary_);
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  EXPECT_NE(swapped->at("postgres/public.pairs"), before->at("postgres/public.pairs"));
  Sql("UPDATE pairs SET a = 1, b = 2 WHERE a = 2");
  Sql("UPDATE pairs SET b = 0, c = NULL WHERE a = 3");  // NULL moves from b to c
  Sql("UPDATE pairs SET b = NULL, c = 'x' WHERE a = 3");
  absl::StatusOr<Values> back = Checksums(*primary_);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->at("postgres/public.pairs"), before->at("postgres/public.pairs"));
  Sql("UPDATE pairs SET b = 3, c = NULL WHERE a = 3");
  absl::StatusOr<Values> moved = Checksums(*primary_);
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_NE(moved->at("postgres/public.pairs"), before->at("postgres/public.pairs"));
  // A column added with only NULLs changes every row's hash too.
  Sql("UPDATE pairs SET b = NULL, c = 'x' WHERE a = 3; ALTER TABLE pairs ADD COLUMN d int");
  absl::StatusOr<Values> added = Checksums(*primary_);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_NE(added->at("postgres/public.pairs"), before->at("postgres/public.pairs"));
}

// What a type's own hash would call equal but prints differently still differs: such tables
// hash their rows' text.
TEST_F(TableChecksumsTest, ValuesThatOnlyPrintDifferentlyStillDiffer) {
  Sql("CREATE TABLE amounts (id int, amount numeric)");
  Sql("INSERT INTO amounts VALUES (1, 1.0)");
  Sql("CREATE COLLATION nocase (provider = icu, locale = 'und-u-ks-level2', "
      "deterministic = false)");
  Sql("CREATE TABLE names (id int, name text COLLATE nocase)");
  Sql("INSERT INTO names VALUES (1, 'Alice')");
  absl::StatusOr<Values> before = Checksums(*primary_);
  ASSERT_TRUE(before.ok()) << before.status();
  Sql("UPDATE amounts SET amount = 1.00");  // = 1.0 for numeric's equality and hash
  Sql("UPDATE names SET name = 'ALICE'");   // = 'Alice' for the collation
  absl::StatusOr<Values> after = Checksums(*primary_);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_NE(after->at("postgres/public.amounts"), before->at("postgres/public.amounts"));
  EXPECT_NE(after->at("postgres/public.names"), before->at("postgres/public.names"));
}

TEST_F(TableChecksumsTest, ChangedRowGivesADifferentMd5AndTheSameRowCount) {
  Sql("CREATE TABLE a AS SELECT i, 'value ' || i AS v FROM generate_series(1, 500) AS i");
  Sql("CREATE TABLE b AS SELECT i FROM generate_series(1, 10) AS i");
  absl::StatusOr<Values> before = Checksums(*primary_);
  ASSERT_TRUE(before.ok()) << before.status();

  Sql("UPDATE a SET v = 'changed' WHERE i = 250");
  absl::StatusOr<Values> after = Checksums(*primary_);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(Rows(after->at("postgres/public.a")), 500u);
  EXPECT_NE(Md5Of(after->at("postgres/public.a")), Md5Of(before->at("postgres/public.a")));
  EXPECT_EQ(after->at("postgres/public.b"), before->at("postgres/public.b"));

  // Row order on disk does not matter: the same contents give the same checksum.
  Sql("UPDATE a SET v = 'value 250' WHERE i = 250");
  Sql("CREATE TABLE reversed AS SELECT * FROM a ORDER BY i DESC; DROP TABLE a; "
      "ALTER TABLE reversed RENAME TO a");
  absl::StatusOr<Values> again = Checksums(*primary_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->at("postgres/public.a"), before->at("postgres/public.a"));
}

TEST_F(TableChecksumsTest, ReportsLeavesViewsLargeObjectsSequencesAndEveryDatabase) {
  Sql("CREATE TABLE measurements (at date, value int) PARTITION BY RANGE (at)");
  Sql("CREATE TABLE m_2023 PARTITION OF measurements FOR VALUES FROM ('2023-01-01') TO "
      "('2024-01-01')");
  Sql("CREATE TABLE m_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO "
      "('2025-01-01')");
  Sql("INSERT INTO measurements VALUES ('2023-05-01', 1), ('2024-05-01', 2), ('2024-06-01', 3)");
  Sql("CREATE MATERIALIZED VIEW totals AS SELECT sum(value) AS total FROM measurements");
  Sql("CREATE MATERIALIZED VIEW never_filled AS SELECT 1 AS one WITH NO DATA");
  Sql("CREATE UNLOGGED TABLE scratch AS SELECT generate_series(1, 3) AS i");
  Sql("CREATE SCHEMA \"Odd Schema\"; CREATE TABLE \"Odd Schema\".\"we\"\"ird\" (\"r\" int)");
  Sql("INSERT INTO \"Odd Schema\".\"we\"\"ird\" VALUES (7)");
  const std::string oid = Sql("SELECT lo_from_bytea(0, 'hello')");
  Sql("CREATE SEQUENCE used; SELECT nextval('used'), nextval('used'); CREATE SEQUENCE unused");
  Sql("CREATE DATABASE second");
  Sql("CREATE TABLE other AS SELECT 1 AS x", "second");

  // A temporary table of a session that stays open while the checksums are read.
  absl::StatusOr<PgConnection> session = PgConnection::Open(Connection(*primary_));
  ASSERT_TRUE(session.ok()) << session.status();
  ASSERT_TRUE(session->Execute("CREATE TEMPORARY TABLE temporary_rows AS SELECT 1 AS i").ok());

  absl::StatusOr<Values> values = Checksums(*primary_);
  ASSERT_TRUE(values.ok()) << values.status();

  EXPECT_THAT(values->at("postgres/public.m_2023"),
              MatchesRegex("rows=1 md5=[0-9a-f]{32} persistence=p kind=r"));
  EXPECT_EQ(Rows(values->at("postgres/public.m_2024")), 2u);
  EXPECT_THAT(*values, Not(Contains(Key("postgres/public.measurements"))));
  EXPECT_THAT(values->at("postgres/public.totals"),
              MatchesRegex("rows=1 md5=[0-9a-f]{32} persistence=p kind=m"));
  EXPECT_EQ(values->at("postgres/public.never_filled"), "rows=0 md5= persistence=p kind=m");
  // On a primary, unlogged tables are read like any other.
  EXPECT_THAT(values->at("postgres/public.scratch"),
              MatchesRegex("rows=3 md5=[0-9a-f]{32} persistence=u kind=r"));
  EXPECT_EQ(Rows(values->at("postgres/Odd Schema.we\"ird")), 1u);
  EXPECT_EQ(values->at("postgres/large_objects"),
            absl::StrCat("rows=1 md5=", Md5::Hex(absl::StrCat(oid, ":", Md5::Hex("hello"), "\n"))));
  EXPECT_EQ(values->at("postgres/sequence:public.used"), "2");
  EXPECT_EQ(values->at("postgres/sequence:public.unused"), "");
  EXPECT_EQ(Rows(values->at("second/public.other")), 1u);
  EXPECT_EQ(values->at("second/large_objects"), absl::StrCat("rows=0 md5=", kEmptyMd5));
  for (const auto& [key, value] : *values) {
    EXPECT_FALSE(absl::StartsWith(key, "template0/") || absl::StartsWith(key, "template1/")) << key;
    EXPECT_THAT(key, Not(HasSubstr("pg_catalog"))) << key;
    EXPECT_THAT(key, Not(HasSubstr("information_schema"))) << key;
    EXPECT_THAT(key, Not(HasSubstr("temporary_rows"))) << key;
  }
  // Only what was asked for: two databases, each with its large objects.
  std::vector<std::string> keys;
  for (const auto& [key, value] : *values) keys.push_back(key);
  EXPECT_THAT(
      keys,
      ::testing::UnorderedElementsAre(
          "postgres/public.m_2023", "postgres/public.m_2024", "postgres/public.totals",
          "postgres/public.never_filled", "postgres/public.scratch", "postgres/Odd Schema.we\"ird",
          "postgres/large_objects", "postgres/sequence:public.used",
          "postgres/sequence:public.unused", "second/public.other", "second/large_objects"));
}

TEST_F(TableChecksumsTest, HotStandbyReportsUnloggedTablesWithoutReadingThemAndMatchesThePrimary) {
  Sql("CREATE TABLE kept AS SELECT i, md5(i::text) AS v FROM generate_series(1, 1000) AS i");
  Sql("CREATE UNLOGGED TABLE lost AS SELECT generate_series(1, 100) AS i");
  Sql("CREATE SEQUENCE counter; SELECT nextval('counter')");
  Sql("CREATE UNLOGGED SEQUENCE scratch_counter; SELECT nextval('scratch_counter')");
  absl::StatusOr<std::unique_ptr<integration::PgCluster>> standby =
      integration::PgCluster::CreateStandby(temp_->path(), Options("standby"), *primary_);
  ASSERT_TRUE(standby.ok()) << standby.status();
  standby_ = *std::move(standby);
  absl::Status started = standby_->Start();
  ASSERT_TRUE(started.ok()) << started;
  Sql("INSERT INTO kept VALUES (1001, 'after the copy')");
  const std::string primary_lsn = Sql("SELECT pg_current_wal_lsn()");
  absl::Status caught_up = integration::WaitFor("the standby to replay", absl::Seconds(60), [&] {
    absl::StatusOr<std::string> replayed = standby_->Query(
        absl::StrCat("SELECT pg_last_wal_replay_lsn() >= '", primary_lsn, "'::pg_lsn"));
    return replayed.ok() && *replayed == "t";
  });
  ASSERT_TRUE(caught_up.ok()) << caught_up;

  absl::StatusOr<Values> on_primary = Checksums(*primary_);
  ASSERT_TRUE(on_primary.ok()) << on_primary.status();
  absl::StatusOr<Values> on_standby = Checksums(*standby_);
  ASSERT_TRUE(on_standby.ok()) << on_standby.status();

  EXPECT_EQ(on_standby->at("postgres/public.lost"), "rows=0 md5= persistence=u kind=r");
  EXPECT_EQ(Rows(on_primary->at("postgres/public.lost")), 100u);
  EXPECT_EQ(on_standby->at("postgres/public.kept"), on_primary->at("postgres/public.kept"));
  EXPECT_EQ(Rows(on_standby->at("postgres/public.kept")), 1001u);
  EXPECT_EQ(on_standby->at("postgres/large_objects"), on_primary->at("postgres/large_objects"));
  EXPECT_EQ(on_standby->at("postgres/sequence:public.scratch_counter"), "");
  // PostgreSQL logs sequence values ahead (32 at a time): a copy made from WAL may show more.
  int64_t primary_counter = 0;
  int64_t standby_counter = 0;
  ASSERT_TRUE(
      absl::SimpleAtoi(on_primary->at("postgres/sequence:public.counter"), &primary_counter));
  ASSERT_TRUE(
      absl::SimpleAtoi(on_standby->at("postgres/sequence:public.counter"), &standby_counter));
  EXPECT_EQ(primary_counter, 1);
  EXPECT_GE(standby_counter, primary_counter);
  EXPECT_LE(standby_counter, primary_counter + 32);
}

TEST_F(TableChecksumsTest, UnprivilegedRoleThatMayReadEverythingGetsTheSameValues) {
  Sql("CREATE TABLE t AS SELECT generate_series(1, 50) AS i");
  Sql("CREATE SEQUENCE s; SELECT nextval('s')");
  const std::string oid = Sql("SELECT lo_from_bytea(0, 'abc')");
  Sql("CREATE ROLE reader LOGIN");
  Sql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader");
  Sql("GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO reader");
  Sql(absl::StrCat("GRANT SELECT ON LARGE OBJECT ", oid, " TO reader"));
  ASSERT_EQ(Sql("SELECT rolsuper FROM pg_roles WHERE rolname = 'reader'"), "f");

  absl::StatusOr<Values> as_postgres = Checksums(*primary_);
  ASSERT_TRUE(as_postgres.ok()) << as_postgres.status();
  absl::StatusOr<Values> as_reader = Checksums(*primary_, "reader");
  ASSERT_TRUE(as_reader.ok()) << as_reader.status();
  EXPECT_EQ(*as_reader, *as_postgres);
}

TEST_F(TableChecksumsTest, TableTheRoleMayNotReadFailsNamingDatabaseAndTable) {
  Sql("CREATE TABLE secret_rows AS SELECT 1 AS i");
  Sql("CREATE ROLE reader LOGIN");
  absl::StatusOr<Values> values = Checksums(*primary_, "reader");
  EXPECT_EQ(values.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(values.status().message(), HasSubstr("database \"postgres\""));
  EXPECT_THAT(values.status().message(), HasSubstr("public.secret_rows"));
  EXPECT_THAT(values.status().message(), HasSubstr("42501"));
}

TEST_F(TableChecksumsTest, CancelStopsAStatementThatIsWaiting) {
  Sql("CREATE TABLE locked AS SELECT 1 AS i");
  absl::StatusOr<PgConnection> holder = PgConnection::Open(Connection(*primary_));
  ASSERT_TRUE(holder.ok()) << holder.status();
  ASSERT_TRUE(holder->Execute("BEGIN").ok());
  ASSERT_TRUE(holder->Execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE").ok());

  QueryCanceller canceller;
  TableChecksumOptions options;
  options.canceller = &canceller;
  absl::StatusOr<Values> values;
  std::thread reader([&] { values = ComputeTableChecksums(Connection(*primary_), options); });
  absl::Status waiting =
      integration::WaitFor("the checksum to wait for the lock", absl::Seconds(30), [&] {
        absl::StatusOr<std::string> count =
            primary_->Query("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'");
        return count.ok() && *count == "1";
      });
  canceller.Cancel();
  reader.join();
  ASSERT_TRUE(waiting.ok()) << waiting;
  EXPECT_EQ(values.status().code(), absl::StatusCode::kCancelled) << values.status();
}

TEST_F(TableChecksumsTest, WorkersGiveTheSameValuesAsOneConnection) {
  for (int i = 0; i < 9; ++i) {
    Sql(absl::StrCat("CREATE TABLE t", i,
                     " AS SELECT g AS id, md5(g::text) AS v "
                     "FROM generate_series(1, ",
                     1000 * (i + 1), ") AS g"));
  }
  Sql("CREATE UNLOGGED TABLE u AS SELECT 1 AS i; CREATE SEQUENCE s; SELECT nextval('s')");
  TableChecksumOptions one;
  one.workers = 1;
  TableChecksumOptions four;
  four.workers = 4;
  std::vector<std::string> logged;
  four.log = [&logged](absl::string_view line) { logged.push_back(std::string(line)); };
  absl::StatusOr<Values> serial = ComputeTableChecksums(Connection(*primary_), one);
  absl::StatusOr<Values> parallel = ComputeTableChecksums(Connection(*primary_), four);
  ASSERT_TRUE(serial.ok()) << serial.status();
  ASSERT_TRUE(parallel.ok()) << parallel.status();
  EXPECT_EQ(*serial, *parallel);
  EXPECT_EQ(Rows(parallel->at("postgres/public.t8")), 9000u);
  EXPECT_THAT(logged, Contains(HasSubstr("by 4 workers")));
}

TEST_F(TableChecksumsTest, PgbenchScaleTenIsReadInSeconds) {
  integration::CommandOptions as_postgres;
  as_postgres.launch.run_as = integration::kPostgresOsUser;
  as_postgres.timeout = absl::Seconds(300);
  absl::StatusOr<std::string> initialised = integration::RunChecked(
      {Tool("pgbench"), "-i", "-q", "-s", "10", "-h", primary_->socket_dir(), "-p",
       absl::StrCat(primary_->port()), "-U", "postgres", "postgres"},
      as_postgres);
  ASSERT_TRUE(initialised.ok()) << initialised.status();

  const absl::Time started = absl::Now();
  absl::StatusOr<Values> values = Checksums(*primary_);
  const absl::Duration took = absl::Now() - started;
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_EQ(Rows(values->at("postgres/public.pgbench_accounts")), 1000000u);
  EXPECT_EQ(Rows(values->at("postgres/public.pgbench_branches")), 10u);
  std::cout << "TABLE_CHECKSUMS of pgbench scale 10 took " << absl::FormatDuration(took) << "\n";
  // Generous: a loaded 2-core test machine. Seconds are expected.
  EXPECT_LT(took, absl::Seconds(120));
}

}  // namespace
}  // namespace pghaul::agent
