// ApplicationCheck: validation (REFUSED through the task manager before anything runs), and runs
// against a real PostgreSQL 15 (the integration fixture's PgCluster): values, read-only fencing,
// one statement only, the server's errors.
#include "agent/application_check.h"

#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/agent_config.h"
#include "agent/md5.h"
#include "agent/task_executors.h"
#include "agent/task_manager.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/fixture/pg_cluster.h"
#include "tests/integration/fixture/temp_dir.h"

namespace pghaul::agent {
namespace {

using ::testing::HasSubstr;
using Values = std::map<std::string, std::string>;

v1::ApplicationCheck Check(const std::string& sql, const std::string& database = "") {
  v1::ApplicationCheck check;
  check.set_name("check.sql");
  check.set_sql(sql);
  check.set_database(database);
  return check;
}

TEST(ApplicationCheckValidationTest, AcceptsOneStatementUpTo64KiB) {
  EXPECT_TRUE(ValidateApplicationCheck(Check("SELECT 1")).ok());
  EXPECT_TRUE(ValidateApplicationCheck(Check("SELECT 1", "app_db")).ok());
  EXPECT_TRUE(ValidateApplicationCheck(Check("SELECT 1", std::string(63, 'd'))).ok());
  std::string largest = "SELECT 1 --";
  largest.resize(kMaxApplicationCheckSqlBytes, 'x');
  EXPECT_TRUE(ValidateApplicationCheck(Check(largest)).ok());
}

TEST(ApplicationCheckValidationTest, RefusesEmptyOversizedOrNulSqlAndBadNames) {
  std::string oversized = "SELECT 1 --";
  oversized.resize(kMaxApplicationCheckSqlBytes + 1, 'x');
  const std::vector<v1::ApplicationCheck> bad = {
      Check(""),
      Check(" \n\t"),
      Check(oversized),
      Check(std::string("SELECT 1\0; DROP TABLE t", 24)),
      Check("SELECT 1", std::string(64, 'd')),
      Check("SELECT 1", "app\ndb"),
      Check("SELECT 1", std::string("a\0b", 3)),
  };
  for (const v1::ApplicationCheck& check : bad) {
    absl::Status status = ValidateApplicationCheck(check);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument)
        << absl::CHexEscape(check.sql().substr(0, 40)) << " in " << check.database();
  }
  v1::ApplicationCheck long_name = Check("SELECT 1");
  long_name.set_name(std::string(256, 'n'));
  EXPECT_EQ(ValidateApplicationCheck(long_name).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ApplicationCheckValidationTest, WithoutAChecksUserEveryCheckIsRefused) {
  AgentConfig config;
  config.agent_id = "agent";
  config.data_directory = "/nonexistent/data";
  config.state_dir = "/nonexistent/state";
  v1::Task task;
  task.set_task_id("check-1");
  *task.mutable_check() = Check("SELECT 1");
  absl::StatusOr<std::unique_ptr<TaskExecutor>> executor = MakeExecutorFactory(&config)(task);
  EXPECT_EQ(executor.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(executor.status().message(), HasSubstr("set application_checks.user in agent.yaml"));
  config.checks_user = "checker";
  EXPECT_TRUE(MakeExecutorFactory(&config)(task).ok());
}

TEST(ApplicationCheckValidationTest, TaskManagerRefusesABadCheckAndRunsNothing) {
  char pattern[] = "/tmp/pghaul-check-refused-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string dir = pattern;
  AgentConfig config;
  config.agent_id = "agent";
  config.data_directory = "/nonexistent/data";
  config.state_dir = dir;
  // Nothing listens here: a check that ran would fail (FAILED), not be REFUSED.
  config.postgres.socket_dir = "/nonexistent/socket";
  std::vector<v1::TaskEvent> events;
  absl::Mutex mu;
  {
    TaskManager manager(dir, MakeExecutorFactory(&config));
    manager.SetSink([&](const v1::TaskEvent& event) {
      absl::MutexLock lock(&mu);
      events.push_back(event);
    });
    v1::Task task;
    task.set_task_id("check-1");
    *task.mutable_check() = Check("SELECT 1", std::string(64, 'd'));
    manager.Submit(task);
    ASSERT_TRUE(manager.WaitFinished("check-1", absl::Seconds(10)));
  }
  std::filesystem::remove_all(dir);
  absl::MutexLock lock(&mu);
  ASSERT_FALSE(events.empty());
  ASSERT_TRUE(events.back().has_result());
  EXPECT_EQ(events.back().result().state(), v1::TaskResult::REFUSED);
  EXPECT_THAT(events.back().result().message(), HasSubstr("database"));
}

class ApplicationCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string initdb = absl::StrCat(integration::kPostgresBinDir, "/initdb");
    if (geteuid() != 0 || access(initdb.c_str(), X_OK) != 0) {
      GTEST_SKIP() << "needs root and " << initdb << " (package postgresql-15)";
    }
    absl::StatusOr<std::unique_ptr<integration::TempDir>> temp =
        integration::TempDir::Create("pghaul-check-test.");
    ASSERT_TRUE(temp.ok()) << temp.status();
    temp_ = *std::move(temp);
    integration::PgClusterOptions options;
    options.name = "pg";
    options.initdb_args = {"--encoding=UTF8", "--locale=C.UTF-8"};
    absl::StatusOr<std::unique_ptr<integration::PgCluster>> cluster =
        integration::PgCluster::Create(temp_->path(), std::move(options));
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    absl::Status started = cluster_->Start();
    ASSERT_TRUE(started.ok()) << started;
    conn_.socket_dir = cluster_->socket_dir();
    conn_.port = cluster_->port();
    Sql("CREATE TABLE orders (id int, note text); "
        "INSERT INTO orders VALUES (1, 'first'), (2, NULL), (3, E'tab\\there')");
    // The checks' own role: it may read and even write the table (so that a write is refused by
    // the read-only transaction, not by a missing grant), and nothing on the host.
    Sql(absl::StrCat("CREATE ROLE ", kChecker, " LOGIN; GRANT ALL ON orders TO ", kChecker,
                     "; GRANT CREATE ON SCHEMA public TO ", kChecker));
  }

  static constexpr char kChecker[] = "checker";

  void TearDown() override {
    cluster_.reset();
    temp_.reset();
  }

  std::string Sql(const std::string& sql, const std::string& database = "postgres") {
    absl::StatusOr<std::string> out = cluster_->Query(sql, database);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.value_or("");
  }

  std::unique_ptr<integration::TempDir> temp_;
  std::unique_ptr<integration::PgCluster> cluster_;
  PostgresConnection conn_;
};

TEST_F(ApplicationCheckTest, ReturnsRowCountDigestAndFirstValue) {
  absl::StatusOr<Values> values =
      RunApplicationCheck(conn_, kChecker, Check("SELECT id, note FROM orders ORDER BY id"));
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_EQ(values->at("rows"), "3");
  EXPECT_EQ(values->at("first"), "1");
  // One line per row, tab-separated, NULL as \N, a tab inside a value escaped.
  EXPECT_EQ(values->at("digest"), Md5::Hex("1\tfirst\n2\t\\N\n3\ttab\\there\n"));

  absl::StatusOr<Values> none =
      RunApplicationCheck(conn_, kChecker, Check("SELECT id FROM orders WHERE false"));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(*none, (Values{{"rows", "0"}, {"first", ""}, {"digest", Md5::Hex("")}}));
}

TEST_F(ApplicationCheckTest, DifferentResultsGiveDifferentDigests) {
  absl::StatusOr<Values> before =
      RunApplicationCheck(conn_, kChecker, Check("SELECT * FROM orders ORDER BY id"));
  ASSERT_TRUE(before.ok()) << before.status();
  Sql("UPDATE orders SET note = '' WHERE id = 2");  // NULL -> empty string
  absl::StatusOr<Values> after =
      RunApplicationCheck(conn_, kChecker, Check("SELECT * FROM orders ORDER BY id"));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->at("rows"), before->at("rows"));
  EXPECT_NE(after->at("digest"), before->at("digest"));
}

TEST_F(ApplicationCheckTest, RunsInTheNamedDatabase) {
  Sql("CREATE DATABASE app");
  Sql("CREATE TABLE only_here AS SELECT 42 AS answer", "app");
  Sql(absl::StrCat("GRANT SELECT ON only_here TO ", kChecker), "app");
  absl::StatusOr<Values> values =
      RunApplicationCheck(conn_, kChecker, Check("SELECT answer FROM only_here", "app"));
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_EQ(values->at("first"), "42");

  absl::StatusOr<Values> missing = RunApplicationCheck(conn_, kChecker, Check("SELECT 1", "no_such_db"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kUnavailable) << missing.status();
  EXPECT_THAT(missing.status().message(), HasSubstr("no_such_db"));
}

TEST_F(ApplicationCheckTest, CannotWriteInAnyForm) {
  Sql(absl::StrCat("CREATE SEQUENCE s; GRANT ALL ON SEQUENCE s TO ", kChecker));
  for (const char* sql : {
           "INSERT INTO orders VALUES (4, 'x')",
           "WITH gone AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM gone",
           "SELECT nextval('s')",
           "DO $$ BEGIN INSERT INTO orders VALUES (5, 'y'); END $$",
           "CREATE TABLE sneaky (i int)",
       }) {
    absl::StatusOr<Values> values = RunApplicationCheck(conn_, kChecker, Check(sql));
    EXPECT_EQ(values.status().code(), absl::StatusCode::kFailedPrecondition) << sql;
    EXPECT_THAT(values.status().message(), HasSubstr("25006")) << sql;
  }
  // Switching the transaction to read-write is refused: a query already ran in it.
  absl::StatusOr<Values> switched = RunApplicationCheck(conn_, kChecker, Check("SET TRANSACTION READ WRITE"));
  EXPECT_FALSE(switched.ok());
  EXPECT_THAT(switched.status().message(), HasSubstr("25001"));
  EXPECT_EQ(Sql("SELECT count(*) FROM orders"), "3");
  EXPECT_EQ(Sql("SELECT count(*) FROM pg_class WHERE relname = 'sneaky'"), "0");
}

TEST_F(ApplicationCheckTest, OneStatementOnlyAndTheServersErrorIsTheMessage) {
  absl::StatusOr<Values> two = RunApplicationCheck(conn_, kChecker, Check("SELECT 1; DELETE FROM orders"));
  EXPECT_FALSE(two.ok());
  EXPECT_THAT(two.status().message(), HasSubstr("42601"));  // cannot insert multiple commands
  EXPECT_EQ(Sql("SELECT count(*) FROM orders"), "3");

  absl::StatusOr<Values> missing = RunApplicationCheck(conn_, kChecker, Check("SELECT * FROM no_such_table"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.status().message(), HasSubstr("ERROR 42P01"));
  EXPECT_THAT(missing.status().message(), HasSubstr("no_such_table"));
}

TEST_F(ApplicationCheckTest, NeverRunsAsARoleThatCouldReachTheHost) {
  const std::string marker = temp_->path() + "/ran";
  EXPECT_EQ(RunApplicationCheck(conn_, "", Check("SELECT 1")).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // The agent's own role, a superuser: refused before the statement runs.
  absl::StatusOr<Values> as_superuser = RunApplicationCheck(
      conn_, "postgres", Check(absl::StrCat("COPY (SELECT 1) TO PROGRAM 'touch ", marker, "'")));
  EXPECT_EQ(as_superuser.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(as_superuser.status().message(),
              HasSubstr("application_checks.user 'postgres' is a superuser"));
  Sql("CREATE ROLE reader LOGIN; GRANT pg_read_server_files TO reader");
  absl::StatusOr<Values> reader = RunApplicationCheck(conn_, "reader", Check("SELECT 1"));
  EXPECT_THAT(reader.status().message(), HasSubstr("is a member of pg_read_server_files"));
  Sql("CREATE ROLE granted LOGIN; GRANT EXECUTE ON FUNCTION pg_read_file(text) TO granted");
  absl::StatusOr<Values> granted = RunApplicationCheck(conn_, "granted", Check("SELECT 1"));
  EXPECT_THAT(granted.status().message(), HasSubstr("may read server files"));

  // The checks' role: the server refuses what a READ ONLY transaction alone would let through.
  Sql("SELECT lo_from_bytea(0, 'x')");
  for (std::string sql :
       {absl::StrCat("COPY (SELECT 1) TO PROGRAM 'touch ", marker, "'"),
        absl::StrCat("SELECT lo_export((SELECT min(oid) FROM pg_largeobject_metadata), '", marker,
                     "')"),
        std::string("SELECT pg_read_file('/etc/hostname')"),
        std::string("SELECT set_config('role', 'postgres', false)"),
        std::string("SELECT set_config('session_authorization', 'postgres', false)")}) {
    absl::StatusOr<Values> values = RunApplicationCheck(conn_, kChecker, Check(sql));
    EXPECT_FALSE(values.ok()) << sql;
    // 42501 insufficient privilege; setting the session authorization back fails with a plain
    // "permission denied" (elog) in PostgreSQL 15.
    EXPECT_THAT(values.status().message(),
                ::testing::AnyOf(HasSubstr("42501"), HasSubstr("permission denied")))
        << sql;
  }
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST_F(ApplicationCheckTest, StatementTimeoutIsSixtySeconds) {
  absl::StatusOr<Values> values =
      RunApplicationCheck(conn_, kChecker, Check("SELECT current_setting('statement_timeout')"));
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_EQ(values->at("first"), "1min");
}

// Records nothing: the executor reports through its result.
class NullContext : public TaskContext {
 public:
  void Log(absl::string_view, absl::string_view) override {}
  void ReportProgress(const v1::Progress&) override {}
  bool cancelled() const override { return false; }
  void OnCancel(std::function<void()>) override {}
};

TEST_F(ApplicationCheckTest, ExecutorSucceedsWithValuesOrFailsWithTheServersError) {
  AgentConfig config;
  config.agent_id = "agent";
  config.postgres = conn_;
  config.data_directory = cluster_->data_dir();
  config.state_dir = temp_->path();
  config.checks_user = kChecker;
  ExecutorFactory factory = MakeExecutorFactory(&config);
  NullContext context;

  v1::Task task;
  task.set_task_id("check");
  *task.mutable_check() = Check("SELECT count(*) FROM orders");
  absl::StatusOr<std::unique_ptr<TaskExecutor>> executor = factory(task);
  ASSERT_TRUE(executor.ok()) << executor.status();
  v1::TaskResult result = (*executor)->Run(context);
  ASSERT_EQ(result.state(), v1::TaskResult::SUCCEEDED) << result.message();
  EXPECT_EQ(result.values().at("first"), "3");
  EXPECT_EQ(result.values().at("rows"), "1");

  *task.mutable_check() = Check("SELECT * FROM no_such_table");
  executor = factory(task);
  ASSERT_TRUE(executor.ok()) << executor.status();
  result = (*executor)->Run(context);
  EXPECT_EQ(result.state(), v1::TaskResult::FAILED);
  EXPECT_THAT(result.message(), HasSubstr("check.sql"));
  EXPECT_THAT(result.message(), HasSubstr("42P01"));
}

}  // namespace
}  // namespace pghaul::agent
