// PostgresFacts.database_size_bytes against a real PostgreSQL 15 (the integration fixture's
// PgCluster).
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/host_facts.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/fixture/pg_cluster.h"
#include "tests/integration/fixture/temp_dir.h"

namespace pghaul::agent {
namespace {

using ::testing::HasSubstr;

class DatabaseSizeFactTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string initdb = absl::StrCat(integration::kPostgresBinDir, "/initdb");
    if (geteuid() != 0 || access(initdb.c_str(), X_OK) != 0) {
      GTEST_SKIP() << "needs root and " << initdb << " (package postgresql-15)";
    }
    absl::StatusOr<std::unique_ptr<integration::TempDir>> temp =
        integration::TempDir::Create("pghaul-database-size-test.");
    ASSERT_TRUE(temp.ok()) << temp.status();
    temp_ = *std::move(temp);
    integration::PgClusterOptions options;
    options.name = "pg";
    absl::StatusOr<std::unique_ptr<integration::PgCluster>> cluster =
        integration::PgCluster::Create(temp_->path(), std::move(options));
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    ASSERT_TRUE(cluster_->Start().ok());
    conn_.socket_dir = cluster_->socket_dir();
    conn_.port = cluster_->port();
  }
  void TearDown() override {
    cluster_.reset();
    temp_.reset();
  }

  uint64_t ServerSum() {
    absl::StatusOr<std::string> sum =
        cluster_->Query("SELECT sum(pg_database_size(oid)) FROM pg_database WHERE datallowconn");
    uint64_t bytes = 0;
    EXPECT_TRUE(sum.ok() && absl::SimpleAtoi(*sum, &bytes)) << sum.status();
    return bytes;
  }

  std::unique_ptr<integration::TempDir> temp_;
  std::unique_ptr<integration::PgCluster> cluster_;
  PostgresConnection conn_;
};

TEST_F(DatabaseSizeFactTest, SumsTheDatabasesThatAcceptConnections) {
  ASSERT_TRUE(cluster_
                  ->Query("CREATE TABLE big AS SELECT repeat('x', 200) AS v "
                          "FROM generate_series(1, 20000)")
                  .ok());
  const uint64_t before = ServerSum();
  pghaul::v1::PostgresFacts facts = GatherPostgresFacts(conn_);
  const uint64_t after = ServerSum();
  ASSERT_TRUE(facts.reachable()) << facts.error();
  EXPECT_EQ(facts.error(), "");
  // Nothing writes meanwhile; the bounds only allow for the server's own small changes.
  EXPECT_GE(facts.database_size_bytes(), std::min(before, after));
  EXPECT_LE(facts.database_size_bytes(), std::max(before, after));
  EXPECT_GT(facts.database_size_bytes(), 4u << 20);  // the table alone is about 4.5 MB
}

TEST_F(DatabaseSizeFactTest, SaysWhichDatabasesAUserMayNotMeasure) {
  ASSERT_TRUE(cluster_->Query("CREATE DATABASE private_db").ok());
  ASSERT_TRUE(cluster_->Query("REVOKE CONNECT ON DATABASE private_db FROM PUBLIC").ok());
  ASSERT_TRUE(cluster_->Query("CREATE ROLE watcher LOGIN").ok());
  PostgresConnection as_watcher = conn_;
  as_watcher.user = "watcher";
  pghaul::v1::PostgresFacts facts = GatherPostgresFacts(as_watcher);
  ASSERT_TRUE(facts.reachable()) << facts.error();
  EXPECT_GT(facts.database_size_bytes(), 0u);
  EXPECT_LT(facts.database_size_bytes(), ServerSum());
  EXPECT_THAT(facts.error(), HasSubstr("database_size_bytes leaves out 1 database(s)"));
}

}  // namespace
}  // namespace pghaul::agent
