#include "agent/host_facts.h"

#include <gnu/libc-version.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/fixture/command.h"
#include "tests/integration/fixture/pg_cluster.h"
#include "tests/integration/fixture/temp_dir.h"

namespace pghaul::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// A temporary directory removed at the end of the scope.
class TempDir {
 public:
  TempDir() {
    char path[] = "/tmp/pghaul-host-facts-test.XXXXXX";
    if (mkdtemp(path) != nullptr) path_ = path;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void WriteExecutable(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  chmod(path.c_str(), 0755);
}

TEST(ParsePgBackRestVersionTest, ReadsTheVersionFromTheVersionCommand) {
  EXPECT_EQ(ParsePgBackRestVersion("pgBackRest 2.45\n").value_or("error"), "2.45");
  EXPECT_EQ(ParsePgBackRestVersion("pgBackRest 2.51dev").value_or("error"), "2.51dev");
  EXPECT_EQ(ParsePgBackRestVersion("  pgBackRest 2.45.1-rc1\r\n").value_or("error"), "2.45.1-rc1");
}

TEST(ParsePgBackRestVersionTest, RefusesAnythingElseQuotingIt) {
  for (const char* text : {"", "pgBackRest", "pgBackRest ", "pgbackrest 2.45", "2.45",
                           "pgBackRest v2.45", "pgBackRest 2.45 extra", "pgBackRest 2.45\nmore"}) {
    absl::StatusOr<std::string> version = ParsePgBackRestVersion(text);
    EXPECT_EQ(version.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
  EXPECT_THAT(ParsePgBackRestVersion("ERROR: [031]: invalid command").status().message(),
              HasSubstr("ERROR: [031]: invalid command"));
}

TEST(ParseOsReleasePrettyNameTest, ReadsTheQuotedPrettyName) {
  EXPECT_EQ(ParseOsReleasePrettyName("NAME=\"Debian GNU/Linux\"\n"
                                     "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"
                                     "VERSION_ID=\"12\"\n"),
            "Debian GNU/Linux 12 (bookworm)");
}

TEST(ParseOsReleasePrettyNameTest, HandlesSingleQuotesEscapesAndBareValues) {
  EXPECT_EQ(ParseOsReleasePrettyName("PRETTY_NAME='Alpine Linux v3.19'\n"), "Alpine Linux v3.19");
  EXPECT_EQ(ParseOsReleasePrettyName("PRETTY_NAME=\"Say \\\"hi\\\" \\$HOME\"\n"),
            "Say \"hi\" $HOME");
  EXPECT_EQ(ParseOsReleasePrettyName("# comment\nPRETTY_NAME=Plain\n"), "Plain");
  EXPECT_EQ(ParseOsReleasePrettyName("NOT_PRETTY_NAME=\"x\"\n"), "Linux");
}

TEST(ParseOsReleasePrettyNameTest, FallsBackToLinuxAsOsReleaseSpecifies) {
  EXPECT_EQ(ParseOsReleasePrettyName("NAME=Something\nID=x\n"), "Linux");
  EXPECT_EQ(ParseOsReleasePrettyName(""), "Linux");
}

TEST(GatherHostFactsTest, DescribesThisHost) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  AgentConfig config;
  config.data_directory = dir.path() + "/not/created/yet";
  config.pgbackrest_binary = dir.path() + "/pgbackrest";
  WriteExecutable(config.pgbackrest_binary,
                  "#!/bin/sh\n[ \"$1\" = version ] && echo 'pgBackRest 9.87'\n");
  config.postgres.socket_dir = dir.path();  // nothing listens there
  config.postgres.port = 1;

  pghaul::v1::HostFacts facts = GatherHostFacts(config);

  char hostname[HOST_NAME_MAX + 1] = {};
  gethostname(hostname, sizeof(hostname) - 1);
  struct utsname uts;
  ASSERT_EQ(uname(&uts), 0);
  EXPECT_EQ(facts.hostname(), hostname);
  EXPECT_EQ(facts.kernel(), uts.release);
  EXPECT_EQ(facts.architecture(), uts.machine);
  EXPECT_EQ(facts.libc_version(), gnu_get_libc_version());
  EXPECT_THAT(facts.os(), Not(IsEmpty()));
  EXPECT_EQ(facts.data_directory(), config.data_directory);

  // The data directory does not exist yet: its nearest existing parent's filesystem counts.
  struct statvfs stats;
  ASSERT_EQ(statvfs(dir.path().c_str(), &stats), 0);
  EXPECT_EQ(facts.disk_error(), "");
  EXPECT_EQ(facts.data_dir_total_bytes(), static_cast<uint64_t>(stats.f_blocks) * stats.f_frsize);
  EXPECT_GT(facts.data_dir_free_bytes(), 0u);
  EXPECT_LE(facts.data_dir_free_bytes(), facts.data_dir_total_bytes());

  EXPECT_EQ(facts.pgbackrest_version(), "9.87");
  EXPECT_EQ(facts.pgbackrest_error(), "");
  EXPECT_FALSE(facts.postgres().reachable());
  EXPECT_TRUE(facts.has_gathered_at());
  EXPECT_GT(facts.gathered_at().seconds(), 1'700'000'000);
}

TEST(GatherHostFactsTest, SaysWhyThePgBackRestVersionIsUnknown) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  AgentConfig config;
  config.data_directory = dir.path();
  config.postgres.socket_dir = dir.path();
  config.postgres.port = 1;

  config.pgbackrest_binary = dir.path() + "/missing-pgbackrest";
  pghaul::v1::HostFacts facts = GatherHostFacts(config);
  EXPECT_EQ(facts.pgbackrest_version(), "");
  EXPECT_THAT(facts.pgbackrest_error(), HasSubstr(config.pgbackrest_binary));
  EXPECT_THAT(facts.pgbackrest_error(), HasSubstr("No such file or directory"));

  config.pgbackrest_binary = dir.path() + "/failing-pgbackrest";
  WriteExecutable(config.pgbackrest_binary,
                  "#!/bin/sh\necho 'ERROR: [099]: broken' >&2\nexit 99\n");
  facts = GatherHostFacts(config);
  EXPECT_EQ(facts.pgbackrest_version(), "");
  EXPECT_THAT(facts.pgbackrest_error(), HasSubstr("exited 99: ERROR: [099]: broken"));

  config.pgbackrest_binary = dir.path() + "/odd-pgbackrest";
  WriteExecutable(config.pgbackrest_binary, "#!/bin/sh\necho 'hello'\n");
  facts = GatherHostFacts(config);
  EXPECT_THAT(facts.pgbackrest_error(), HasSubstr("unexpected output"));
}

TEST(GatherHostFactsTest, RecordsADiskErrorInsteadOfFailing) {
  AgentConfig config;
  config.data_directory = "";
  config.pgbackrest_binary = "/nonexistent/pgbackrest";
  config.postgres.socket_dir = "/nonexistent";
  pghaul::v1::HostFacts facts = GatherHostFacts(config);
  EXPECT_THAT(facts.disk_error(), HasSubstr("no data directory"));
  EXPECT_EQ(facts.data_dir_total_bytes(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Against a real, throwaway PostgreSQL 15 cluster, created once for the suite.

using integration::kPostgresBinDir;

absl::StatusOr<std::string> RunAsPostgres(std::vector<std::string> args) {
  integration::CommandOptions as_postgres;
  as_postgres.launch.run_as = integration::kPostgresOsUser;
  as_postgres.launch.env = {"LC_ALL=C.UTF-8"};  // pg_controldata's labels, untranslated
  as_postgres.timeout = absl::Seconds(120);
  return integration::RunChecked(args, as_postgres);
}

class HostFactsPostgresTest : public ::testing::Test {
 protected:
  static std::string Tool(const char* name) { return absl::StrCat(kPostgresBinDir, "/", name); }
  static std::string DataDir() { return cluster_->data_dir(); }
  static PostgresConnection Connection(const std::string& user = "postgres") {
    PostgresConnection conn;
    conn.socket_dir = cluster_->socket_dir();
    conn.port = cluster_->port();
    conn.user = user;
    return conn;
  }

  static void SetUpTestSuite() { setup_status_ = new absl::Status(CreateCluster()); }

  static absl::Status CreateCluster() {
    if (access(Tool("initdb").c_str(), X_OK) != 0) return absl::OkStatus();  // tests skip
    absl::StatusOr<std::unique_ptr<integration::TempDir>> temp =
        integration::TempDir::Create("pghaul-pg-test.");
    if (!temp.ok()) return temp.status();
    temp_ = temp->release();
    dir_ = new std::string(temp_->path());
    absl::StatusOr<std::string> tablespace_dir =
        temp_->MakeSubdir("tablespace", integration::kPostgresOsUser, 0700);
    if (!tablespace_dir.ok()) return tablespace_dir.status();
    integration::PgClusterOptions options;
    options.initdb_args = {"--data-checksums", "--encoding=UTF8", "--locale=C.UTF-8"};
    options.conf_lines = {"archive_mode = on", "archive_command = '/bin/true'"};
    absl::StatusOr<std::unique_ptr<integration::PgCluster>> cluster =
        integration::PgCluster::Create(temp_->path(), std::move(options));
    if (!cluster.ok()) return cluster.status();
    cluster_ = cluster->release();
    if (absl::Status started = cluster_->Start(); !started.ok()) return started;

    // Content whose facts the tests check: a database whose name needs quoting, with an extra
    // extension; one that refuses connections; a tablespace; a role that is not a superuser.
    for (const std::string& sql :
         {std::string("CREATE DATABASE \"it's an \"\"odd\"\" \\ name\""),
          std::string("CREATE DATABASE closed WITH ALLOW_CONNECTIONS false"),
          absl::StrCat("CREATE TABLESPACE space1 LOCATION '", *tablespace_dir, "'"),
          std::string("CREATE ROLE reader LOGIN")}) {
      if (absl::Status s = cluster_->Query(sql).status(); !s.ok()) return s;
    }
    return cluster_->Query("CREATE EXTENSION hstore", "it's an \"odd\" \\ name").status();
  }

  static void TearDownTestSuite() {
    if (cluster_ != nullptr && cluster_->PostmasterPid() != 0) {
      absl::Status stopped = cluster_->Stop("immediate");
      if (!stopped.ok()) ADD_FAILURE() << "cannot stop the test server: " << stopped;
    }
    delete cluster_;
    cluster_ = nullptr;
    delete temp_;  // after the cluster: it holds the cluster's files
    temp_ = nullptr;
    delete dir_;
    dir_ = nullptr;
    delete setup_status_;
    setup_status_ = nullptr;
  }

  void SetUp() override {
    if (access(Tool("initdb").c_str(), X_OK) != 0) {
      GTEST_SKIP() << Tool("initdb") << " is not installed (package postgresql-15)";
    }
    ASSERT_TRUE(setup_status_->ok()) << "test cluster: " << *setup_status_;
  }

  static std::string* dir_;
  static absl::Status* setup_status_;
  static integration::TempDir* temp_;
  static integration::PgCluster* cluster_;
};

std::string* HostFactsPostgresTest::dir_ = nullptr;
absl::Status* HostFactsPostgresTest::setup_status_ = nullptr;
integration::TempDir* HostFactsPostgresTest::temp_ = nullptr;
integration::PgCluster* HostFactsPostgresTest::cluster_ = nullptr;

bool HasExtension(const pghaul::v1::PostgresFacts& facts, const std::string& database,
                  const std::string& name) {
  return std::any_of(facts.extensions().begin(), facts.extensions().end(),
                     [&](const pghaul::v1::Extension& e) {
                       return e.database() == database && e.name() == name && !e.version().empty();
                     });
}

TEST_F(HostFactsPostgresTest, ReportsWhatTheServerSaysAboutItself) {
  pghaul::v1::PostgresFacts facts = GatherPostgresFacts(Connection());
  ASSERT_TRUE(facts.reachable()) << facts.error();
  EXPECT_EQ(facts.error(), "");

  EXPECT_EQ(facts.data_directory(), DataDir());
  EXPECT_TRUE(facts.data_checksums());
  EXPECT_EQ(facts.block_size(), 8192);
  EXPECT_EQ(facts.wal_segment_size(), 16777216);
  EXPECT_EQ(facts.server_version_num() / 10000, 15);
  EXPECT_TRUE(absl::StartsWith(facts.server_version(), "15.")) << facts.server_version();
  EXPECT_EQ(facts.encoding(), "UTF8");
  EXPECT_EQ(facts.lc_collate(), "C.UTF-8");
  EXPECT_EQ(facts.lc_ctype(), "C.UTF-8");
  EXPECT_EQ(facts.archive_mode(), "on");
  EXPECT_EQ(facts.archive_command(), "/bin/true");
  EXPECT_FALSE(facts.in_recovery());
  EXPECT_EQ(facts.current_user(), "postgres");
  EXPECT_TRUE(facts.is_superuser());

  // The system identifier agrees with pg_controldata, which reads pg_control directly.
  absl::StatusOr<std::string> control = RunAsPostgres({Tool("pg_controldata"), "-D", DataDir()});
  ASSERT_TRUE(control.ok()) << control.status();
  uint64_t identifier = 0;
  for (absl::string_view line : absl::StrSplit(*control, '\n')) {
    if (absl::ConsumePrefix(&line, "Database system identifier:")) {
      ASSERT_TRUE(absl::SimpleAtoi(line, &identifier)) << line;
    }
  }
  EXPECT_NE(identifier, 0u);
  EXPECT_EQ(facts.system_identifier(), identifier);

  // Version text as the server binary itself reports it: "postgres (PostgreSQL) 15.x".
  absl::StatusOr<std::string> binary_version = RunAsPostgres({Tool("postgres"), "--version"});
  ASSERT_TRUE(binary_version.ok()) << binary_version.status();
  EXPECT_THAT(*binary_version,
              HasSubstr(absl::StrCat("PostgreSQL) ", facts.server_version().substr(
                                                         0, facts.server_version().find(' ')))));
}

TEST_F(HostFactsPostgresTest, ListsExtensionsOfEveryDatabaseThatAcceptsConnections) {
  pghaul::v1::PostgresFacts facts = GatherPostgresFacts(Connection());
  ASSERT_TRUE(facts.reachable()) << facts.error();
  EXPECT_EQ(facts.error(), "");
  const std::string odd = "it's an \"odd\" \\ name";
  EXPECT_TRUE(HasExtension(facts, "postgres", "plpgsql"));
  EXPECT_TRUE(HasExtension(facts, "template1", "plpgsql"));
  EXPECT_TRUE(HasExtension(facts, odd, "plpgsql"));
  EXPECT_TRUE(HasExtension(facts, odd, "hstore"));
  EXPECT_FALSE(HasExtension(facts, "postgres", "hstore"));
  for (const pghaul::v1::Extension& e : facts.extensions()) {
    EXPECT_NE(e.database(), "closed");
    EXPECT_NE(e.database(), "template0");
  }
}

TEST_F(HostFactsPostgresTest, ListsTablespacesWithTheirLocations) {
  pghaul::v1::PostgresFacts facts = GatherPostgresFacts(Connection());
  ASSERT_TRUE(facts.reachable()) << facts.error();
  ASSERT_EQ(facts.tablespaces_size(), 3);
  EXPECT_EQ(facts.tablespaces(0).name(), "pg_default");
  EXPECT_EQ(facts.tablespaces(0).location(), "");
  EXPECT_EQ(facts.tablespaces(1).name(), "pg_global");
  EXPECT_EQ(facts.tablespaces(2).name(), "space1");
  EXPECT_EQ(facts.tablespaces(2).location(), *dir_ + "/tablespace");
}

TEST_F(HostFactsPostgresTest, SaysWhatAnUnprivilegedUserCannotSee) {
  pghaul::v1::PostgresFacts facts = GatherPostgresFacts(Connection("reader"));
  ASSERT_TRUE(facts.reachable()) << facts.error();
  EXPECT_EQ(facts.current_user(), "reader");
  EXPECT_FALSE(facts.is_superuser());
  EXPECT_EQ(facts.data_directory(), "");
  EXPECT_THAT(facts.error(), HasSubstr("pg_read_all_settings"));
  // What any user may read is still there.
  EXPECT_EQ(facts.block_size(), 8192);
  EXPECT_EQ(facts.wal_segment_size(), 16777216);
}

TEST_F(HostFactsPostgresTest, ReportsAnUnreachableServer) {
  PostgresConnection conn = Connection();
  conn.port = 1;  // no socket file .s.PGSQL.1 in the private directory
  pghaul::v1::PostgresFacts facts = GatherPostgresFacts(conn);
  EXPECT_FALSE(facts.reachable());
  EXPECT_THAT(facts.error(), HasSubstr(".s.PGSQL.1"));
  EXPECT_THAT(facts.error(), Not(HasSubstr("\n")));
  EXPECT_EQ(facts.server_version_num(), 0);
  EXPECT_EQ(facts.extensions_size(), 0);
}

}  // namespace
}  // namespace pghaul::agent
