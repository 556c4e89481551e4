// `pghaul verify` end to end: a source with a few tables (one with a primary key, one without,
// a sequence, an index) migrated to a rehearsal copy through the real CLI, controller and
// agents; verify passes on the identical pair; then the copy is corrupted on purpose (one row
// updated, one deleted, a sequence set, an index dropped, a column added, a row of a table
// without primary key changed) and one `pghaul verify -o json` must find, name and (rows)
// locate every one, exiting non-zero.
//
//   controller 198.18.0.10:7400   legacy 198.18.0.11 (source)   target 198.18.0.20 (rehearsal)
#include <unistd.h>

#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fixture/json_paths.h"
#include "tests/integration/fixture/migration_fixture.h"
#include "tests/integration/fixture/test_support.h"

namespace pghaul::integration {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr int kExitFailed = 1;

std::string Field(const json& object, const char* name) {
  const json value = At(object, name);
  return value.is_string() ? value.get<std::string>() : "";
}

// The last JSON line of `pghaul ... -o json <phase command>` (the lines before are events).
absl::StatusOr<json> LastJsonLine(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipWhitespace());
  if (lines.empty()) return absl::DataLossError("no output");
  json parsed = json::parse(lines.back(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return absl::DataLossError(absl::StrCat("not JSON: ", lines.back()));
  return parsed;
}

class VerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RequireRoot();
    if (HasFatalFailure()) return;
    PGH_ASSERT_OK_AND_ASSIGN(rig_, MigrationRig::Create("pghaul-verify-"));
    RigHostOptions source;
    source.octet = 11;
    source.initdb_args = {"--encoding=UTF8", "--locale=C.UTF-8"};
    PGH_ASSERT_OK(rig_->AddHost("legacy", source).status());
    RigHostOptions target = source;
    target.octet = 20;
    PGH_ASSERT_OK(rig_->AddHost("target", target).status());
    PGH_ASSERT_OK(rig_->RunSqlScript(rig_->Cluster("legacy"), "CREATE DATABASE app;\n"));
    PGH_ASSERT_OK(rig_->RunSqlScript(
        rig_->Cluster("legacy"),
        "CREATE TABLE orders (id int PRIMARY KEY, note text, amount numeric);\n"
        "INSERT INTO orders SELECT g, 'note ' || g, g * 1.25 FROM generate_series(1, 20000) g;\n"
        "CREATE INDEX orders_note_idx ON orders (note);\n"
        "CREATE TABLE notes (body text);\n"
        "INSERT INTO notes SELECT 'body ' || g FROM generate_series(1, 50) g;\n"
        "CREATE TABLE log_lines (at int, line text);\n"
        "INSERT INTO log_lines SELECT g, 'line ' || g FROM generate_series(1, 100) g;\n"
        "CREATE SEQUENCE counter;\n"
        "SELECT nextval('counter') FROM generate_series(1, 10);\n",
        "app"));
  }

  void TearDown() override {
    if (rig_ != nullptr && HasFailure()) PrintLogTails(rig_->LogPaths());
    rig_.reset();
  }

  // `pghaul verify m1 --output json`: its exit code and the migration it printed last.
  struct Verified {
    int exit_code = -1;
    std::string output;
    json migration;
  };
  absl::StatusOr<Verified> Verify() {
    const absl::Time start = absl::Now();
    absl::StatusOr<CommandResult> run =
        rig_->Cli({"verify", "m1", "--output", "json"}, absl::Seconds(240));
    if (!run.ok()) return run.status();
    std::cout << "verify took " << absl::Now() - start << "\n";
    Verified verified;
    verified.exit_code = run->exit_code;
    verified.output = run->stdout_text + run->stderr_text;
    absl::StatusOr<json> migration = LastJsonLine(run->stdout_text);
    if (!migration.ok()) return migration.status();
    verified.migration = *migration;
    return verified;
  }

  std::unique_ptr<MigrationRig> rig_;
};

TEST_F(VerifyTest, IdenticalPairPassesAndEveryCorruptionIsFoundNamedAndLocated) {
  PGH_ASSERT_OK(rig_->ApplyPlan(rig_->PosixPlan()));
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult restored,
                           rig_->Cli({"run", "m1", "--until", "restore"}, absl::Seconds(300)));
  ASSERT_EQ(restored.exit_code, 0) << restored.stdout_text << restored.stderr_text;

  PGH_ASSERT_OK_AND_ASSIGN(Verified identical, Verify());
  const json report = At(identical.migration, "verify");
  EXPECT_EQ(identical.exit_code, 0) << identical.output << report.dump(2);
  EXPECT_EQ(At(report, "passed"), true) << report.dump(2);
  EXPECT_GT(Int(report, "schema_objects_compared"), 20);
  EXPECT_GE(Int(report, "tables_compared"), 3);
  EXPECT_GE(Int(report, "rows_compared"), 20150);

  PGH_ASSERT_OK(rig_->RunSqlScript(rig_->Cluster("target"),
                                   "UPDATE orders SET note = 'tampered' WHERE id = 42;\n"
                                   "DELETE FROM orders WHERE id = 17077;\n"
                                   "SELECT setval('counter', 500000);\n"
                                   "DROP INDEX orders_note_idx;\n"
                                   "ALTER TABLE notes ADD COLUMN extra int;\n"
                                   "UPDATE log_lines SET line = 'changed' WHERE at = 7;\n",
                                   "app"));
  PGH_ASSERT_OK_AND_ASSIGN(Verified corrupted, Verify());
  EXPECT_EQ(corrupted.exit_code, kExitFailed) << corrupted.output;
  const json failed = At(corrupted.migration, "verify");
  EXPECT_EQ(At(failed, "passed"), false);
  std::map<std::string, json> by_name;
  for (const json& d : At(failed, "differences")) {
    by_name[absl::StrCat(Field(d, "kind"), " ", Field(d, "table"))] = d;
  }
  auto find = [&](const std::string& name) -> json {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      ADD_FAILURE() << "no difference " << name << " in " << failed.dump(2);
      return json::object();
    }
    return it->second;
  };

  // The index and the column, by kind and name.
  EXPECT_EQ(Field(find("index app/public.orders_note_idx"), "status"), "missing-on-target");
  EXPECT_EQ(Field(find("column app/public.notes.extra"), "status"), "missing-on-source");
  // The sequence, set far beyond what WAL logging ahead explains.
  const json sequence = find("sequence value app/sequence:public.counter");
  EXPECT_EQ(Field(sequence, "status"), "mismatch");
  EXPECT_THAT(Field(sequence, "detail"), HasSubstr("500000"));
  // The changed and the deleted row, located by primary key.
  const json orders = find("rows app/public.orders");
  EXPECT_EQ(Field(orders, "status"), "mismatch");
  EXPECT_EQ(Field(orders, "locate"), "located") << orders.dump(2);
  const json rows = At(orders, "rows");
  ASSERT_TRUE(rows.is_array() && rows.size() == 2) << orders.dump(2);
  EXPECT_EQ(Field(rows[0], "key"), "id=42");
  EXPECT_EQ(Field(rows[0], "change"), "changed");
  EXPECT_EQ(Field(rows[1], "key"), "id=17077");
  EXPECT_EQ(Field(rows[1], "change"), "missing-on-target");
  // A table without a primary key says so; one whose columns changed says why it is not located.
  EXPECT_EQ(Field(find("rows app/public.log_lines"), "locate"),
            "no primary key: cannot locate rows");
  EXPECT_THAT(Field(find("rows app/public.notes"), "locate"), HasSubstr("columns differ"));

  // The migration's message and `pghaul status` (for people) say the same.
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult status, rig_->Cli({"status", "m1"}));
  std::cout << status.stdout_text;
  EXPECT_THAT(status.stdout_text, HasSubstr("index app/public.orders_note_idx"));
  EXPECT_THAT(status.stdout_text,
              HasSubstr("app/public.orders: rows differ at id=42 (changed), id=17077 "
                        "(missing on target)"));
  EXPECT_THAT(Field(corrupted.migration, "message"), HasSubstr("verify found differences"));
}

}  // namespace
}  // namespace pghaul::integration
