#include "agent/host_facts.h"

#include <gnu/libc-version.h>
#include <limits.h>
#include <pwd.h>
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
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libpq-fe.h"

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

constexpr char kPostgresBin[] = "/usr/lib/postgresql/15/bin";
constexpr char kRunuser[] = "/usr/sbin/runuser";
// The server listens only on a socket in the suite's private directory, so this port number
// cannot collide with another server.
constexpr int kPort = 5432;

absl::StatusOr<std::string> RunAsPostgres(std::vector<std::string> args) {
  SubprocessSpec spec;
  spec.argv = {kRunuser, "-u", "postgres", "--"};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
  spec.working_directory = "/";
  spec.timeout = absl::Seconds(120);
  absl::StatusOr<CapturedOutput> output = RunAndCapture(spec);
  if (!output.ok()) return output.status();
  if (!output->result.Succeeded()) {
    return absl::InternalError(absl::StrCat(args[0], " ", output->result.Describe(), ": ",
                                            output->stdout_text, output->stderr_text));
  }
  return output->stdout_text;
}

absl::Status Execute(const std::string& conninfo, const std::string& sql) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  absl::Status status;
  if (PQstatus(conn) != CONNECTION_OK) {
    status = absl::UnavailableError(PQerrorMessage(conn));
  } else {
    PGresult* result = PQexec(conn, sql.c_str());
    ExecStatusType code = PQresultStatus(result);
    if (code != PGRES_COMMAND_OK && code != PGRES_TUPLES_OK) {
      status = absl::InternalError(absl::StrCat(sql, ": ", PQresultErrorMessage(result)));
    }
    PQclear(result);
  }
  PQfinish(conn);
  return status;
}

class HostFactsPostgresTest : public ::testing::Test {
 protected:
  static std::string Tool(const char* name) { return absl::StrCat(kPostgresBin, "/", name); }
  static std::string DataDir() { return *dir_ + "/data"; }
  static PostgresConnection Connection(const std::string& user = "postgres") {
    PostgresConnection conn;
    conn.socket_dir = *dir_;
    conn.port = kPort;
    conn.user = user;
    return conn;
  }

  static void SetUpTestSuite() { setup_status_ = new absl::Status(CreateCluster()); }

  static absl::Status CreateCluster() {
    if (access(Tool("initdb").c_str(), X_OK) != 0) return absl::OkStatus();  // tests skip
    char path[] = "/tmp/pghaul-pg-test.XXXXXX";
    if (mkdtemp(path) == nullptr) return absl::InternalError("mkdtemp failed");
    dir_ = new std::string(path);
    struct passwd* postgres = getpwnam("postgres");
    if (postgres == nullptr) return absl::FailedPreconditionError("no 'postgres' OS user");
    const std::string tablespace_dir = *dir_ + "/tablespace";
    mkdir(tablespace_dir.c_str(), 0700);
    for (const std::string& p : {*dir_, tablespace_dir}) {
      if (chown(p.c_str(), postgres->pw_uid, postgres->pw_gid) != 0) {
        return absl::InternalError(absl::StrCat("chown ", p, " failed"));
      }
    }
    absl::StatusOr<std::string> out =
        RunAsPostgres({Tool("initdb"), "-D", DataDir(), "--auth=trust", "-U", "postgres",
                       "--data-checksums", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"});
    if (!out.ok()) return out.status();
    out = RunAsPostgres({Tool("pg_ctl"), "-D", DataDir(), "-l", *dir_ + "/server.log", "-w", "-t",
                         "60", "-o",
                         absl::StrCat("-k ", *dir_, " -p ", kPort,
                                      " -c listen_addresses='' -c archive_mode=on"
                                      " -c archive_command=/bin/true"),
                         "start"});
    if (!out.ok()) return out.status();
    started_ = true;

    // Content whose facts the tests check: a database whose name needs quoting, with an extra
    // extension; one that refuses connections; a tablespace; a role that is not a superuser.
    const std::string admin = Connection().ConnInfo();
    for (const std::string& sql :
         {std::string("CREATE DATABASE \"it's an \"\"odd\"\" \\ name\""),
          std::string("CREATE DATABASE closed WITH ALLOW_CONNECTIONS false"),
          absl::StrCat("CREATE TABLESPACE space1 LOCATION '", tablespace_dir, "'"),
          std::string("CREATE ROLE reader LOGIN")}) {
      if (absl::Status s = Execute(admin, sql); !s.ok()) return s;
    }
    return Execute(Connection().ConnInfoForDatabase("it's an \"odd\" \\ name"),
                   "CREATE EXTENSION hstore");
  }

  static void TearDownTestSuite() {
    if (started_) {
      absl::StatusOr<std::string> out =
          RunAsPostgres({Tool("pg_ctl"), "-D", DataDir(), "-m", "immediate", "-w", "stop"});
      if (!out.ok()) ADD_FAILURE() << "cannot stop the test server: " << out.status();
    }
    if (dir_ != nullptr) {
      std::error_code ignored;
      std::filesystem::remove_all(*dir_, ignored);
    }
    delete dir_;
    dir_ = nullptr;
    delete setup_status_;
    setup_status_ = nullptr;
    started_ = false;
  }

  void SetUp() override {
    if (access(Tool("initdb").c_str(), X_OK) != 0) {
      GTEST_SKIP() << Tool("initdb") << " is not installed (package postgresql-15)";
    }
    ASSERT_TRUE(setup_status_->ok()) << "test cluster: " << *setup_status_;
  }

  static std::string* dir_;
  static absl::Status* setup_status_;
  static bool started_;
};

std::string* HostFactsPostgresTest::dir_ = nullptr;
absl::Status* HostFactsPostgresTest::setup_status_ = nullptr;
bool HostFactsPostgresTest::started_ = false;

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
