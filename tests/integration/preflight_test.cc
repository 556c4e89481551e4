// Each mismatch between a source and a target that one machine can hold, made real and run
// through `pghaul preflight`; the checks are read back from `pghaul -o json status`:
//
//   controller 198.18.0.10:7400    legacy 198.18.0.11, host name legacy.test: PG 15 with data
//                                    checksums, UTF8 and C.UTF-8, archive_mode off; shared by
//                                    every test (its controller, namespaces and repository too)
//                                  targets 198.18.0.20..: one or two per test, each initdb'd like
//                                    the source except for the one mismatch the test is about,
//                                    each agent in a UTS namespace of its own (<name>.test)
//
// The hosts share one filesystem: extension files, tablespace paths and free space are the same
// for all of them unless a test separates them (its own tmpfs for a target's data directory).
// Every test also proves that preflight changed nothing: the source was not restarted and does
// not archive, the repository is empty, each target is the cluster it was.
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fixture/command.h"
#include "tests/integration/fixture/json_paths.h"
#include "tests/integration/fixture/migration_fixture.h"
#include "tests/integration/fixture/pg_cluster.h"
#include "tests/integration/fixture/temp_dir.h"
#include "tests/integration/fixture/test_support.h"

namespace pghaul::integration {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr int kExitFailed = 1;  // docs/cli.md: the migration (here its preflight) failed
constexpr char kSourceHostname[] = "legacy.test";
constexpr char kExtensionDir[] = "/usr/share/postgresql/15/extension";
constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;

// How the source is initialised; targets copy it unless a test is about one of these.
const std::vector<std::string>& SourceInitdbArgs() {
  static const std::vector<std::string>* const kArgs =
      new std::vector<std::string>{"--data-checksums", "--encoding=UTF8", "--locale=C.UTF-8"};
  return *kArgs;
}

// The string field of a check ("" when absent: proto3 JSON leaves empty strings out).
std::string Field(const json& check, const char* name) {
  const json value = At(check, name);
  return value.is_string() ? value.get<std::string>() : "";
}

// What `pghaul preflight` did and what `pghaul status` shows afterwards.
struct PreflightOutcome {
  int exit_code = -1;
  std::string output;  // pghaul preflight's stdout and stderr
  std::string state;   // the migration's state afterwards
  std::vector<json> checks;

  const json* Find(absl::string_view name) const {
    for (const json& check : checks) {
      if (Field(check, "name") == name) return &check;
    }
    return nullptr;
  }

  // name -> status of every check that did not pass.
  std::map<std::string, std::string> NotPassing() const {
    std::map<std::string, std::string> result;
    for (const json& check : checks) {
      if (Field(check, "status") != "pass") result[Field(check, "name")] = Field(check, "status");
    }
    return result;
  }

  // Every check that did not pass, with its values, message and fix: for failure messages.
  std::string Describe() const {
    std::string text = absl::StrCat("exit ", exit_code, ", state ", state, "\n");
    for (const json& check : checks) {
      if (Field(check, "status") == "pass") continue;
      absl::StrAppend(&text, "  ", Field(check, "name"), " ", Field(check, "status"), ": source '",
                      Field(check, "source"), "', target '", Field(check, "target"),
                      "': ", Field(check, "message"), " (fix: ", Field(check, "fix"), ")\n");
    }
    return text;
  }
};

class PreflightTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) return;  // SetUp fails each test with RequireRoot's message
    const absl::Time start = absl::Now();
    absl::Status made = MakeSharedRig();
    if (!made.ok()) {
      setup_error_ = new std::string(made.ToString());
      return;
    }
    std::cout << "shared rig (controller, legacy) ready in " << absl::Now() - start << "\n";
  }

  static absl::Status MakeSharedRig() {
    PGH_ASSIGN_OR_RETURN(std::unique_ptr<MigrationRig> rig,
                         MigrationRig::Create("pghaul-preflight-"));
    rig_ = rig.release();
    RigHostOptions source;
    source.octet = 11;
    source.initdb_args = SourceInitdbArgs();
    source.hostname = kSourceHostname;
    PGH_RETURN_IF_ERROR(rig_->AddHost("legacy", source).status());
    return rig_->RunSqlScript(rig_->Cluster("legacy"),
                              "CREATE TABLE accounts AS SELECT g AS id, md5(g::text) AS note "
                              "FROM generate_series(1, 10000) AS g;\n");
  }

  static void TearDownTestSuite() {
    delete rig_;
    rig_ = nullptr;
    delete setup_error_;
    setup_error_ = nullptr;
  }

  void SetUp() override {
    RequireRoot();
    if (HasFatalFailure()) return;
    ASSERT_EQ(setup_error_, nullptr) << "shared rig: " << *setup_error_;
    ASSERT_NE(rig_, nullptr);
    PGH_ASSERT_OK_AND_ASSIGN(legacy_started_, Legacy().Query("SELECT pg_postmaster_start_time()"));
  }

  void TearDown() override {
    if (rig_ == nullptr) return;
    if (HasFailure()) PrintLogTails(rig_->LogPaths());
    // The other way round from how they were set up: targets before the filesystems they live
    // on, databases before the tablespaces and files they use.
    for (auto undo = cleanups_.rbegin(); undo != cleanups_.rend(); ++undo) (*undo)();
    cleanups_.clear();
  }

  // Runs `undo` in TearDown, after everything registered later.
  void Defer(std::function<void()> undo) { cleanups_.push_back(std::move(undo)); }

  static PgCluster& Legacy() { return rig_->Cluster("legacy"); }

  // A target like the source (same initdb options), its agent in a UTS namespace "<name>.test".
  static RigHostOptions LikeTheSource(const std::string& name) {
    RigHostOptions options;
    options.initdb_args = SourceInitdbArgs();
    options.hostname = absl::StrCat(name, ".test");
    return options;
  }

  // Adds host `name` for this test only (removed in TearDown) and remembers its system
  // identifier for ExpectNothingChanged.
  absl::StatusOr<PgCluster*> AddTarget(const std::string& name, RigHostOptions options) {
    options.octet = next_octet_++;
    const absl::Time start = absl::Now();
    Defer([name] { rig_->RemoveHost(name); });
    PGH_ASSIGN_OR_RETURN(MigrationRig::Host * host, rig_->AddHost(name, options));
    PGH_ASSIGN_OR_RETURN(target_ids_[name], host->cluster->Query(kSystemIdentifierQuery));
    std::cout << "target " << name << " (" << absl::StrJoin(options.initdb_args, " ")
              << ") ready in " << absl::Now() - start << "\n";
    return host->cluster.get();
  }

  // Runs `sql` on the source now and `undo_sql` in TearDown.
  absl::Status OnSource(const std::string& sql, const std::string& undo_sql,
                        const std::string& database = "postgres") {
    Defer([undo_sql] {
      absl::Status undone = rig_->RunSqlScript(Legacy(), undo_sql);
      if (!undone.ok()) ADD_FAILURE() << "cleanup on the source: " << undone;
    });
    return rig_->RunSqlScript(Legacy(), sql, database);
  }

  // Applies `spec`, runs `pghaul preflight`, and reads the checks back.
  absl::StatusOr<PreflightOutcome> Preflight(const PlanSpec& spec) {
    PGH_RETURN_IF_ERROR(rig_->ApplyPlan(spec));
    const absl::Time start = absl::Now();
    PGH_ASSIGN_OR_RETURN(CommandResult run,
                         rig_->Cli({"preflight", spec.name}, absl::Seconds(120)));
    std::cout << "preflight " << spec.name << " took " << absl::Now() - start << "\n";
    PreflightOutcome outcome;
    outcome.exit_code = run.exit_code;
    outcome.output = run.stdout_text + run.stderr_text;
    PGH_ASSIGN_OR_RETURN(json status, rig_->Status(spec.name));
    outcome.state = Str(status, "state");
    const json checks = At(status, "preflight");
    if (!checks.is_array()) {
      return absl::DataLossError(absl::StrCat("no preflight checks in ", status.dump()));
    }
    outcome.checks.assign(checks.begin(), checks.end());
    std::cout << outcome.Describe();
    return outcome;
  }

  // Asserts one check's status and both sides' values; a warn or fail must say how to fix it.
  static void ExpectCheck(const PreflightOutcome& outcome, absl::string_view name,
                          absl::string_view status, absl::string_view source,
                          absl::string_view target) {
    const json* check = outcome.Find(name);
    ASSERT_NE(check, nullptr) << "no check " << name << "\n" << outcome.Describe();
    EXPECT_EQ(Field(*check, "status"), status) << check->dump(2);
    EXPECT_EQ(Field(*check, "source"), source) << check->dump(2);
    EXPECT_EQ(Field(*check, "target"), target) << check->dump(2);
    EXPECT_NE(Field(*check, "message"), "") << check->dump(2);
    if (status != "pass") {
      EXPECT_NE(Field(*check, "fix"), "") << check->dump(2);
    }
  }

  static std::string Message(const PreflightOutcome& outcome, absl::string_view name) {
    const json* check = outcome.Find(name);
    return check == nullptr ? "" : Field(*check, "message");
  }
  static std::string Fix(const PreflightOutcome& outcome, absl::string_view name) {
    const json* check = outcome.Find(name);
    return check == nullptr ? "" : Field(*check, "fix");
  }

  // A failed preflight: exit 1, the migration failed, and exactly `expected` (name -> status)
  // did not pass. The source's archive_mode is off, which prepare-source would turn on with the
  // restart the plan allows: that warning is in every expectation.
  static void ExpectRefused(const PreflightOutcome& outcome,
                            std::map<std::string, std::string> expected) {
    expected.emplace("source-archiving", "warn");
    EXPECT_EQ(outcome.exit_code, kExitFailed) << outcome.output;
    EXPECT_EQ(outcome.state, "failed");
    EXPECT_EQ(outcome.NotPassing(), expected) << outcome.Describe();
  }
  static void ExpectAccepted(const PreflightOutcome& outcome,
                             std::map<std::string, std::string> expected) {
    expected.emplace("source-archiving", "warn");
    EXPECT_EQ(outcome.exit_code, 0) << outcome.output << outcome.Describe();
    EXPECT_EQ(outcome.state, "ready");
    EXPECT_EQ(outcome.NotPassing(), expected) << outcome.Describe();
  }

  // Preflight changed nothing: the source runs since before the test and does not archive or
  // fence, the repository is empty, and each target is still the cluster it was.
  void ExpectNothingChanged() {
    EXPECT_EQ(Legacy().Query("SELECT pg_postmaster_start_time()").value_or("?"), legacy_started_)
        << "the source was restarted";
    EXPECT_EQ(Legacy().Query("SHOW archive_mode").value_or("?"), "off");
    EXPECT_EQ(Legacy().Query("SHOW default_transaction_read_only").value_or("?"), "off");
    std::vector<std::string> entries;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(rig_->repo_path())) {
      entries.push_back(entry.path().string());
    }
    EXPECT_TRUE(entries.empty()) << "the repository holds " << absl::StrJoin(entries, ", ");
    for (const auto& [name, id] : target_ids_) {
      EXPECT_EQ(rig_->Cluster(name).Query(kSystemIdentifierQuery).value_or("?"), id)
          << "target " << name << " is not the cluster it was";
    }
  }

  static MigrationRig* rig_;
  static std::string* setup_error_;
  static int next_octet_;

  std::string legacy_started_;
  std::map<std::string, std::string> target_ids_;  // target host -> system identifier
  std::vector<std::function<void()>> cleanups_;
};

MigrationRig* PreflightTest::rig_ = nullptr;
std::string* PreflightTest::setup_error_ = nullptr;
int PreflightTest::next_octet_ = 20;

TEST_F(PreflightTest, IdenticalClustersPassWithOnlyTheArchivingRestartWarning) {
  PGH_ASSERT_OK(AddTarget("twin", LikeTheSource("twin")).status());
  PGH_ASSERT_OK_AND_ASSIGN(PreflightOutcome outcome,
                           Preflight(rig_->PosixPlan("identical", "twin")));
  ExpectAccepted(outcome, {});
  EXPECT_EQ(outcome.checks.size(), 29u) << "every documented check, every time";
  ExpectCheck(outcome, "source-archiving", "warn", "archive_mode=off", "");
  ExpectCheck(outcome, "data-checksums", "pass", "on", "on");
  ExpectCheck(outcome, "wal-segment-size", "pass", "16 MiB", "16 MiB");
  ExpectCheck(outcome, "lc-collate", "pass", "C.UTF-8", "C.UTF-8");
  ExpectCheck(outcome, "pgbackrest-version", "pass", "2.45", "2.45");
  ExpectCheck(outcome, "stanza", "pass", "status 1 (missing stanza path)", "");
  ExpectNothingChanged();
}

TEST_F(PreflightTest, TargetWithAnotherWalSegmentSizeFails) {
  RigHostOptions target = LikeTheSource("wal32");
  target.initdb_args.emplace_back("--wal-segsize=32");
  PGH_ASSERT_OK(AddTarget("wal32", target).status());
  PGH_ASSERT_OK_AND_ASSIGN(PreflightOutcome outcome,
                           Preflight(rig_->PosixPlan("wal-segment-size", "wal32")));
  ExpectRefused(outcome, {{"wal-segment-size", "fail"}});
  ExpectCheck(outcome, "wal-segment-size", "fail", "16 MiB", "32 MiB");
  EXPECT_THAT(Fix(outcome, "wal-segment-size"), HasSubstr("initdb --wal-segsize=16"));
  ExpectNothingChanged();
}

// docs/preflight.md: a warning, not a failure, since the restored cluster keeps the source's
// pg_control and so its checksums.
TEST_F(PreflightTest, SourceWithDataChecksumsAndTargetWithoutWarns) {
  RigHostOptions target = LikeTheSource("nosums");
  target.initdb_args = {"--encoding=UTF8", "--locale=C.UTF-8"};
  PGH_ASSERT_OK(AddTarget("nosums", target).status());
  PGH_ASSERT_OK_AND_ASSIGN(PreflightOutcome outcome,
                           Preflight(rig_->PosixPlan("data-checksums", "nosums")));
  ExpectAccepted(outcome, {{"data-checksums", "warn"}});
  ExpectCheck(outcome, "data-checksums", "warn", "on", "off");
  EXPECT_THAT(Message(outcome, "data-checksums"), HasSubstr("keeps the source's setting"));
  ExpectNothingChanged();
}

// Encoding only warns (each database keeps its own in the copied catalogue); the locale fails.
TEST_F(PreflightTest, TargetWithAnotherEncodingAndLocaleFailsOnTheLocale) {
  RigHostOptions target = LikeTheSource("ascii");
  target.initdb_args = {"--data-checksums", "--encoding=SQL_ASCII", "--locale=C"};
  PGH_ASSERT_OK(AddTarget("ascii", target).status());
  PGH_ASSERT_OK_AND_ASSIGN(PreflightOutcome outcome,
                           Preflight(rig_->PosixPlan("encoding-locale", "ascii")));
  ExpectRefused(outcome, {{"encoding", "warn"}, {"lc-collate", "fail"}, {"lc-ctype", "fail"}});
  ExpectCheck(outcome, "encoding", "warn", "UTF8", "SQL_ASCII");
  ExpectCheck(outcome, "lc-collate", "fail", "C.UTF-8", "C");
  ExpectCheck(outcome, "lc-ctype", "fail", "C.UTF-8", "C");
  EXPECT_THAT(Fix(outcome, "lc-collate"), HasSubstr("--locale=C.UTF-8"));
  ExpectNothingChanged();
}

// The sum of the source's databases as the agent reports it (pg_database_size of every
// database that accepts connections).
absl::StatusOr<uint64_t> DatabaseBytes(const PgCluster& cluster) {
  PGH_ASSIGN_OR_RETURN(std::string text,
                       cluster.Query("SELECT sum(pg_database_size(oid)) FROM pg_database "
                                     "WHERE datallowconn"));
  uint64_t bytes = 0;
  if (!absl::SimpleAtoi(text, &bytes)) return absl::InternalError("not a size: " + text);
  return bytes;
}

// The target's data directory on a tmpfs of its own, sized so that the source fits with 48 MiB
// to spare by preflight's rule (source x 1.2 + 1 GiB); then ~130 MiB more data on the source
// (pgbench -s 10) makes it too small.
TEST_F(PreflightTest, TargetFilesystemTooSmallForTheSourceFails) {
  PGH_ASSERT_OK_AND_ASSIGN(std::string mount_point, rig_->dir().MakeSubdir("small-disk", "", 0755));
  PGH_ASSERT_OK(RunChecked({"/usr/bin/mount", "-t", "tmpfs", "-o", "size=2g,mode=0755",
                            "pghaul-preflight", mount_point})
                    .status());
  Defer([mount_point] {
    absl::Status unmounted = RunChecked({"/usr/bin/umount", mount_point}).status();
    if (!unmounted.ok()) ADD_FAILURE() << "cannot unmount " << mount_point << ": " << unmounted;
  });
  RigHostOptions options = LikeTheSource("small");
  options.parent_dir = mount_point;
  PGH_ASSERT_OK_AND_ASSIGN(PgCluster * small, AddTarget("small", options));

  // available = free space + the target's own databases (the restore replaces them).
  PGH_ASSERT_OK_AND_ASSIGN(uint64_t source_bytes, DatabaseBytes(Legacy()));
  PGH_ASSERT_OK_AND_ASSIGN(uint64_t target_bytes, DatabaseBytes(*small));
  struct statvfs fs;
  ASSERT_EQ(statvfs(mount_point.c_str(), &fs), 0);
  const uint64_t used = (fs.f_blocks - fs.f_bavail) * fs.f_frsize;
  const uint64_t needed =
      static_cast<uint64_t>(std::ceil(static_cast<double>(source_bytes) * 1.2)) + kGiB;
  const uint64_t size_mib = (needed + used - target_bytes) / kMiB + 48;
  PGH_ASSERT_OK(RunChecked({"/usr/bin/mount", "-o", absl::StrCat("remount,size=", size_mib, "m"),
                            mount_point})
                    .status());
  std::cout << "source " << source_bytes / kMiB << " MiB, target filesystem " << size_mib
            << " MiB\n";

  PGH_ASSERT_OK_AND_ASSIGN(PreflightOutcome fits, Preflight(rig_->PosixPlan("disk-fits", "small")));
  ExpectAccepted(fits, {});

  PGH_ASSERT_OK(
      OnSource("CREATE DATABASE bulk;\n", "DROP DATABASE IF EXISTS bulk WITH (FORCE);\n"));
  CommandOptions as_postgres;
  as_postgres.launch.run_as = kPostgresOsUser;
  as_postgres.timeout = absl::Seconds(300);
  const absl::Time start = absl::Now();
  PGH_ASSERT_OK(RunChecked({absl::StrCat(kPostgresBinDir, "/pgbench"), "-i", "-q", "-I", "dtg",
                            "-s", "10", "-h", Legacy().socket_dir(), "-p",
                            absl::StrCat(Legacy().port()), "-U", "postgres", "bulk"},
                           as_postgres)
                    .status());
  PGH_ASSERT_OK_AND_ASSIGN(uint64_t grown_bytes, DatabaseBytes(Legacy()));
  std::cout << "pgbench -s 10 loaded in " << absl::Now() - start << ": source "
            << grown_bytes / kMiB << " MiB\n";

  PGH_ASSERT_OK_AND_ASSIGN(PreflightOutcome refused,
                           Preflight(rig_->PosixPlan("disk-too-small", "small")));
  ExpectRefused(refused, {{"target-disk", "fail"}});
  const json* check = refused.Find("target-disk");
  ASSERT_NE(check, nullptr);
  EXPECT_THAT(Field(*check, "source"), HasSubstr("of databases"));
  EXPECT_THAT(Field(*check, "target"), HasSubstr("free + "));
  EXPECT_THAT(Field(*check, "target"), HasSubstr("of the current cluster"));
  EXPECT_THAT(Field(*check, "message"),
              HasSubstr(absl::StrCat("filesystem of ", small->data_dir())));
  EXPECT_THAT(Field(*check, "fix"), HasSubstr("free or add at least"));
  ExpectNothingChanged();
}

// An extension of the test's own (a control file and a script in the extension directory both
// "hosts" share): while its files are there the target host provides it, so the source's
// CREATE EXTENSION is no obstacle; once they are gone the target lacks it. The source keeps it
// in its catalogue, as a source with the package installed would.
TEST_F(PreflightTest, ExtensionWhoseFilesAreAbsentOnTheTargetHostFails) {
  const std::string name = absl::StrCat("pghaul_probe_", getpid());
  const std::string control = absl::StrCat(kExtensionDir, "/", name, ".control");
  const std::string script = absl::StrCat(kExtensionDir, "/", name, "--1.0.sql");
  Defer([control, script] {
    std::error_code ignored;
    std::filesystem::remove(control, ignored);
    std::filesystem::remove(script, ignored);
  });
  PGH_ASSERT_OK(WriteFile(control,
                          "comment = 'pghaul preflight test'\n"
                          "default_version = '1.0'\nrelocatable = true\n"));
  PGH_ASSERT_OK(WriteFile(script, absl::StrCat("CREATE FUNCTION ", name,
                                               "() RETURNS int LANGUAGE sql AS 'SELECT 1';\n")));
  for (const std::string& path : {control, script}) {
    std::filesystem::permissions(
        path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                  std::filesystem::perms::group_read | std::filesystem::perms::others_read);
  }
  PGH_ASSERT_OK(
      OnSource("CREATE DATABASE extdb;\n", "DROP DATABASE IF EXISTS extdb WITH (FORCE);\n"));
  PGH_ASSERT_OK(
      rig_->RunSqlScript(Legacy(), absl::StrCat("CREATE EXTENSION ", name, ";\n"), "extdb"));
  PGH_ASSERT_OK(AddTarget("ext", LikeTheSource("ext")).status());

  PGH_ASSERT_OK_AND_ASSIGN(PreflightOutcome provided,
                           Preflight(rig_->PosixPlan("extension-provided", "ext")));
  ExpectAccepted(provided, {});
  ExpectCheck(provided, "extensions", "pass", absl::StrCat(name, " 1.0, plpgsql 1.0"),
              absl::StrCat("plpgsql 1.0, ", name, " 1.0 (installable)"));

  ASSERT_TRUE(std::filesystem::remove(control));
  ASSERT_TRUE(std::filesystem::remove(script));
  PGH_ASSERT_OK_AND_ASSIGN(PreflightOutcome refused,
                           Preflight(rig_->PosixPlan("extension-absent", "ext")));
  ExpectRefused(refused, {{"extensions", "fail"}});
  ExpectCheck(refused, "extensions", "fail", absl::StrCat(name, " 1.0, plpgsql 1.0"),
              "plpgsql 1.0");
  EXPECT_THAT(Message(refused, "extensions"),
              HasSubstr(absl::StrCat("missing on the target: ", name, " 1.0 (in extdb)")));
  EXPECT_THAT(Fix(refused, "extensions"), HasSubstr("install the packages"));
  ExpectNothingChanged();
}

// A tablespace at a path of its own. A target agent that reports the source's host name is on
// the source's host, and the restore would write into the source's tablespace directory: a
// failure. A target on another host gets a warning naming the path to prepare: the target's
// facts say nothing about paths the source uses, so whether it exists there is not checked.
TEST_F(PreflightTest, SourceTablespaceFailsOnTheSameHostAndIsNamedForAnotherHost) {
  PGH_ASSERT_OK_AND_ASSIGN(std::string location,
                           rig_->dir().MakeSubdir("tablespaces/fast", kPostgresOsUser, 0700));
  PGH_ASSERT_OK(OnSource(absl::StrCat("CREATE TABLESPACE fast LOCATION '", location,
                                      "';\nCREATE TABLE hot (id int) TABLESPACE fast;\n"
                                      "INSERT INTO hot SELECT generate_series(1, 100);\n"),
                         "DROP TABLE IF EXISTS hot;\nDROP TABLESPACE IF EXISTS fast;\n"));
  RigHostOptions same_host = LikeTheSource("beside");
  same_host.hostname = kSourceHostname;
  PGH_ASSERT_OK(AddTarget("beside", same_host).status());
  PGH_ASSERT_OK(AddTarget("faraway", LikeTheSource("faraway")).status());
  const std::string source_value = absl::StrCat("fast at ", location);

  PGH_ASSERT_OK_AND_ASSIGN(PreflightOutcome beside,
                           Preflight(rig_->PosixPlan("tablespace-same-host", "beside")));
  ExpectRefused(beside, {{"tablespaces", "fail"}});
  ExpectCheck(beside, "tablespaces", "fail", source_value, "none");
  EXPECT_THAT(Message(beside, "tablespaces"), HasSubstr(kSourceHostname));
  EXPECT_THAT(Message(beside, "tablespaces"), HasSubstr("source's own tablespace directories"));
  // Two clusters on one host in two data directories are still distinct clusters.
  ExpectCheck(beside, "distinct-clusters", "pass",
              absl::StrCat(kSourceHostname, ":", Legacy().data_dir(), " (system id ",
                           Legacy().Query(kSystemIdentifierQuery).value_or("?"), ")"),
              absl::StrCat(kSourceHostname, ":", rig_->Cluster("beside").data_dir(), " (system id ",
                           target_ids_["beside"], ")"));

  PGH_ASSERT_OK_AND_ASSIGN(PreflightOutcome faraway,
                           Preflight(rig_->PosixPlan("tablespace-other-host", "faraway")));
  ExpectAccepted(faraway, {{"tablespaces", "warn"}});
  ExpectCheck(faraway, "tablespaces", "warn", source_value, "none");
  EXPECT_THAT(Message(faraway, "tablespaces"), HasSubstr(location));
  EXPECT_THAT(Fix(faraway, "tablespaces"), HasSubstr("create each path"));
  ExpectNothingChanged();
}

// A repository directory the postgres user may not even search: the agent cannot resolve the
// path to confine it to its roots (agent/path_confinement.h), so it refuses to configure the
// migration, and preflight fails at once, naming the path and what to fix.
TEST_F(PreflightTest, RepositoryThePostgresUserCannotReadFailsPreflight) {
  PGH_ASSERT_OK_AND_ASSIGN(std::string locked, rig_->dir().MakeSubdir("backups/locked", "", 0700));
  PGH_ASSERT_OK(AddTarget("locked", LikeTheSource("locked")).status());
  PlanSpec spec = rig_->PosixPlan("repository-unreadable", "locked");
  spec.repository = absl::StrCat("  posix: {path: \"", locked, "/repo\"}\n");
  PGH_ASSERT_OK_AND_ASSIGN(PreflightOutcome outcome, Preflight(spec));
  EXPECT_NE(outcome.exit_code, 0);
  EXPECT_EQ(outcome.state, "failed");
  EXPECT_THAT(outcome.output, HasSubstr(absl::StrCat("cannot resolve '", locked, "/repo'")));
  EXPECT_THAT(outcome.output, HasSubstr("Permission denied"));
  EXPECT_THAT(outcome.output, HasSubstr("must be able to search every directory above it"));
  EXPECT_FALSE(std::filesystem::exists(absl::StrCat(locked, "/repo")));
  ExpectNothingChanged();
}

// A repository path below a directory that postgres may read but not write: pgbackrest info
// only reads and reports "missing stanza path" (status 1), so the source agent probes whether
// it may write the path (or its nearest existing parent) when it runs info.
TEST_F(PreflightTest, RepositoryThePostgresUserCannotWriteFailsPreflight) {
  PGH_ASSERT_OK_AND_ASSIGN(std::string read_only,
                           rig_->dir().MakeSubdir("backups/read-only", "", 0755));
  PGH_ASSERT_OK(AddTarget("readonly", LikeTheSource("readonly")).status());
  PlanSpec spec = rig_->PosixPlan("repository-read-only", "readonly");
  spec.repository = absl::StrCat("  posix: {path: \"", read_only, "/repo\"}\n");
  PGH_ASSERT_OK_AND_ASSIGN(PreflightOutcome outcome, Preflight(spec));
  ExpectRefused(outcome, {{"stanza", "fail"}});
  EXPECT_THAT(Message(outcome, "stanza"), HasSubstr(read_only));
  ExpectNothingChanged();
}

// pgBackRest 2.40 on the target, as a wrapper reports it (it runs the real 2.45 for anything
// but `version`): a repository written by 2.45 cannot be read by 2.40.
TEST_F(PreflightTest, OlderPgBackRestOnTheTargetFails) {
  PGH_ASSERT_OK_AND_ASSIGN(std::string bin, rig_->dir().MakeSubdir("bin", "", 0755));
  const std::string wrapper = absl::StrCat(bin, "/pgbackrest-2.40");
  PGH_ASSERT_OK(WriteFile(wrapper,
                          "#!/bin/sh\n"
                          "# pghaul preflight_test: an older pgBackRest, by its version only\n"
                          "if [ \"$1\" = version ]; then echo 'pgBackRest 2.40'; exit 0; fi\n"
                          "exec /usr/bin/pgbackrest \"$@\"\n"));
  std::filesystem::permissions(
      wrapper, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                   std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                   std::filesystem::perms::others_exec);
  RigHostOptions target = LikeTheSource("old-backrest");
  target.pgbackrest_binary = wrapper;
  PGH_ASSERT_OK(AddTarget("old-backrest", target).status());
  PGH_ASSERT_OK_AND_ASSIGN(PreflightOutcome outcome,
                           Preflight(rig_->PosixPlan("pgbackrest-version", "old-backrest")));
  ExpectRefused(outcome, {{"pgbackrest-version", "fail"}});
  ExpectCheck(outcome, "pgbackrest-present", "pass", "2.45", "2.40");
  ExpectCheck(outcome, "pgbackrest-version", "fail", "2.45", "2.40");
  EXPECT_THAT(Message(outcome, "pgbackrest-version"), HasSubstr("older than the source's"));
  EXPECT_THAT(Fix(outcome, "pgbackrest-version"), HasSubstr("to 2.45 or later"));
  ExpectNothingChanged();
}

}  // namespace
}  // namespace pghaul::integration
