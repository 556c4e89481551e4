#include "controller/preflight_checks.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "common/files.h"
#include "common/time_proto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::controller {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr uint64_t kMiB = uint64_t{1} << 20;
// The system identifier in the captured pgbackrest info outputs.
constexpr uint64_t kCapturedSystemId = 7712487103392237449u;

// Real `pgbackrest info --output=json` outputs of pgBackRest 2.45, stanza "s1"
// (testdata/pgbackrest/README.md says how each was made).
std::string InfoJson(const std::string& name) {
  std::string here = __FILE__;
  std::string dir = here.substr(0, here.rfind('/'));
  absl::StatusOr<std::string> text = ReadFile(absl::StrCat(dir, "/testdata/pgbackrest/", name));
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? *text : "";
}

v1::HostFacts HealthyFacts(const std::string& hostname, uint64_t system_id) {
  v1::HostFacts facts;
  facts.set_hostname(hostname);
  facts.set_os("Debian GNU/Linux 12 (bookworm)");
  facts.set_kernel("6.1.0-18-amd64");
  facts.set_architecture("x86_64");
  facts.set_libc_version("2.36");
  facts.set_data_directory("/var/lib/postgresql/15/main");
  facts.set_data_dir_free_bytes(100 * kGiB);
  facts.set_data_dir_total_bytes(200 * kGiB);
  facts.set_pgbackrest_version("2.45");
  *facts.mutable_gathered_at() = ToProto(absl::FromUnixSeconds(1795703362));
  v1::PostgresFacts& pg = *facts.mutable_postgres();
  pg.set_reachable(true);
  pg.set_server_version_num(150018);
  pg.set_server_version("15.18 (Debian 15.18-0+deb12u1)");
  pg.set_system_identifier(system_id);
  pg.set_data_directory("/var/lib/postgresql/15/main");
  pg.set_block_size(8192);
  pg.set_wal_segment_size(16 * kMiB);
  pg.set_data_checksums(true);
  pg.set_encoding("UTF8");
  pg.set_lc_collate("en_US.UTF-8");
  pg.set_lc_ctype("en_US.UTF-8");
  auto add_extension = [&pg](const std::string& db, const std::string& name,
                             const std::string& version) {
    v1::Extension* e = pg.add_extensions();
    e->set_database(db);
    e->set_name(name);
    e->set_version(version);
  };
  add_extension("postgres", "plpgsql", "1.0");
  add_extension("shop", "plpgsql", "1.0");
  add_extension("shop", "pg_stat_statements", "1.10");
  for (const char* name : {"pg_default", "pg_global"}) {
    v1::Tablespace* t = pg.add_tablespaces();
    t->set_name(name);
  }
  pg.set_archive_mode("on");
  pg.set_archive_command("");
  pg.set_in_recovery(false);
  pg.set_current_user("postgres");
  pg.set_is_superuser(true);
  pg.set_database_size_bytes(10 * kGiB);
  pg.set_password_encryption("scram-sha-256");
  pg.set_roles_listed(true);
  pg.set_password_hashes_read(true);
  v1::Role* postgres = pg.add_roles();
  postgres->set_name("postgres");
  postgres->set_superuser(true);
  postgres->set_replication(true);
  postgres->set_can_login(true);
  return facts;
}

class PreflightChecksTest : public ::testing::Test {
 protected:
  PreflightChecksTest() {
    plan_.name = "orders";
    plan_.source_agent = "old-db1";
    plan_.target_agent = "new-db1";
    plan_.target_data_directory = "/var/lib/postgresql/15/main";
    plan_.target_allow_overwrite = true;
    plan_.stanza = "s1";
    input_.plan = &plan_;
    input_.source = HealthyFacts("old-db1.example", kCapturedSystemId);
    input_.target = HealthyFacts("new-db1.example", 7712999000111222333u);
    input_.target.mutable_postgres()->set_database_size_bytes(30 * kMiB);
    input_.source_agent = "old-db1";
    input_.target_agent = "new-db1";
    input_.source_online = true;
    input_.target_online = true;
    input_.stanza_info_json = InfoJson("info-missing-stanza-path.json");
    input_.stanza_status_code = 1;
  }

  v1::PostgresFacts& SourcePg() { return *input_.source.mutable_postgres(); }
  v1::PostgresFacts& TargetPg() { return *input_.target.mutable_postgres(); }

  // Runs every check and returns the one named `name`.
  v1::CheckResult Run(const std::string& name) {
    results_ = RunPreflightChecks(input_);
    for (const v1::CheckResult& result : results_) {
      if (result.name() == name) return result;
    }
    ADD_FAILURE() << "no check named " << name;
    return {};
  }

  std::vector<std::string> NotPassing() {
    std::vector<std::string> names;
    for (const v1::CheckResult& result : RunPreflightChecks(input_)) {
      if (result.status() != kCheckPass) {
        names.push_back(absl::StrCat(result.name(), " ", result.status(), ": ", result.message()));
      }
    }
    return names;
  }

  Plan plan_;
  PreflightInput input_;
  std::vector<v1::CheckResult> results_;
};

// Asserts the status, and that warn and fail come with a fix while pass does not.
void ExpectStatus(const v1::CheckResult& result, const std::string& status) {
  EXPECT_EQ(result.status(), status) << result.name() << ": " << result.message();
  if (status == kCheckPass) {
    EXPECT_THAT(result.fix(), IsEmpty()) << result.name();
  } else {
    EXPECT_THAT(result.fix(), Not(IsEmpty())) << result.name();
    EXPECT_EQ(result.fix().find('\n'), std::string::npos) << "a fix is one line";
  }
}

TEST_F(PreflightChecksTest, HealthyPairPassesEveryCheckInTheDocumentedOrder) {
  EXPECT_THAT(NotPassing(), IsEmpty());
  std::vector<v1::CheckResult> results = RunPreflightChecks(input_);
  std::vector<std::string> names;
  for (const v1::CheckResult& result : results) names.push_back(result.name());
  EXPECT_THAT(names, ElementsAreArray(PreflightCheckNames()));
  EXPECT_EQ(names.size(), 29u);
  EXPECT_TRUE(PreflightPassed(results));
  EXPECT_EQ(SummarizePreflight(results), "29 pass, 0 warn, 0 fail");
}

TEST_F(PreflightChecksTest, CheckNamesAreKebabCaseAndDocumented) {
  std::string doc;
  {
    std::string here = __FILE__;
    absl::StatusOr<std::string> text =
        ReadFile(absl::StrCat(here.substr(0, here.rfind("/tests/unit/")), "/docs/preflight.md"));
    ASSERT_TRUE(text.ok()) << text.status();
    doc = *text;
  }
  for (const std::string& name : PreflightCheckNames()) {
    for (char c : name) EXPECT_TRUE((c >= 'a' && c <= 'z') || c == '-') << name;
    EXPECT_THAT(doc, HasSubstr(absl::StrCat("### ", name, "\n"))) << name << " is not documented";
  }
}

TEST_F(PreflightChecksTest, AnyFailStopsThePreflightAndIsNamedInTheSummary) {
  input_.target.set_architecture("aarch64");
  std::vector<v1::CheckResult> results = RunPreflightChecks(input_);
  EXPECT_FALSE(PreflightPassed(results));
  EXPECT_EQ(SummarizePreflight(results), "28 pass, 0 warn, 1 fail: architecture");
}

TEST_F(PreflightChecksTest, WarningsDoNotStopThePreflight) {
  TargetPg().set_data_checksums(false);
  std::vector<v1::CheckResult> results = RunPreflightChecks(input_);
  EXPECT_TRUE(PreflightPassed(results));
  EXPECT_EQ(SummarizePreflight(results), "28 pass, 1 warn, 0 fail");
}

TEST_F(PreflightChecksTest, OfflineAgentFailsAndIsNamed) {
  input_.target_online = false;
  v1::CheckResult result = Run("agents-online");
  ExpectStatus(result, kCheckFail);
  EXPECT_EQ(result.source(), "online");
  EXPECT_EQ(result.target(), "offline");
  EXPECT_THAT(result.message(), HasSubstr("target agent 'new-db1' is offline"));
  input_.source_online = false;
  EXPECT_THAT(Run("agents-online").message(), HasSubstr("are offline"));
}

TEST_F(PreflightChecksTest, AgentWithoutFactsFailsAndEveryComparisonSaysNotCompared) {
  input_.target = v1::HostFacts();
  ExpectStatus(Run("facts-reported"), kCheckFail);
  EXPECT_THAT(Run("facts-reported").message(), HasSubstr("target agent 'new-db1'"));
  EXPECT_EQ(Run("facts-reported").target(), "none");
  for (const char* name : {"postgres-major", "architecture", "libc-version", "extensions",
                           "target-disk", "pgbackrest-version", "target-data-directory"}) {
    v1::CheckResult result = Run(name);
    ExpectStatus(result, kCheckWarn);
    EXPECT_THAT(result.message(), HasSubstr("not compared: the target agent 'new-db1' has "
                                            "reported no facts"))
        << name;
  }
  EXPECT_FALSE(PreflightPassed(RunPreflightChecks(input_)));
}

TEST_F(PreflightChecksTest, SameAgentIsTheSameCluster) {
  input_.target_agent = "old-db1";
  v1::CheckResult result = Run("distinct-clusters");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(), HasSubstr("source and target are the same cluster"));
  EXPECT_THAT(result.fix(), HasSubstr("target.agent"));
}

TEST_F(PreflightChecksTest, SameHostDirectoryAndSystemIdIsTheSameCluster) {
  input_.target = input_.source;
  input_.target.set_data_directory("/var/lib/postgresql/15/main/");  // spelt differently
  v1::CheckResult result = Run("distinct-clusters");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(), HasSubstr("source and target are the same cluster: same host"));
}

TEST_F(PreflightChecksTest, SameHostAndDirectoryWithUnknownTargetIdentifierWarns) {
  input_.target.set_hostname(input_.source.hostname());
  TargetPg().set_system_identifier(0);
  ExpectStatus(Run("distinct-clusters"), kCheckWarn);
}

TEST_F(PreflightChecksTest, RestoredCopyOnAnotherHostIsADistinctCluster) {
  TargetPg().set_system_identifier(kCapturedSystemId);
  v1::CheckResult result = Run("distinct-clusters");
  ExpectStatus(result, kCheckPass);
  EXPECT_THAT(result.message(), HasSubstr("already holds a copy of the source"));
  // Another cluster on the same host, in another directory, is distinct too.
  input_.target.set_hostname(input_.source.hostname());
  input_.target.set_data_directory("/srv/pg/new");
  ExpectStatus(Run("distinct-clusters"), kCheckPass);
}

TEST_F(PreflightChecksTest, UnreachableSourceFailsWithTheServersError) {
  SourcePg().Clear();
  SourcePg().set_error("connection to server on socket \"/run/postgresql/.s.PGSQL.5432\" failed");
  v1::CheckResult result = Run("source-reachable");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(), HasSubstr(".s.PGSQL.5432"));
  EXPECT_THAT(result.fix(), HasSubstr("start the source's PostgreSQL"));
  v1::CheckResult archiving = Run("source-archiving");
  ExpectStatus(archiving, kCheckWarn);
  EXPECT_THAT(archiving.message(), HasSubstr("not compared: the source's PostgreSQL is not"));
}

TEST_F(PreflightChecksTest, UnreachableTargetFailsBecauseNothingCanBeCompared) {
  TargetPg().Clear();
  TargetPg().set_error("connection refused");
  v1::CheckResult result = Run("target-reachable");
  ExpectStatus(result, kCheckFail);
  EXPECT_EQ(result.target(), "not reachable");
  EXPECT_THAT(result.fix(), HasSubstr("start the target's PostgreSQL"));
  ExpectStatus(Run("postgres-major"), kCheckWarn);
  ExpectStatus(Run("extensions"), kCheckWarn);
  // Host facts still compare.
  ExpectStatus(Run("architecture"), kCheckPass);
  ExpectStatus(Run("target-data-directory"), kCheckPass);
  EXPECT_THAT(Run("target-data-directory").message(), HasSubstr("server's own setting was not"));
}

TEST_F(PreflightChecksTest, PartlyReadableFactsWarnWithTheProblem) {
  SourcePg().set_error(
      "user 'pghaul' may not read data_directory and archive_command: connect as a superuser "
      "or grant it pg_read_all_settings");
  v1::CheckResult result = Run("source-reachable");
  ExpectStatus(result, kCheckWarn);
  EXPECT_THAT(result.message(), HasSubstr("pg_read_all_settings"));
}

TEST_F(PreflightChecksTest, StandbySourceFails) {
  SourcePg().set_in_recovery(true);
  v1::CheckResult result = Run("source-primary");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(), HasSubstr("the source is a standby"));
}

TEST_F(PreflightChecksTest, AnotherMajorVersionFails) {
  TargetPg().set_server_version_num(160004);
  v1::CheckResult result = Run("postgres-major");
  ExpectStatus(result, kCheckFail);
  EXPECT_EQ(result.source(), "15.18");
  EXPECT_EQ(result.target(), "16.4");
  EXPECT_THAT(result.message(), HasSubstr("major versions differ (15 and 16)"));
  EXPECT_THAT(result.fix(), HasSubstr("run PostgreSQL 15 on the target"));
}

TEST_F(PreflightChecksTest, OlderMinorVersionOnTheTargetWarnsToUpgrade) {
  TargetPg().set_server_version_num(150005);
  v1::CheckResult result = Run("postgres-major");
  ExpectStatus(result, kCheckWarn);
  EXPECT_THAT(result.message(), HasSubstr("older minor release"));
  EXPECT_THAT(result.fix(), HasSubstr("15.18 or later"));
  TargetPg().set_server_version_num(150020);
  result = Run("postgres-major");
  ExpectStatus(result, kCheckWarn);
  EXPECT_THAT(result.message(), HasSubstr("newer minor release"));
}

TEST_F(PreflightChecksTest, UnreadableServerVersionFails) {
  TargetPg().set_server_version_num(0);
  ExpectStatus(Run("postgres-major"), kCheckFail);
}

TEST_F(PreflightChecksTest, AnotherArchitectureFails) {
  input_.target.set_architecture("aarch64");
  v1::CheckResult result = Run("architecture");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(), HasSubstr("byte order"));
  EXPECT_THAT(result.fix(), HasSubstr("x86_64"));
}

TEST_F(PreflightChecksTest, AnotherBlockSizeFails) {
  TargetPg().set_block_size(16384);
  v1::CheckResult result = Run("block-size");
  ExpectStatus(result, kCheckFail);
  EXPECT_EQ(result.source(), "8192");
  EXPECT_EQ(result.target(), "16384");
  EXPECT_THAT(result.fix(), HasSubstr("block size 8192"));
}

TEST_F(PreflightChecksTest, AnotherWalSegmentSizeFailsWithTheInitdbOption) {
  SourcePg().set_wal_segment_size(64 * kMiB);
  v1::CheckResult result = Run("wal-segment-size");
  ExpectStatus(result, kCheckFail);
  EXPECT_EQ(result.source(), "64 MiB");
  EXPECT_EQ(result.target(), "16 MiB");
  EXPECT_THAT(result.message(), HasSubstr("min_wal_size"));
  EXPECT_THAT(result.fix(), HasSubstr("--wal-segsize=64"));
}

TEST_F(PreflightChecksTest, DataChecksumsDifferenceWarnsThatTheSourceSettingWins) {
  SourcePg().set_data_checksums(false);
  v1::CheckResult result = Run("data-checksums");
  ExpectStatus(result, kCheckWarn);
  EXPECT_EQ(result.source(), "off");
  EXPECT_EQ(result.target(), "on");
  EXPECT_THAT(result.message(), HasSubstr("keeps the source's setting"));
  EXPECT_THAT(result.fix(), HasSubstr("pg_checksums --enable"));
}

TEST_F(PreflightChecksTest, EncodingDifferenceWarns) {
  TargetPg().set_encoding("SQL_ASCII");
  v1::CheckResult result = Run("encoding");
  ExpectStatus(result, kCheckWarn);
  EXPECT_THAT(result.fix(), HasSubstr("--encoding=UTF8"));
}

TEST_F(PreflightChecksTest, AnotherLocaleFailsButAnotherSpellingOfItPasses) {
  TargetPg().set_lc_collate("C.UTF-8");
  v1::CheckResult result = Run("lc-collate");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(), HasSubstr("text indexes"));
  EXPECT_THAT(result.fix(), HasSubstr("--locale=en_US.UTF-8"));
  ExpectStatus(Run("lc-ctype"), kCheckPass);

  TargetPg().set_lc_collate("en_US.utf8");
  result = Run("lc-collate");
  ExpectStatus(result, kCheckPass);
  EXPECT_THAT(result.message(), HasSubstr("spelled differently"));
  TargetPg().set_lc_ctype("de_DE.utf8");
  ExpectStatus(Run("lc-ctype"), kCheckFail);
}

TEST_F(PreflightChecksTest, AnotherGlibcFailsBecauseOfTextIndexes) {
  input_.target.set_libc_version("2.31");
  v1::CheckResult result = Run("libc-version");
  ExpectStatus(result, kCheckFail);
  EXPECT_EQ(result.source(), "2.36");
  EXPECT_EQ(result.target(), "2.31");
  EXPECT_THAT(result.message(), HasSubstr("silently corrupts text indexes"));
  EXPECT_THAT(result.fix(), HasSubstr("glibc 2.36"));
}

TEST_F(PreflightChecksTest, ExtensionMissingOnTheTargetFailsNamingItsDatabases) {
  v1::Extension* postgis = SourcePg().add_extensions();
  postgis->set_database("maps");
  postgis->set_name("postgis");
  postgis->set_version("3.3.2");
  v1::CheckResult result = Run("extensions");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(), HasSubstr("missing on the target: postgis 3.3.2 (in maps)"));
  EXPECT_THAT(result.source(), HasSubstr("postgis 3.3.2"));
  EXPECT_THAT(result.target(), Not(HasSubstr("postgis")));
  EXPECT_THAT(result.fix(), HasSubstr("CREATE EXTENSION"));
}

TEST_F(PreflightChecksTest, ExtensionAtAnotherVersionFails) {
  for (v1::Extension& e : *TargetPg().mutable_extensions()) {
    if (e.name() == "pg_stat_statements") e.set_version("1.9");
  }
  v1::CheckResult result = Run("extensions");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(),
              HasSubstr("another version on the target: pg_stat_statements 1.10 (in shop): the "
                        "target has 1.9"));
}

TEST_F(PreflightChecksTest, ExtensionsInOtherTargetDatabasesCount) {
  // The target has each extension in some database, not necessarily the source's one.
  TargetPg().clear_extensions();
  v1::Extension* e = TargetPg().add_extensions();
  e->set_database("postgres");
  e->set_name("pg_stat_statements");
  e->set_version("1.10");
  e = TargetPg().add_extensions();
  e->set_database("template1");
  e->set_name("plpgsql");
  e->set_version("1.0");
  ExpectStatus(Run("extensions"), kCheckPass);
}

// The versions the target host's packages provide (pg_available_extension_versions).
void AddAvailable(v1::PostgresFacts& pg, const std::string& name, const std::string& version) {
  v1::Extension* e = pg.add_available_extensions();
  e->set_name(name);
  e->set_version(version);
}

TEST_F(PreflightChecksTest, ExtensionProvidedByTheTargetsPackagesPassesWithoutCreateExtension) {
  v1::Extension* postgis = SourcePg().add_extensions();
  postgis->set_database("maps");
  postgis->set_name("postgis");
  postgis->set_version("3.3.2");
  AddAvailable(TargetPg(), "plpgsql", "1.0");
  AddAvailable(TargetPg(), "postgis", "3.3.1");
  AddAvailable(TargetPg(), "postgis", "3.3.2");
  v1::CheckResult result = Run("extensions");
  ExpectStatus(result, kCheckPass);
  EXPECT_THAT(result.target(), HasSubstr("postgis 3.3.2 (installable)"));
  EXPECT_THAT(result.message(),
              HasSubstr("provided by the target's packages, not created there yet: postgis 3.3.2"));
}

TEST_F(PreflightChecksTest, ExtensionAbsentFromTheTargetHostFailsWithAPackageFix) {
  v1::Extension* postgis = SourcePg().add_extensions();
  postgis->set_database("maps");
  postgis->set_name("postgis");
  postgis->set_version("3.3.2");
  // The agent reported what the host provides, and postgis is not among it.
  AddAvailable(TargetPg(), "plpgsql", "1.0");
  AddAvailable(TargetPg(), "pg_stat_statements", "1.10");
  v1::CheckResult result = Run("extensions");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(), HasSubstr("missing on the target: postgis 3.3.2 (in maps)"));
  EXPECT_THAT(result.message(), Not(HasSubstr("only those created")));
  EXPECT_THAT(result.fix(), HasSubstr("install the packages that provide"));
  EXPECT_THAT(result.fix(), Not(HasSubstr("CREATE EXTENSION")));
}

TEST_F(PreflightChecksTest, ExtensionProvidedOnlyAtAnotherVersionFails) {
  v1::Extension* postgis = SourcePg().add_extensions();
  postgis->set_database("maps");
  postgis->set_name("postgis");
  postgis->set_version("3.3.2");
  AddAvailable(TargetPg(), "plpgsql", "1.0");
  AddAvailable(TargetPg(), "postgis", "3.1.0");
  v1::CheckResult result = Run("extensions");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(), HasSubstr("another version on the target: postgis 3.3.2 (in "
                                          "maps): the target has 3.1.0"));
}

TEST_F(PreflightChecksTest, TablespacesWarnWithTheirPathsOnAnotherHost) {
  v1::Tablespace* t = SourcePg().add_tablespaces();
  t->set_name("fast");
  t->set_location("/srv/ssd/pg");
  v1::CheckResult result = Run("tablespaces");
  ExpectStatus(result, kCheckWarn);
  EXPECT_EQ(result.source(), "fast at /srv/ssd/pg");
  EXPECT_EQ(result.target(), "none");
  EXPECT_THAT(result.message(), HasSubstr("same path on the target: fast at /srv/ssd/pg"));
  EXPECT_THAT(result.fix(), HasSubstr("owned by the postgres user"));
}

TEST_F(PreflightChecksTest, TablespacesOnTheSameHostFail) {
  v1::Tablespace* t = SourcePg().add_tablespaces();
  t->set_name("fast");
  t->set_location("/srv/ssd/pg");
  input_.target.set_hostname(input_.source.hostname());
  input_.target.set_data_directory("/srv/pg/new");
  v1::CheckResult result = Run("tablespaces");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(), HasSubstr("source's own tablespace directories"));
}

TEST_F(PreflightChecksTest, TargetDiskNeedsTheSourceSizePlusTwentyPercentAndAGiB) {
  // 10 GiB of databases: 12 GiB + 1 GiB = 13 GiB needed; the current cluster's 30 MiB count.
  input_.target.set_data_dir_free_bytes(13 * kGiB - 30 * kMiB);
  v1::CheckResult result = Run("target-disk");
  ExpectStatus(result, kCheckPass);
  EXPECT_EQ(result.source(), "10 GiB of databases");
  EXPECT_THAT(result.target(), HasSubstr("+ 30 MiB of the current cluster"));
  EXPECT_THAT(result.message(), HasSubstr("13 GiB (the source's 10 GiB + 20 % + 1 GiB for WAL)"));

  input_.target.set_data_dir_free_bytes(13 * kGiB - 30 * kMiB - 1);
  result = Run("target-disk");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(), HasSubstr("on the filesystem of /var/lib/postgresql/15/main"));
  EXPECT_THAT(result.fix(), HasSubstr("free or add at least 1 B"));
}

TEST_F(PreflightChecksTest, TargetDiskCountsTheCurrentClusterOnlyWhenItIsThePlansDirectory) {
  input_.target.set_data_dir_free_bytes(13 * kGiB - 30 * kMiB);
  TargetPg().set_data_directory("/srv/other");
  ExpectStatus(Run("target-disk"), kCheckFail);
}

TEST_F(PreflightChecksTest, UnknownFreeSpaceOrSizeWarns) {
  input_.target.set_data_dir_free_bytes(0);
  input_.target.set_disk_error("cannot read the free space of '/var/lib': Permission denied");
  v1::CheckResult result = Run("target-disk");
  ExpectStatus(result, kCheckWarn);
  EXPECT_THAT(result.message(), HasSubstr("Permission denied"));
  input_.target.clear_disk_error();
  SourcePg().set_database_size_bytes(0);
  ExpectStatus(Run("target-disk"), kCheckWarn);
}

TEST_F(PreflightChecksTest, MissingPgBackRestFailsWithTheAgentsError) {
  input_.target.clear_pgbackrest_version();
  input_.target.set_pgbackrest_error("cannot run '/usr/bin/pgbackrest': No such file or directory");
  v1::CheckResult result = Run("pgbackrest-present");
  ExpectStatus(result, kCheckFail);
  EXPECT_EQ(result.target(), "missing");
  EXPECT_THAT(result.message(), HasSubstr("not usable on the target: cannot run"));
  EXPECT_THAT(result.fix(), HasSubstr("apt-get install pgbackrest"));
  ExpectStatus(Run("pgbackrest-version"), kCheckWarn);
}

TEST_F(PreflightChecksTest, OlderPgBackRestOnTheTargetFails) {
  input_.target.set_pgbackrest_version("2.9");  // 2.9 < 2.45: compared as numbers
  v1::CheckResult result = Run("pgbackrest-version");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(), HasSubstr("cannot read a repository written by a newer one"));
  EXPECT_THAT(result.fix(), HasSubstr("2.45 or later"));
}

TEST_F(PreflightChecksTest, NewerPgBackRestOnTheTargetWarns) {
  input_.target.set_pgbackrest_version("2.50");
  ExpectStatus(Run("pgbackrest-version"), kCheckWarn);
}

TEST_F(PreflightChecksTest, PgBackRestVersionsCompareAsNumbers) {
  EXPECT_EQ(ComparePgBackRestVersions("2.45", "2.45"), 0);
  EXPECT_EQ(ComparePgBackRestVersions("2.9", "2.45"), -1);
  EXPECT_EQ(ComparePgBackRestVersions("2.50dev", "2.45"), 1);
  EXPECT_EQ(ComparePgBackRestVersions("2.45", "2.45.0"), 0);
  EXPECT_EQ(ComparePgBackRestVersions("3", "2.99"), 1);
}

TEST_F(PreflightChecksTest, TargetAgentForAnotherDirectoryFails) {
  input_.target.set_data_directory("/srv/pg/15/main");
  v1::CheckResult result = Run("target-data-directory");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(), HasSubstr("the plan restores into /var/lib/postgresql/15/main, "
                                          "but the target agent's data directory is "
                                          "/srv/pg/15/main"));
  EXPECT_THAT(result.fix(), HasSubstr("target.data_directory"));
}

TEST_F(PreflightChecksTest, TargetServerInAnotherDirectoryFails) {
  TargetPg().set_data_directory("/srv/pg/15/main");
  v1::CheckResult result = Run("target-data-directory");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(), HasSubstr("the target's PostgreSQL runs from /srv/pg/15/main"));
}

TEST_F(PreflightChecksTest, TargetAgentWithoutDataDirectoryFails) {
  input_.target.clear_data_directory();
  v1::CheckResult result = Run("target-data-directory");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.fix(), HasSubstr("set data_directory: /var/lib/postgresql/15/main"));
}

TEST_F(PreflightChecksTest, OverwriteNotAllowedFails) {
  plan_.target_allow_overwrite = false;
  v1::CheckResult result = Run("target-overwrite");
  ExpectStatus(result, kCheckFail);
  EXPECT_EQ(result.target(), "allow_overwrite: false");
  EXPECT_THAT(result.message(), HasSubstr("replaces everything in /var/lib/postgresql/15/main"));
  EXPECT_THAT(result.fix(), HasSubstr("set target.allow_overwrite: true"));
}

TEST_F(PreflightChecksTest, ArchivingOffWithoutRestartConsentFails) {
  SourcePg().set_archive_mode("off");
  SourcePg().set_archive_command("(disabled)");
  plan_.source_restart_allowed = false;
  v1::CheckResult result = Run("source-archiving");
  ExpectStatus(result, kCheckFail);
  EXPECT_EQ(result.source(), "archive_mode=off");
  EXPECT_THAT(result.message(), HasSubstr("needs a restart, which the plan does not allow"));
  EXPECT_THAT(result.fix(), HasSubstr("source_restart_allowed: true"));
}

TEST_F(PreflightChecksTest, ArchivingOffWithRestartConsentWarnsOfTheRestart) {
  SourcePg().set_archive_mode("off");
  plan_.source_restart_allowed = true;
  v1::CheckResult result = Run("source-archiving");
  ExpectStatus(result, kCheckWarn);
  EXPECT_THAT(result.message(), HasSubstr("will restart the source"));
}

TEST_F(PreflightChecksTest, ForeignArchiveCommandWarnsThatItIsReplaced) {
  SourcePg().set_archive_command("cp %p /mnt/wal/%f");
  v1::CheckResult result = Run("source-archiving");
  ExpectStatus(result, kCheckWarn);
  EXPECT_THAT(result.message(), HasSubstr("a command of its own"));
  EXPECT_THAT(result.source(), HasSubstr("archive_command=cp %p /mnt/wal/%f"));

  SourcePg().set_archive_command("pgbackrest --stanza=main archive-push %p");
  result = Run("source-archiving");
  ExpectStatus(result, kCheckWarn);
  EXPECT_THAT(result.message(), HasSubstr("not into stanza 's1'"));

  // A stanza whose name starts with the plan's is another stanza.
  SourcePg().set_archive_command("pgbackrest --stanza=s10 archive-push %p");
  ExpectStatus(Run("source-archiving"), kCheckWarn);
}

TEST_F(PreflightChecksTest, ArchivingIntoThePlansStanzaPasses) {
  SourcePg().set_archive_command(
      "/usr/bin/pgbackrest --config=/var/lib/pghaul/pgbackrest/orders/pgbackrest.conf "
      "--stanza=s1 archive-push %p");
  v1::CheckResult result = Run("source-archiving");
  ExpectStatus(result, kCheckPass);
  EXPECT_THAT(result.message(), HasSubstr("already archives into stanza 's1'"));
  SourcePg().set_archive_mode("always");
  ExpectStatus(Run("source-archiving"), kCheckPass);
}

TEST_F(PreflightChecksTest, NonSuperuserRolesWarnWithWhatIsNeeded) {
  SourcePg().set_is_superuser(false);
  SourcePg().set_current_user("pghaul");
  v1::CheckResult result = Run("source-role");
  ExpectStatus(result, kCheckWarn);
  EXPECT_THAT(result.message(), AllOf(HasSubstr("role 'pghaul' is not a superuser"),
                                      HasSubstr("ALTER SYSTEM"), HasSubstr("pg_switch_wal()")));
  v1::CheckResult target = Run("target-role");
  ExpectStatus(target, kCheckWarn);
  EXPECT_THAT(target.message(), HasSubstr("role 'postgres' that the target agent connects as "
                                          "must exist on the source"));
}

TEST_F(PreflightChecksTest, MissingStanzaPassesAsToBeCreated) {
  v1::CheckResult result = Run("stanza");
  ExpectStatus(result, kCheckPass);
  EXPECT_EQ(result.source(), "status 1 (missing stanza path)");
  EXPECT_THAT(result.message(), HasSubstr("does not exist yet: prepare-source creates it"));
}

TEST_F(PreflightChecksTest, StanzaOfTheSourceWithBackupsPasses) {
  input_.stanza_info_json = InfoJson("info-ok-full-and-diff.json");
  input_.stanza_status_code = 0;
  v1::CheckResult result = Run("stanza");
  ExpectStatus(result, kCheckPass);
  EXPECT_EQ(result.source(), "status 0 (ok), system id 7712487103392237449");
  EXPECT_THAT(result.message(), HasSubstr("holds the source's backups (2 backups)"));

  input_.stanza_info_json = InfoJson("info-no-valid-backups.json");
  result = Run("stanza");
  ExpectStatus(result, kCheckPass);
  EXPECT_THAT(result.message(), HasSubstr("with no valid backup yet"));
}

TEST_F(PreflightChecksTest, StanzaOfAnotherClusterFails) {
  input_.stanza_info_json = InfoJson("info-ok-one-full-backup.json");
  SourcePg().set_system_identifier(7712999000111222333u);
  v1::CheckResult result = Run("stanza");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(),
              HasSubstr("holds another cluster's backups (system identifier 7712487103392237449; "
                        "the source's is 7712999000111222333)"));
  EXPECT_THAT(result.fix(), HasSubstr("choose another stanza name"));
}

TEST_F(PreflightChecksTest, StanzaOfAnotherMajorVersionFails) {
  input_.stanza_info_json = absl::StrReplaceAll(InfoJson("info-no-valid-backups.json"),
                                                {{"\"version\":\"15\"", "\"version\":\"14\""}});
  v1::CheckResult result = Run("stanza");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(), HasSubstr("was made for PostgreSQL 14"));
}

TEST_F(PreflightChecksTest, StanzaWhoseCurrentClusterIsTheSourceAfterAnUpgradePasses) {
  // db entries are history: the one with the highest id is the stanza's current cluster.
  input_.stanza_info_json = absl::StrCat(
      R"([{"name":"s1","status":{"code":2,"lock":{"backup":{"held":false}},"message":"no valid backups"},)",
      R"("db":[{"id":2,"repo-key":1,"system-id":)", kCapturedSystemId,
      R"(,"version":"15"},{"id":1,"repo-key":1,"system-id":6000000000000000001,"version":"14"}],)",
      R"("backup":[],"repo":[{"cipher":"none","key":1,"status":{"code":2,"message":"no valid backups"}}]}])");
  ExpectStatus(Run("stanza"), kCheckPass);
}

TEST_F(PreflightChecksTest, NumbersOfTheWrongKindInInfoFailTheCheckWithoutCrashing) {
  // Floats and out-of-range numbers where pgBackRest prints integers (an agent gone wrong): the
  // check fails with a message; before, get<int>() of 1e300 was undefined behaviour.
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"\"id\":2", "\"id\":1e300"},
           {"\"code\":2,\"lock\"", "\"code\":2.5,\"lock\""},
           {"\"key\":1", "\"key\":99999999999"},
           {"\"system-id\":6000000000000000001", "\"system-id\":-1"}}) {
    input_.stanza_info_json = absl::StrReplaceAll(
        absl::StrCat(
            R"([{"name":"s1","status":{"code":2,"lock":{"backup":{"held":false}},"message":"no valid backups"},)",
            R"("db":[{"id":2,"repo-key":1,"system-id":6000000000000000001,"version":"15"}],)",
            R"("backup":[],"repo":[{"cipher":"none","key":1,"status":{"code":3,"message":"x"}}]}])"),
        {{from, to}});
    ASSERT_NE(input_.stanza_info_json.find(to), std::string::npos) << to;
    v1::CheckResult result = Run("stanza");
    EXPECT_EQ(result.status(), kCheckFail) << to << ": " << result.message();
  }
}

TEST_F(PreflightChecksTest, RunningBackupInTheStanzaWarns) {
  input_.stanza_info_json = InfoJson("info-backup-running.json");
  v1::CheckResult result = Run("stanza");
  ExpectStatus(result, kCheckWarn);
  EXPECT_THAT(result.message(), HasSubstr("a backup or expire is running"));
}

TEST_F(PreflightChecksTest, DamagedStanzaFailsWithTheRepositorysMessage) {
  input_.stanza_info_json = InfoJson("info-damaged-archive-dir-removed.json");
  v1::CheckResult result = Run("stanza");
  ExpectStatus(result, kCheckFail);
  EXPECT_EQ(result.source(), "status 99 (other)");
  EXPECT_THAT(result.message(),
              AllOf(HasSubstr("stanza 's1' cannot be used: other; repo1: [FileMissingError] "
                              "unable to load info file"),
                    Not(HasSubstr("HINT"))));
  EXPECT_THAT(result.fix(), HasSubstr("pgbackrest --stanza=s1 check"));

  input_.stanza_info_json = InfoJson("info-damaged-backup-info-removed.json");
  result = Run("stanza");
  ExpectStatus(result, kCheckFail);
  EXPECT_EQ(result.source(), "status 3 (missing stanza data)");
  EXPECT_THAT(result.fix(), HasSubstr("damaged"));

  input_.stanza_info_json = InfoJson("info-damaged-backup-info-corrupt.json");
  EXPECT_THAT(Run("stanza").message(), HasSubstr("[FormatError]"));
}

TEST_F(PreflightChecksTest, FailedInfoCommandFailsWithItsError) {
  input_.stanza_info_json = "";
  input_.stanza_status_code = -1;
  input_.stanza_info_error = "pgbackrest info exited with status 49\n[049]: ...";
  v1::CheckResult result = Run("stanza");
  ExpectStatus(result, kCheckFail);
  EXPECT_EQ(result.message(),
            "pgbackrest info failed on the source: pgbackrest info exited with "
            "status 49");
}

TEST_F(PreflightChecksTest, RepositoryTheSourceCannotWriteFailsNamingThePath) {
  ExpectStatus(Run("stanza"), kCheckPass);  // a stanza not created yet: fine while writable
  input_.repository_not_writable = "/srv/backups";
  v1::CheckResult result = Run("stanza");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(), HasSubstr("cannot write /srv/backups"));
  EXPECT_THAT(result.fix(), HasSubstr("/srv/backups"));
}

TEST_F(PreflightChecksTest, StanzaNotCheckedWarns) {
  input_.stanza_info_json = "";
  input_.stanza_status_code = -1;
  ExpectStatus(Run("stanza"), kCheckWarn);
  // A status code alone still tells a missing stanza.
  input_.stanza_status_code = 1;
  ExpectStatus(Run("stanza"), kCheckPass);
  input_.stanza_status_code = 0;
  ExpectStatus(Run("stanza"), kCheckWarn);
}

TEST_F(PreflightChecksTest, MalformedInfoOutputFails) {
  for (const char* json :
       {"not json", "{}", R"([{"name":"s1"}])", R"([{"name":"s1","status":{"code":"zero"}}])",
        R"([{"name":"other","status":{"code":0}}])",
        R"([{"name":"s1","status":{"code":0},"db":[{"id":1}]}])"}) {
    input_.stanza_info_json = json;
    ExpectStatus(Run("stanza"), kCheckFail);
  }
}

// ---- Patroni targets (issue 9) ----

// The names before the Patroni checks keep their places; the new ones come last.
TEST_F(PreflightChecksTest, PatroniChecksAreAppendedAfterTheEarlierNames) {
  const std::vector<std::string>& names = PreflightCheckNames();
  ASSERT_EQ(names.size(), 29u);
  EXPECT_EQ(names[0], "agents-online");
  EXPECT_EQ(names[25], "stanza");
  EXPECT_EQ(names[26], "patroni");
  EXPECT_EQ(names[27], "patroni-roles");
  EXPECT_EQ(names[28], "password-encryption");
}

class PatroniPreflightTest : public PreflightChecksTest {
 protected:
  PatroniPreflightTest() {
    // A target like the probe's (shared/reference/patroni-target.md): Patroni 3.0.2, superuser
    // operator, and scram-sha-256 host lines.
    v1::PatroniFacts& patroni = Patroni();
    patroni.set_rest_api("10.0.0.5:8008");
    patroni.set_config_file("/etc/patroni/patroni.yml");
    patroni.set_dcs("etcd3");
    patroni.set_reachable(true);
    patroni.set_version("3.0.2");
    patroni.set_scope("newdb");
    patroni.set_state("running");
    patroni.set_role("master");
    patroni.set_leader(true);
    patroni.set_dcs_reachable(true);
    *patroni.mutable_dcs_last_seen() = ToProto(absl::FromUnixSeconds(1795703360));
    patroni.set_config_read(true);
    patroni.set_superuser("operator");
    patroni.set_replication_user("replication");
    patroni.set_rewind_user("rewind");
    for (const char* line : {"local all all trust", "host all all 127.0.0.1/32 scram-sha-256",
                             "host replication replication 10.0.0.0/8 scram-sha-256"}) {
      patroni.add_pg_hba(line);
    }
    AddSourceRole("operator", /*superuser=*/true, /*replication=*/false, /*login=*/true);
    AddSourceRole("replication", false, true, true);
    AddSourceRole("rewind", false, false, true);
  }

  v1::PatroniFacts& Patroni() { return *input_.target.mutable_patroni(); }

  v1::Role& AddSourceRole(const std::string& name, bool superuser, bool replication, bool login,
                          bool md5 = false) {
    v1::Role* role = SourcePg().add_roles();
    role->set_name(name);
    role->set_superuser(superuser);
    role->set_replication(replication);
    role->set_can_login(login);
    role->set_md5_password(md5);
    return *role;
  }

  void RemoveSourceRole(const std::string& name) {
    auto* roles = SourcePg().mutable_roles();
    for (int i = 0; i < roles->size(); ++i) {
      if (roles->Get(i).name() == name) {
        roles->DeleteSubrange(i, 1);
        return;
      }
    }
    ADD_FAILURE() << "no source role " << name;
  }
};

TEST_F(PatroniPreflightTest, HealthyPatroniTargetPassesEveryCheck) {
  EXPECT_THAT(NotPassing(), IsEmpty());
  v1::CheckResult patroni = Run("patroni");
  EXPECT_EQ(patroni.target(), "Patroni 3.0.2, DCS (etcd3) reachable, master");
  EXPECT_THAT(patroni.message(), HasSubstr("answers at 10.0.0.5:8008"));
  v1::CheckResult roles = Run("patroni-roles");
  EXPECT_EQ(roles.target(), "superuser operator, replication replication, rewind rewind");
  EXPECT_EQ(roles.source(),
            "operator (superuser, login), replication (replication, login), rewind (login)");
}

TEST_F(PatroniPreflightTest, TargetWithoutPatroniPassesTheThreeChecks) {
  input_.target.clear_patroni();
  for (const char* name : {"patroni", "patroni-roles"}) {
    v1::CheckResult result = Run(name);
    ExpectStatus(result, kCheckPass);
    EXPECT_EQ(result.target(), "not managed by Patroni");
    EXPECT_THAT(result.message(), HasSubstr("not managed by Patroni"));
  }
  // Even a source without the roles Patroni would need.
  RemoveSourceRole("operator");
  ExpectStatus(Run("patroni-roles"), kCheckPass);
  ExpectStatus(Run("password-encryption"), kCheckPass);
}

TEST_F(PatroniPreflightTest, UnansweredRestApiFailsNamingTheAddressAndTheError) {
  Patroni().set_reachable(false);
  Patroni().set_error("Patroni's REST API at 10.0.0.5:8008: connection refused");
  v1::CheckResult result = Run("patroni");
  ExpectStatus(result, kCheckFail);
  EXPECT_EQ(result.target(), "not reachable");
  EXPECT_THAT(result.message(),
              AllOf(HasSubstr("Patroni's REST API at 10.0.0.5:8008 did not answer"),
                    HasSubstr("connection refused")));
  EXPECT_THAT(result.fix(),
              AllOf(HasSubstr("start Patroni"), HasSubstr("patroni.rest_api.address")));
}

TEST_F(PatroniPreflightTest, PatroniVersionsOtherThanThreeZeroWarnAndOlderOnesFail) {
  for (const char* tested : {"3.0.0", "3.0.2", "3.0.4"}) {
    Patroni().set_version(tested);
    ExpectStatus(Run("patroni"), kCheckPass);
  }
  for (const char* untested : {"3.1.0", "3.3.2", "4.0.4"}) {
    Patroni().set_version(untested);
    v1::CheckResult result = Run("patroni");
    ExpectStatus(result, kCheckWarn);
    EXPECT_THAT(result.message(), HasSubstr("not tested")) << untested;
  }
  for (const char* old : {"2.1.7", "1.6.5"}) {
    Patroni().set_version(old);
    v1::CheckResult result = Run("patroni");
    ExpectStatus(result, kCheckFail);
    EXPECT_THAT(result.message(), HasSubstr("older than 3.0")) << old;
    EXPECT_THAT(result.fix(), HasSubstr("upgrade Patroni"));
  }
  for (const char* unknown : {"", "three"}) {
    Patroni().set_version(unknown);
    ExpectStatus(Run("patroni"), kCheckWarn);
    EXPECT_THAT(Run("patroni").message(), HasSubstr("version is unknown"));
  }
}

TEST_F(PatroniPreflightTest, UnreachableDcsFailsWithHowLongAgoPatroniLastSawIt) {
  Patroni().set_dcs_reachable(false);
  Patroni().set_dcs_error(
      "Patroni's REST API at 10.0.0.5:8008: connection closed before the "
      "response");
  // Facts gathered at 1795703362; Patroni last read etcd 62 s before.
  *Patroni().mutable_dcs_last_seen() = ToProto(absl::FromUnixSeconds(1795703300));
  v1::CheckResult result = Run("patroni");
  ExpectStatus(result, kCheckFail);
  EXPECT_EQ(result.target(), "Patroni 3.0.2, DCS (etcd3) not reachable, master");
  EXPECT_THAT(result.message(),
              AllOf(HasSubstr("cannot read its DCS (etcd3)"), HasSubstr("connection closed"),
                    HasSubstr("last read it 1m2s before")));
  EXPECT_THAT(result.fix(), HasSubstr("etcd3.hosts"));
  // An untested version as well: still a fail, and both are said.
  Patroni().set_version("3.2.0");
  result = Run("patroni");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(), AllOf(HasSubstr("not tested"), HasSubstr("cannot read")));
}

TEST_F(PatroniPreflightTest, AgentThatDoesNotReportTheDcsWarns) {
  Patroni().set_dcs_reachable(false);
  Patroni().clear_dcs_last_seen();
  v1::CheckResult result = Run("patroni");
  ExpectStatus(result, kCheckWarn);
  EXPECT_THAT(result.fix(), HasSubstr("upgrade the target's pghaul-agent"));
}

// The rehearsal restore creates missing roles on the target, so a missing one is a warning
// that says so, with the statement for whoever wants it in the source's catalogue too.
TEST_F(PatroniPreflightTest, MissingSuperuserOnTheSourceWarnsNamingItAndTheStatement) {
  RemoveSourceRole("operator");
  v1::CheckResult result = Run("patroni-roles");
  ExpectStatus(result, kCheckWarn);
  EXPECT_THAT(result.message(),
              HasSubstr("role 'operator' (Patroni's superuser) does not exist on the source"));
  EXPECT_THAT(result.message(), HasSubstr("the restore creates them on the target"));
  EXPECT_THAT(result.fix(), AllOf(HasSubstr("nothing to do for a rehearsal restore"),
                                  HasSubstr("CREATE ROLE operator SUPERUSER LOGIN")));
  EXPECT_THAT(result.fix(), Not(HasSubstr("replication")));
  EXPECT_THAT(result.source(), HasSubstr("operator missing"));
}

TEST_F(PatroniPreflightTest, RolesWithoutTheNeededAttributesWarnWithAlterRole) {
  RemoveSourceRole("operator");
  RemoveSourceRole("replication");
  RemoveSourceRole("rewind");
  AddSourceRole("operator", /*superuser=*/false, false, /*login=*/true);
  AddSourceRole("replication", false, /*replication=*/false, true);
  AddSourceRole("rewind", false, false, /*login=*/false);
  v1::CheckResult result = Run("patroni-roles");
  ExpectStatus(result, kCheckWarn);
  EXPECT_THAT(
      result.message(),
      AllOf(HasSubstr("'operator' (Patroni's superuser) exists on the source without "
                      "SUPERUSER"),
            HasSubstr("'replication' (Patroni's replication user) exists on the source "
                      "without REPLICATION"),
            HasSubstr("'rewind' (Patroni's rewind user) exists on the source without LOGIN")));
  EXPECT_THAT(result.fix(), AllOf(HasSubstr("ALTER ROLE operator SUPERUSER"),
                                  HasSubstr("ALTER ROLE replication REPLICATION"),
                                  HasSubstr("ALTER ROLE rewind LOGIN")));
}

TEST_F(PatroniPreflightTest, SuperuserServesAsReplicationUser) {
  Patroni().set_replication_user("operator");
  Patroni().clear_rewind_user();
  v1::CheckResult result = Run("patroni-roles");
  ExpectStatus(result, kCheckPass);
  EXPECT_EQ(result.target(), "superuser operator, replication operator");
}

TEST_F(PatroniPreflightTest, OddRoleNamesAreQuotedInTheFix) {
  Patroni().set_superuser("Ops Admin");
  v1::CheckResult result = Run("patroni-roles");
  ExpectStatus(result, kCheckWarn);
  EXPECT_THAT(result.fix(), HasSubstr(R"(CREATE ROLE "Ops Admin" SUPERUSER LOGIN)"));
}

TEST_F(PatroniPreflightTest, UnnamedSuperuserOrUnreadableConfigOrTruncatedListIsSaid) {
  Patroni().clear_superuser();
  v1::CheckResult result = Run("patroni-roles");
  ExpectStatus(result, kCheckWarn);
  EXPECT_THAT(result.message(), HasSubstr("Patroni's superuser is not named in"));

  Patroni().set_config_read(false);
  Patroni().set_config_error(
      "cannot read Patroni's configuration /etc/patroni/patroni.yml: "
      "Permission denied");
  result = Run("patroni-roles");
  ExpectStatus(result, kCheckFail);
  EXPECT_THAT(result.message(), HasSubstr("Permission denied"));
  EXPECT_THAT(result.fix(), HasSubstr("read Patroni's configuration file"));

  Patroni().clear_config_error();  // an agent that does not read the file yet
  EXPECT_THAT(Run("patroni-roles").message(), HasSubstr("not compared"));

  Patroni().set_config_read(true);
  Patroni().set_superuser("operator");
  RemoveSourceRole("operator");
  SourcePg().set_roles_truncated(true);
  result = Run("patroni-roles");
  ExpectStatus(result, kCheckWarn);
  EXPECT_THAT(result.message(), HasSubstr("cut short"));
}

TEST_F(PatroniPreflightTest, SourceWithoutRoleFactsIsNotCompared) {
  SourcePg().set_roles_listed(false);
  SourcePg().clear_roles();
  for (const char* name : {"patroni-roles", "password-encryption"}) {
    v1::CheckResult result = Run(name);
    ExpectStatus(result, kCheckWarn);
    EXPECT_THAT(result.message(), HasSubstr("not compared")) << name;
  }
}

TEST_F(PatroniPreflightTest, Md5RolesFailUnderPatronisScramLinesNamingUpToTen) {
  AddSourceRole("app", false, false, true, /*md5=*/true);
  AddSourceRole("nologin_md5", false, false, /*login=*/false, /*md5=*/true);  // cannot log in
  v1::CheckResult result = Run("password-encryption");
  ExpectStatus(result, kCheckFail);
  EXPECT_EQ(result.source(), "1 login role with md5: 'app'");
  EXPECT_EQ(result.target(), "password_encryption=scram-sha-256, Patroni's pg_hba: scram-sha-256");
  EXPECT_THAT(result.message(), AllOf(HasSubstr("'app'"), Not(HasSubstr("nologin_md5")),
                                      HasSubstr("host all all 127.0.0.1/32 scram-sha-256"),
                                      HasSubstr("does not have a valid SCRAM secret")));
  EXPECT_THAT(result.fix(),
              AllOf(HasSubstr("SET password_encryption = 'scram-sha-256'"),
                    HasSubstr("ALTER ROLE app PASSWORD '...'"), HasSubstr("md5 lines")));

  for (int i = 0; i < 11; ++i) AddSourceRole(absl::StrCat("user", i), false, false, true, true);
  result = Run("password-encryption");
  EXPECT_THAT(result.source(), AllOf(HasSubstr("12 login roles with md5"), HasSubstr("'user8'"),
                                     Not(HasSubstr("'user9'")), HasSubstr("and 2 more")));
}

TEST_F(PatroniPreflightTest, Md5RolesOnlyWarnWhereOnlyPasswordEncryptionSaysScram) {
  AddSourceRole("app", false, false, true, /*md5=*/true);
  // Patroni's scram lines name other users; only md5 lines could match app.
  Patroni().clear_pg_hba();
  Patroni().add_pg_hba("host replication replication 10.0.0.0/8 scram-sha-256");
  Patroni().add_pg_hba("host all app 10.0.0.0/8 md5");
  Patroni().add_pg_hba("# host all all 0.0.0.0/0 scram-sha-256");
  v1::CheckResult result = Run("password-encryption");
  ExpectStatus(result, kCheckWarn);
  EXPECT_THAT(result.message(), HasSubstr("password_encryption"));
  EXPECT_THAT(result.fix(), HasSubstr("ALTER ROLE app PASSWORD"));

  // A plain target (no Patroni) with scram-sha-256 hashing warns the same way.
  input_.target.clear_patroni();
  ExpectStatus(Run("password-encryption"), kCheckWarn);
  // One that still hashes with md5 demands nothing.
  TargetPg().set_password_encryption("md5");
  ExpectStatus(Run("password-encryption"), kCheckPass);
}

TEST_F(PatroniPreflightTest, ScramLineNamingTheRoleOrAQuotedListFails) {
  AddSourceRole("Report User", false, false, true, /*md5=*/true);
  Patroni().clear_pg_hba();
  Patroni().add_pg_hba("hostssl all admin,\"Report User\" 0.0.0.0/0 scram-sha-256");
  ExpectStatus(Run("password-encryption"), kCheckFail);
  Patroni().clear_pg_hba();
  Patroni().add_pg_hba("local all \"Report User\" scram-sha-256");
  ExpectStatus(Run("password-encryption"), kCheckFail);
  Patroni().clear_pg_hba();
  Patroni().add_pg_hba("host all admin 10.0.0.1 255.255.255.255 scram-sha-256");
  ExpectStatus(Run("password-encryption"), kCheckWarn);
}

TEST_F(PatroniPreflightTest, SourceAgentThatCannotReadHashesWarns) {
  SourcePg().set_password_hashes_read(false);
  SourcePg().set_current_user("pghaul");
  v1::CheckResult result = Run("password-encryption");
  ExpectStatus(result, kCheckWarn);
  EXPECT_THAT(result.message(), HasSubstr("'pghaul' may not read pg_authid"));
}

TEST(PreflightFormatTest, VersionsAndSizesReadNaturally) {
  EXPECT_EQ(FormatServerVersion(150018), "15.18");
  EXPECT_EQ(FormatServerVersion(90624), "9.6.24");
  EXPECT_EQ(FormatServerVersion(0), "");
  EXPECT_EQ(FormatByteCount(512), "512 B");
  EXPECT_EQ(FormatByteCount(1536), "1.5 KiB");
  EXPECT_EQ(FormatByteCount(16 * kMiB), "16 MiB");
  EXPECT_EQ(FormatByteCount(13 * kGiB), "13 GiB");
}

}  // namespace
}  // namespace pghaul::controller
