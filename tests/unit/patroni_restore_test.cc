// The pure parts of handing a restored copy over to Patroni (agent/patroni_restore.h): reading
// pg_controldata, the single-user script that gives Patroni its roles, the etcd request. The
// whole hand-over runs against real Patroni, etcd and PostgreSQL in
// tests/integration/patroni_test.cc.
#include "agent/patroni_restore.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace pghaul::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ParseControlDataTest, ReadsStateIdentifierAndTimeline) {
  absl::StatusOr<ControlData> data = ParseControlData(
      "pg_control version number:            1300\n"
      "Catalog version number:               202209061\n"
      "Database system identifier:           7712462926390867333\n"
      "Database cluster state:               in production\n"
      "Latest checkpoint's TimeLineID:       2\n"
      "Latest checkpoint's PrevTimeLineID:   1\n");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->state, "in production");
  EXPECT_EQ(data->system_identifier, 7712462926390867333u);
  EXPECT_EQ(data->timeline, 2u);

  EXPECT_TRUE(
      absl::IsInvalidArgument(ParseControlData("Database cluster state: shut down\n").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      ParseControlData("Database system identifier: x\nDatabase cluster state: shut down\n"
                       "Latest checkpoint's TimeLineID: 1\n")
          .status()));
}

PatroniFileSettings CharmSettings() {
  PatroniFileSettings settings;
  settings.superuser = "operator";
  settings.superuser_password = "op'secret";
  settings.replication = "replication";
  settings.replication_password = "repl";
  settings.rewind = "re\"wind";
  return settings;
}

TEST(PatroniRolesScriptTest, CreatesOrAltersEachRoleOnOneLineAndResetsPgBackRestsSettings) {
  absl::StatusOr<std::string> script = PatroniRolesScript(CharmSettings());
  ASSERT_TRUE(script.ok()) << script.status();
  // Single-user mode ends a statement at a newline: none spans two lines.
  for (absl::string_view line : absl::StrSplit(*script, '\n', absl::SkipEmpty())) {
    EXPECT_THAT(line, Not(HasSubstr(";\n")));
  }
  EXPECT_THAT(*script, HasSubstr("WHERE rolname = 'operator') THEN CREATE ROLE \"operator\";"));
  // Quotes doubled in literals and identifiers.
  EXPECT_THAT(*script,
              HasSubstr("ALTER ROLE \"operator\" WITH SUPERUSER LOGIN PASSWORD 'op''secret'\n"));
  EXPECT_THAT(*script,
              HasSubstr("ALTER ROLE \"replication\" WITH REPLICATION LOGIN PASSWORD 'repl'\n"));
  // A role without a password in patroni.yml keeps its own.
  EXPECT_THAT(*script, HasSubstr("ALTER ROLE \"re\"\"wind\" WITH LOGIN\n"));
  EXPECT_THAT(*script, HasSubstr("GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, "
                                 "boolean) TO \"re\"\"wind\"\n"));
  EXPECT_THAT(*script, HasSubstr("pg_read_binary_file(text, bigint, bigint, boolean)"));
  EXPECT_THAT(*script, HasSubstr("ALTER SYSTEM RESET archive_mode\n"));
  EXPECT_THAT(*script, HasSubstr("ALTER SYSTEM RESET restore_command\n"));
  EXPECT_THAT(*script, HasSubstr("ALTER SYSTEM RESET recovery_target_action\n"));

  // Unnamed roles are skipped.
  PatroniFileSettings superuser_only;
  superuser_only.superuser = "admin";
  absl::StatusOr<std::string> small = PatroniRolesScript(superuser_only);
  ASSERT_TRUE(small.ok());
  EXPECT_THAT(*small, Not(HasSubstr("REPLICATION")));
  EXPECT_THAT(*small, Not(HasSubstr("GRANT")));
}

TEST(PatroniRolesScriptTest, RefusesControlCharactersWithoutQuotingThePassword) {
  PatroniFileSettings settings = CharmSettings();
  settings.superuser_password = "line1\nDROP DATABASE x";
  absl::StatusOr<std::string> script = PatroniRolesScript(settings);
  EXPECT_TRUE(absl::IsInvalidArgument(script.status())) << script.status();
  EXPECT_THAT(script.status().message(), HasSubstr("superuser"));
  EXPECT_THAT(script.status().message(), Not(HasSubstr("DROP")));
  settings = CharmSettings();
  settings.replication = std::string("a\0b", 3);
  EXPECT_TRUE(absl::IsInvalidArgument(PatroniRolesScript(settings).status()));
}

TEST(EtcdDeleteRangeBodyTest, DeletesExactlyTheKeyAndAsksForItsValue) {
  nlohmann::json body = nlohmann::json::parse(EtcdDeleteRangeBody("/service/db/initialize"));
  std::string key;
  ASSERT_TRUE(absl::Base64Unescape(body["key"].get<std::string>(), &key));
  EXPECT_EQ(key, "/service/db/initialize");
  EXPECT_FALSE(body.contains("range_end")) << "one key, never a range";
  EXPECT_EQ(body["prev_kv"], true);
}

}  // namespace
}  // namespace pghaul::agent
