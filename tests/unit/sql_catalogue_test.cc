#include "agent/sql_catalogue.h"

#include <unistd.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/pg_connection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/fixture/pg_cluster.h"
#include "tests/integration/fixture/temp_dir.h"

namespace pghaul::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Key;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::UnorderedElementsAre;
using Values = std::map<std::string, std::string>;

constexpr uint64_t kSegmentBytes = 16 << 20;
constexpr char kLsnPattern[] = "[0-9A-F]+/[0-9A-F]+";

std::string Tool(const char* name) { return absl::StrCat(integration::kPostgresBinDir, "/", name); }

// A throwaway PostgreSQL 15 server in <root>/<name> (integration::PgCluster): its own socket
// directory, so every server can use the default port. Stopped with -m immediate when destroyed.
class TestServer {
 public:
  TestServer(const std::string& root, const std::string& name) : root_(root), name_(name) {}
  ~TestServer() {
    if (cluster_ == nullptr || cluster_->PostmasterPid() == 0) return;
    absl::Status stopped = cluster_->Stop("immediate");
    if (!stopped.ok()) ADD_FAILURE() << "cannot stop the test server: " << stopped;
  }

  absl::Status InitDb() { return Adopt(integration::PgCluster::Create(root_, Options())); }

  // A standby of `primary`: pg_basebackup -R writes standby.signal and primary_conninfo.
  absl::Status BaseBackupFrom(const TestServer& primary) {
    if (primary.cluster_ == nullptr) return absl::FailedPreconditionError("no primary cluster");
    return Adopt(integration::PgCluster::CreateStandby(root_, Options(), *primary.cluster_));
  }

  absl::Status Start() {
    if (cluster_ == nullptr) return absl::FailedPreconditionError("no cluster: InitDb first");
    return cluster_->Start();
  }

  absl::Status Restart() {
    if (cluster_ == nullptr) return absl::FailedPreconditionError("no cluster: InitDb first");
    absl::Status stopped = cluster_->Stop();
    if (!stopped.ok()) return stopped;
    return cluster_->Start();
  }

  PostgresConnection Connection() const {
    PostgresConnection conn;
    if (cluster_ != nullptr) {
      conn.socket_dir = cluster_->socket_dir();
      conn.port = cluster_->port();
    }
    return conn;
  }

 private:
  integration::PgClusterOptions Options() const {
    integration::PgClusterOptions options;
    options.name = name_;
    options.initdb_args = {"--encoding=UTF8", "--locale=C.UTF-8"};
    return options;
  }
  absl::Status Adopt(absl::StatusOr<std::unique_ptr<integration::PgCluster>> cluster) {
    if (!cluster.ok()) return cluster.status();
    cluster_ = *std::move(cluster);
    return absl::OkStatus();
  }

  std::string root_;
  std::string name_;
  std::unique_ptr<integration::PgCluster> cluster_;
};

// A directory for the test's servers, removed at the end.
class SqlCatalogueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0 || access(Tool("initdb").c_str(), X_OK) != 0) {
      GTEST_SKIP() << "needs root and " << Tool("initdb") << " (package postgresql-15)";
    }
    absl::StatusOr<std::unique_ptr<integration::TempDir>> temp =
        integration::TempDir::Create("pghaul-sql-test.");
    ASSERT_TRUE(temp.ok()) << temp.status();
    temp_ = *std::move(temp);
    root_ = temp_->path();
    primary_ = std::make_unique<TestServer>(root_, "primary");
    absl::Status created = primary_->InitDb();
    ASSERT_TRUE(created.ok()) << created;
    absl::Status started = primary_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  void TearDown() override {
    standby_.reset();
    primary_.reset();
    temp_.reset();
  }

  absl::StatusOr<Values> Run(v1::SqlQuery::Query query, const TestServer& server) {
    v1::SqlQuery request;
    request.set_query(query);
    request.set_migration_id("m1");  // FENCE_READ_ONLY and UNFENCE mark their hba block with it
    return RunSqlQuery(server.Connection(), request);
  }
  absl::StatusOr<Values> Run(v1::SqlQuery::Query query) { return Run(query, *primary_); }

  // Runs a statement of the test's own on the primary.
  absl::Status Exec(const char* sql) {
    absl::StatusOr<PgConnection> conn = PgConnection::Open(primary_->Connection());
    if (!conn.ok()) return conn.status();
    return conn->Execute(sql).status();
  }

  std::unique_ptr<integration::TempDir> temp_;
  std::string root_;
  std::unique_ptr<TestServer> primary_;
  std::unique_ptr<TestServer> standby_;
};

uint64_t ParseLsn(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  uint32_t high = 0;
  uint32_t low = 0;
  EXPECT_EQ(parts.size(), 2u) << text;
  if (parts.size() != 2) return 0;
  EXPECT_TRUE(absl::SimpleHexAtoi(parts[0], &high) && absl::SimpleHexAtoi(parts[1], &low)) << text;
  return (static_cast<uint64_t>(high) << 32) | low;
}

// The name of the timeline-1 segment holding the byte at `lsn`.
std::string SegmentName(uint64_t lsn) {
  const uint64_t segment = lsn / kSegmentBytes;
  const uint64_t per_id = 0x100000000ULL / kSegmentBytes;
  return absl::StrFormat("%08X%08X%08X", 1, segment / per_id, segment % per_id);
}

TEST_F(SqlCatalogueTest, CurrentWalLsnReturnsValidLsns) {
  absl::StatusOr<Values> values = Run(v1::SqlQuery::CURRENT_WAL_LSN);
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_THAT(*values, UnorderedElementsAre(Key("lsn"), Key("insert_lsn")));
  EXPECT_THAT(values->at("lsn"), MatchesRegex(kLsnPattern));
  EXPECT_THAT(values->at("insert_lsn"), MatchesRegex(kLsnPattern));
  EXPECT_GE(ParseLsn(values->at("insert_lsn")), ParseLsn(values->at("lsn")));
  EXPECT_GT(ParseLsn(values->at("lsn")), 0u);
}

TEST_F(SqlCatalogueTest, SwitchWalReturnsTheSwitchedSegmentAndAdvancesTheLsn) {
  ASSERT_TRUE(Exec("CREATE TABLE t AS SELECT generate_series(1, 1000) AS i").ok());
  absl::StatusOr<Values> before = Run(v1::SqlQuery::CURRENT_WAL_LSN);
  ASSERT_TRUE(before.ok()) << before.status();
  const uint64_t insert_before = ParseLsn(before->at("insert_lsn"));

  absl::StatusOr<Values> switched = Run(v1::SqlQuery::SWITCH_WAL);
  ASSERT_TRUE(switched.ok()) << switched.status();
  EXPECT_THAT(*switched, UnorderedElementsAre(Key("lsn"), Key("walfile")));
  const uint64_t switch_lsn = ParseLsn(switched->at("lsn"));
  EXPECT_GT(switch_lsn, insert_before);
  // The segment that held the WAL written before the switch is the one named.
  EXPECT_EQ(switched->at("walfile"), SegmentName(insert_before));
  EXPECT_EQ(switched->at("walfile"), SegmentName(switch_lsn - 1));

  absl::StatusOr<Values> after = Run(v1::SqlQuery::CURRENT_WAL_LSN);
  ASSERT_TRUE(after.ok()) << after.status();
  const uint64_t lsn_after = ParseLsn(after->at("lsn"));
  EXPECT_GE(lsn_after, switch_lsn);
  // Writing continues in a later segment.
  EXPECT_GE(lsn_after / kSegmentBytes, insert_before / kSegmentBytes + 1);
}

TEST_F(SqlCatalogueTest, SwitchWalWithNothingNewNamesTheSegmentBeforeTheBoundary) {
  ASSERT_TRUE(Exec("CREATE TABLE t (i int)").ok());
  absl::StatusOr<Values> first = Run(v1::SqlQuery::SWITCH_WAL);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<Values> second = Run(v1::SqlQuery::SWITCH_WAL);
  ASSERT_TRUE(second.ok()) << second.status();
  const uint64_t second_lsn = ParseLsn(second->at("lsn"));
  // Whatever happened in between (normally nothing: the switch is then a no-op returning the
  // next segment's start), `walfile` names the segment holding the byte just below `lsn`.
  EXPECT_EQ(second->at("walfile"), SegmentName(second_lsn - 1));
  if (second_lsn % kSegmentBytes == 0) {
    EXPECT_EQ(second->at("walfile"), first->at("walfile"));
  }
}

TEST_F(SqlCatalogueTest, StatArchiverReturnsEveryColumn) {
  absl::StatusOr<Values> values = Run(v1::SqlQuery::STAT_ARCHIVER);
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_THAT(*values, UnorderedElementsAre(Key("archived_count"), Key("last_archived_wal"),
                                            Key("last_archived_time"), Key("failed_count"),
                                            Key("last_failed_wal"), Key("last_failed_time"),
                                            Key("stats_reset")));
  // archive_mode is off: nothing archived, nothing failed, NULLs as "".
  EXPECT_EQ(values->at("archived_count"), "0");
  EXPECT_EQ(values->at("failed_count"), "0");
  EXPECT_EQ(values->at("last_archived_wal"), "");
  // Timestamps read back in ISO form in UTC.
  EXPECT_THAT(values->at("stats_reset"), MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+\\+00"));
}

TEST_F(SqlCatalogueTest, LastReplayLsnOnAPrimarySaysNotInRecovery) {
  absl::StatusOr<Values> values = Run(v1::SqlQuery::LAST_REPLAY_LSN);
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_EQ(*values, (Values{{"lsn", ""}, {"replay_timestamp", ""}, {"in_recovery", "false"}}));
}

TEST_F(SqlCatalogueTest, PromoteOnAPrimaryIsRefusedClearly) {
  v1::SqlQuery request;
  request.set_query(v1::SqlQuery::PROMOTE);
  absl::StatusOr<Values> values = RunSqlQuery(primary_->Connection(), request);
  EXPECT_EQ(values.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(values.status().message(), HasSubstr("not in recovery"));
}

TEST_F(SqlCatalogueTest, CheckpointWritesANewCheckpoint) {
  // pg_control_checkpoint() reads pg_control, which the checkpoint updates before CHECKPOINT
  // returns; a manual CHECKPOINT is forced, so it writes a new record even on an idle server.
  absl::StatusOr<PgConnection> conn = PgConnection::Open(primary_->Connection());
  ASSERT_TRUE(conn.ok()) << conn.status();
  const char* kLastCheckpoint = "SELECT checkpoint_lsn::text AS lsn FROM pg_control_checkpoint()";
  absl::StatusOr<Values> before = conn->ExecuteOneRow(kLastCheckpoint);
  ASSERT_TRUE(before.ok()) << before.status();

  absl::StatusOr<Values> values = Run(v1::SqlQuery::CHECKPOINT);
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_THAT(*values, IsEmpty());

  absl::StatusOr<Values> after = conn->ExecuteOneRow(kLastCheckpoint);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_GT(ParseLsn(after->at("lsn")), ParseLsn(before->at("lsn")));
}

TEST_F(SqlCatalogueTest, FenceEndsOtherSessionsAndMakesNewTransactionsReadOnly) {
  ASSERT_TRUE(Exec("CREATE TABLE t (i int)").ok());
  absl::StatusOr<PgConnection> other = PgConnection::Open(primary_->Connection());
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE(other->Execute("SELECT 1").ok());

  absl::StatusOr<Values> fenced = Run(v1::SqlQuery::FENCE_READ_ONLY);
  ASSERT_TRUE(fenced.ok()) << fenced.status();
  EXPECT_EQ(fenced->at("terminated"), "1");
  EXPECT_EQ(fenced->at("not_terminated"), "0");
  EXPECT_EQ(fenced->at("hba_block"), "added");

  // The other session is gone: its server process exited before FENCE returned.
  absl::Status dead = other->Execute("SELECT 1").status();
  EXPECT_EQ(dead.code(), absl::StatusCode::kUnavailable) << dead;

  absl::Status insert = Exec("INSERT INTO t VALUES (1)");
  EXPECT_EQ(insert.code(), absl::StatusCode::kFailedPrecondition) << insert;
  EXPECT_EQ(SqlStateOf(insert).value_or(""), "25006") << insert;

  // Fencing twice is harmless and ends nobody new.
  absl::StatusOr<Values> again = Run(v1::SqlQuery::FENCE_READ_ONLY);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->at("terminated"), "0");
  EXPECT_EQ(again->at("hba_block"), "unchanged");

  absl::StatusOr<Values> unfenced = Run(v1::SqlQuery::UNFENCE);
  ASSERT_TRUE(unfenced.ok()) << unfenced.status();
  EXPECT_EQ(unfenced->at("hba_block_removed"), "true");
  absl::Status writable = Exec("INSERT INTO t VALUES (2)");
  EXPECT_TRUE(writable.ok()) << writable;
}

TEST_F(SqlCatalogueTest, UnfenceOfAnUnfencedServerSucceeds) {
  absl::StatusOr<Values> unfenced = Run(v1::SqlQuery::UNFENCE);
  ASSERT_TRUE(unfenced.ok()) << unfenced.status();
  EXPECT_TRUE(Exec("CREATE TABLE t (i int)").ok());
}

TEST_F(SqlCatalogueTest, StandbyReportsReplayAndPromotes) {
  ASSERT_TRUE(Exec("CREATE TABLE t AS SELECT 1 AS i").ok());
  standby_ = std::make_unique<TestServer>(root_, "standby");
  absl::Status copied = standby_->BaseBackupFrom(*primary_);
  ASSERT_TRUE(copied.ok()) << copied;
  absl::Status started = standby_->Start();
  ASSERT_TRUE(started.ok()) << started;

  absl::StatusOr<Values> replay = Run(v1::SqlQuery::LAST_REPLAY_LSN, *standby_);
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->at("in_recovery"), "true");
  EXPECT_THAT(replay->at("lsn"), MatchesRegex(kLsnPattern));

  // WAL functions of a primary are refused on a standby, with the server's SQLSTATE.
  absl::StatusOr<Values> current = Run(v1::SqlQuery::CURRENT_WAL_LSN, *standby_);
  EXPECT_EQ(current.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(SqlStateOf(current.status()).value_or(""), "55000") << current.status();

  v1::SqlQuery promote;
  promote.set_query(v1::SqlQuery::PROMOTE);
  promote.set_wait_seconds(60);
  absl::StatusOr<Values> promoted = RunSqlQuery(standby_->Connection(), promote);
  ASSERT_TRUE(promoted.ok()) << promoted.status();
  EXPECT_EQ(*promoted, (Values{{"promoted", "true"}, {"restore_command_cleared", "false"}}));

  absl::StatusOr<Values> after = Run(v1::SqlQuery::LAST_REPLAY_LSN, *standby_);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->at("in_recovery"), "false");
  EXPECT_TRUE(Run(v1::SqlQuery::CURRENT_WAL_LSN, *standby_).ok());
}

// The cutover's standby side: wait for a replay LSN, retry the archive faster, promote without
// asking the archive for anything.
TEST_F(SqlCatalogueTest, StandbyWaitsForReplayRetriesFasterAndPromotesWithoutRestoreCommand) {
  ASSERT_TRUE(Exec("CREATE TABLE t AS SELECT 1 AS i").ok());
  standby_ = std::make_unique<TestServer>(root_, "standby");
  ASSERT_TRUE(standby_->BaseBackupFrom(*primary_).ok());
  ASSERT_TRUE(standby_->Start().ok());
  // A restore_command that finds nothing: the standby streams, as a pgBackRest one would fetch.
  {
    absl::StatusOr<PgConnection> conn = PgConnection::Open(standby_->Connection());
    ASSERT_TRUE(conn.ok()) << conn.status();
    ASSERT_TRUE(conn->Execute("ALTER SYSTEM SET restore_command = '/bin/false %f %p'").ok());
    ASSERT_TRUE(ReloadConfigurationAndWait(*conn).ok());
  }

  ASSERT_TRUE(Exec("INSERT INTO t VALUES (2)").ok());
  absl::StatusOr<Values> written = Run(v1::SqlQuery::CURRENT_WAL_LSN);
  ASSERT_TRUE(written.ok()) << written.status();
  v1::SqlQuery wait;
  wait.set_query(v1::SqlQuery::WAIT_REPLAYED);
  wait.set_lsn(written->at("lsn"));
  wait.set_wait_seconds(30);
  absl::StatusOr<Values> replayed = RunSqlQuery(standby_->Connection(), wait);
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  EXPECT_EQ(replayed->at("reached"), "true");
  EXPECT_GE(ParseLsn(replayed->at("lsn")), ParseLsn(written->at("lsn")));
  EXPECT_EQ(replayed->at("in_recovery"), "true");

  // A position nobody wrote: the answer is reached=false after the wait, not an error.
  wait.set_lsn("FF/0");
  wait.set_wait_seconds(1);
  const absl::Time asked = absl::Now();
  absl::StatusOr<Values> never = RunSqlQuery(standby_->Connection(), wait);
  ASSERT_TRUE(never.ok()) << never.status();
  EXPECT_EQ(never->at("reached"), "false");
  EXPECT_GE(absl::Now() - asked, absl::Seconds(1));

  v1::SqlQuery retry;
  retry.set_query(v1::SqlQuery::SET_WAL_RETRIEVE_RETRY);
  retry.set_retry_ms(10);
  absl::StatusOr<Values> fast = RunSqlQuery(standby_->Connection(), retry);
  ASSERT_TRUE(fast.ok()) << fast.status();
  EXPECT_EQ(fast->at("before"), "5s");  // PostgreSQL's default
  absl::StatusOr<PgConnection> check = PgConnection::Open(standby_->Connection());
  ASSERT_TRUE(check.ok()) << check.status();
  absl::StatusOr<Values> now_set = check->ExecuteOneRow(
      "SELECT current_setting('wal_retrieve_retry_interval') AS retry,"
      " current_setting('restore_command') AS restore");
  ASSERT_TRUE(now_set.ok()) << now_set.status();
  EXPECT_EQ(now_set->at("retry"), "10ms");
  EXPECT_EQ(now_set->at("restore"), "/bin/false %f %p");

  v1::SqlQuery promote;
  promote.set_query(v1::SqlQuery::PROMOTE);
  promote.set_without_restore_command(true);
  absl::StatusOr<Values> promoted = RunSqlQuery(standby_->Connection(), promote);
  ASSERT_TRUE(promoted.ok()) << promoted.status();
  EXPECT_EQ(*promoted, (Values{{"promoted", "true"}, {"restore_command_cleared", "true"}}));
  absl::StatusOr<PgConnection> after = PgConnection::Open(standby_->Connection());
  ASSERT_TRUE(after.ok()) << after.status();
  absl::StatusOr<Values> state = after->ExecuteOneRow(
      "SELECT pg_is_in_recovery()::text AS in_recovery,"
      " current_setting('restore_command') AS restore,"
      " (SELECT count(*) FROM t)::text AS rows");
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, (Values{{"in_recovery", "false"}, {"restore", ""}, {"rows", "2"}}));
}

TEST_F(SqlCatalogueTest, WaitArchivedAnswersOnceTheSegmentIsArchived) {
  ASSERT_TRUE(Exec("ALTER SYSTEM SET archive_mode = on").ok());
  ASSERT_TRUE(Exec("ALTER SYSTEM SET archive_command = '/bin/true'").ok());
  ASSERT_TRUE(primary_->Restart().ok());
  ASSERT_TRUE(Exec("CREATE TABLE t AS SELECT 1 AS i").ok());
  absl::StatusOr<Values> switched = Run(v1::SqlQuery::SWITCH_WAL);
  ASSERT_TRUE(switched.ok()) << switched.status();
  v1::SqlQuery wait;
  wait.set_query(v1::SqlQuery::WAIT_ARCHIVED);
  wait.set_walfile(switched->at("walfile"));
  wait.set_wait_seconds(30);
  absl::StatusOr<Values> archived = RunSqlQuery(primary_->Connection(), wait);
  ASSERT_TRUE(archived.ok()) << archived.status();
  EXPECT_EQ(archived->at("reached"), "true");
  EXPECT_GE(archived->at("last_archived_wal"), switched->at("walfile"));
  EXPECT_NE(archived->at("archived_count"), "0");

  // A segment far ahead: not reached when the wait runs out.
  wait.set_walfile("0000000100000000000000FF");
  wait.set_wait_seconds(1);
  absl::StatusOr<Values> not_yet = RunSqlQuery(primary_->Connection(), wait);
  ASSERT_TRUE(not_yet.ok()) << not_yet.status();
  EXPECT_EQ(not_yet->at("reached"), "false");
  EXPECT_EQ(not_yet->at("last_archived_wal"), archived->at("last_archived_wal"));
}

TEST_F(SqlCatalogueTest, StatementTimeoutIsDeadlineExceededWithItsSqlState) {
  PgSessionOptions options;
  options.statement_timeout = absl::Milliseconds(100);
  absl::StatusOr<PgConnection> conn = PgConnection::Open(primary_->Connection(), options);
  ASSERT_TRUE(conn.ok()) << conn.status();
  absl::Status slept = conn->Execute("SELECT pg_sleep(30)").status();
  EXPECT_EQ(slept.code(), absl::StatusCode::kDeadlineExceeded) << slept;
  EXPECT_EQ(SqlStateOf(slept).value_or(""), "57014");
}

TEST_F(SqlCatalogueTest, ParametersAreNeverPartOfTheSqlText) {
  absl::StatusOr<PgConnection> conn = PgConnection::Open(primary_->Connection());
  ASSERT_TRUE(conn.ok()) << conn.status();
  const std::string hostile = "x'; DROP TABLE t; --";
  absl::StatusOr<Values> echoed = conn->ExecuteOneRow(
      "SELECT $1::text AS value, $2::text IS NULL AS is_null", {hostile, std::nullopt});
  ASSERT_TRUE(echoed.ok()) << echoed.status();
  EXPECT_EQ(*echoed, (Values{{"value", hostile}, {"is_null", "t"}}));
  // One statement per call: a second one is refused by the server.
  EXPECT_FALSE(conn->Execute("SELECT 1; SELECT 2").ok());
}

TEST_F(SqlCatalogueTest, SessionIdentifiesItselfAsPghaulAgent) {
  absl::StatusOr<PgConnection> conn = PgConnection::Open(primary_->Connection());
  ASSERT_TRUE(conn.ok()) << conn.status();
  absl::StatusOr<Values> settings = conn->ExecuteOneRow(
      "SELECT current_setting('application_name') AS app,"
      " current_setting('statement_timeout') AS timeout, current_setting('TimeZone') AS tz");
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(*settings, (Values{{"app", "pghaul-agent"}, {"timeout", "1min"}, {"tz", "UTC"}}));
}

// Without a server.

TEST(SqlCatalogueNoServerTest, ConnectionFailureIsUnavailableOnOneLine) {
  PostgresConnection conn;
  conn.socket_dir = "/nonexistent/pghaul-socket-dir";
  v1::SqlQuery request;
  request.set_query(v1::SqlQuery::CURRENT_WAL_LSN);
  absl::StatusOr<Values> values = RunSqlQuery(conn, request);
  EXPECT_EQ(values.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(values.status().message(), HasSubstr("/nonexistent/pghaul-socket-dir"));
  EXPECT_THAT(values.status().message(), Not(HasSubstr("\n")));
}

TEST(SqlCatalogueNoServerTest, UnspecifiedQueryIsRefused) {
  PostgresConnection conn;
  conn.socket_dir = "/nonexistent/pghaul-socket-dir";
  absl::StatusOr<Values> values = RunSqlQuery(conn, v1::SqlQuery());
  EXPECT_EQ(values.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SqlCatalogueNoServerTest, PromoteWaitOverAnHourIsRefusedBeforeConnecting) {
  PostgresConnection conn;
  conn.socket_dir = "/nonexistent/pghaul-socket-dir";
  v1::SqlQuery request;
  request.set_query(v1::SqlQuery::PROMOTE);
  request.set_wait_seconds(3601);
  absl::StatusOr<Values> values = RunSqlQuery(conn, request);
  EXPECT_EQ(values.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SqlCatalogueNoServerTest, MalformedWaitsAndRetriesAreRefusedBeforeConnecting) {
  PostgresConnection conn;
  conn.socket_dir = "/nonexistent/pghaul-socket-dir";
  auto refused = [&conn](v1::SqlQuery request, absl::string_view saying) {
    absl::StatusOr<Values> values = RunSqlQuery(conn, request);
    EXPECT_EQ(values.status().code(), absl::StatusCode::kInvalidArgument) << values.status();
    EXPECT_THAT(values.status().message(), HasSubstr(saying));
  };
  v1::SqlQuery archived;
  archived.set_query(v1::SqlQuery::WAIT_ARCHIVED);
  for (const char* walfile : {"", "00000001000000000000000; rm -rf /", "../../etc/passwd"}) {
    archived.set_walfile(walfile);
    refused(archived, "24 upper-case hex");
  }
  archived.set_walfile("000000010000000000000003");
  archived.set_wait_seconds(3601);
  refused(archived, "at most 3600");
  v1::SqlQuery replayed;
  replayed.set_query(v1::SqlQuery::WAIT_REPLAYED);
  replayed.set_lsn("0/0'; DROP TABLE t; --");
  refused(replayed, "upper-case hex");
  v1::SqlQuery retry;
  retry.set_query(v1::SqlQuery::SET_WAL_RETRIEVE_RETRY);
  for (uint32_t ms : {0u, 9u, 60001u}) {
    retry.set_retry_ms(ms);
    refused(retry, "10 to 60000");
  }
}

}  // namespace
}  // namespace pghaul::agent
