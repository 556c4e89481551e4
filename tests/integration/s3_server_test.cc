// The S3 server of the integration tests (fixture/s3_server.h) against the real pgBackRest 2.45:
// TLS with its own certificate, a failed start that explains itself, stanza-create, check
// (archive-push through PostgreSQL's archive_command), backup, info and restore into a second
// data directory that starts; a wrong secret refused; listings of more than 1000 keys.
//
//   db 198.18.0.11 (PG 15 source :5432 archiving to S3, restored copy :5433 on its socket)
//   s3 198.18.0.13 (s3rver over HTTPS, port picked by s3rver, bucket "pgbackrest")
//
// pgBackRest runs as postgres in the db namespace and gets the S3 key pair from its environment
// (PGBACKREST_REPO1_S3_KEY / _KEY_SECRET), never from argv or its config. PostgreSQL's
// archive_command and restore_command cannot be given an environment, so they call a wrapper
// script (mode 0700, owned by postgres) that exports the pair and execs pgbackrest.
#include "tests/integration/fixture/s3_server.h"

#include <signal.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fixture/command.h"
#include "tests/integration/fixture/json_paths.h"
#include "tests/integration/fixture/network_namespaces.h"
#include "tests/integration/fixture/pg_cluster.h"
#include "tests/integration/fixture/temp_dir.h"
#include "tests/integration/fixture/test_support.h"
#include "tests/integration/fixture/wait_for.h"

namespace pghaul::integration {
namespace {

using nlohmann::json;

constexpr char kStanza[] = "main";
constexpr char kBucket[] = "pgbackrest";
constexpr char kRepoPath[] = "/repo";
constexpr char kPgBackRest[] = "/usr/bin/pgbackrest";
constexpr int kSourcePort = 5432;
constexpr int kRestoredPort = 5433;

// A zombie waiting for init to reap it counts as gone.
bool ProcessExists(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  auto stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return false;
  size_t paren = stat->rfind(')');
  return paren == std::string::npos || paren + 2 >= stat->size() || (*stat)[paren + 2] != 'Z';
}

absl::Status AppendToFile(const std::string& path, absl::string_view text) {
  std::ofstream out(path, std::ios::app);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot append to ", path));
  return absl::OkStatus();
}

// The key pair pgBackRest gets in its environment.
struct S3Credentials {
  std::string key = kS3ServerAccessKey;
  std::string secret = kS3ServerSecretKey;
};

class S3ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RequireRoot();
    if (HasFatalFailure()) return;
    PGH_ASSERT_OK_AND_ASSIGN(dir_, TempDir::Create("pghaul-s3test-"));
    PGH_ASSERT_OK_AND_ASSIGN(pgbackrest_dir_,
                             dir_->MakeSubdir("pgbackrest", kPostgresOsUser, 0700));
    PGH_ASSERT_OK_AND_ASSIGN(network_, NetworkNamespaces::Create());
    PGH_ASSERT_OK(network_->AddHost("db", 11));
    PGH_ASSERT_OK(network_->AddHost("s3", 13));
    S3ServerOptions options;
    options.netns = network_->Namespace("s3");
    options.address = network_->Address("s3");
    options.bucket = kBucket;
    options.dir = dir_->path() + "/s3";
    const absl::Time start = absl::Now();
    PGH_ASSERT_OK_AND_ASSIGN(s3_, S3Server::Start(options));
    std::cout << "S3Server::Start took " << absl::Now() - start << " ("
              << (s3_->legacy_openssl_provider() ? "with" : "WITHOUT")
              << " --openssl-legacy-provider), listening on " << s3_->url() << "\n";
  }

  void TearDown() override {
    if (!HasFailure()) return;
    std::vector<std::string> logs;
    if (s3_ != nullptr) logs.push_back(s3_->log_path());
    for (const PgCluster* cluster : {source_.get(), restored_.get()}) {
      if (cluster != nullptr) logs.push_back(cluster->log_path());
    }
    for (const char* command : {"stanza-create", "check", "backup", "restore", "archive-push-async",
                                "archive-get-async"}) {
      std::string log = absl::StrCat(pgbackrest_dir_, "/log/", kStanza, "-", command, ".log");
      if (std::filesystem::exists(log)) logs.push_back(log);
    }
    PrintLogTails(logs);
  }

  std::string ConfigPath() const { return pgbackrest_dir_ + "/pgbackrest.conf"; }
  std::string WrapperPath() const { return pgbackrest_dir_ + "/pgbackrest-s3.sh"; }

  // pgbackrest.conf for an S3 repository on s3_ (without the key pair) and, when given, the
  // stanza's cluster.
  absl::Status WriteConfig(const PgCluster* cluster) {
    std::vector<std::string> lines = {
        "[global]",
        "repo1-type=s3",
        absl::StrCat("repo1-path=", kRepoPath),
        absl::StrCat("repo1-s3-bucket=", s3_->bucket()),
        absl::StrCat("repo1-s3-endpoint=", s3_->endpoint()),
        absl::StrCat("repo1-storage-port=", s3_->port()),
        absl::StrCat("repo1-s3-region=", s3_->region()),
        "repo1-s3-uri-style=path",
        "repo1-storage-verify-tls=n",
        absl::StrCat("log-path=", pgbackrest_dir_, "/log"),
        absl::StrCat("lock-path=", pgbackrest_dir_, "/lock"),
        absl::StrCat("spool-path=", pgbackrest_dir_, "/spool"),
        "log-level-console=warn",
        "log-level-file=detail",
        "start-fast=y",
        "compress-type=lz4",  // far less CPU than the default gz on a shared 2-core machine
    };
    if (cluster != nullptr) {
      lines.insert(lines.end(),
                   {absl::StrCat("[", kStanza, "]"), absl::StrCat("pg1-path=", cluster->data_dir()),
                    absl::StrCat("pg1-port=", cluster->port()),
                    absl::StrCat("pg1-socket-path=", cluster->socket_dir())});
    }
    const std::string conf = absl::StrCat(absl::StrJoin(lines, "\n"), "\n");
    PGH_RETURN_IF_ERROR(WriteFile(ConfigPath(), conf));
    PGH_RETURN_IF_ERROR(ChownToUser(ConfigPath(), kPostgresOsUser));
    // For PostgreSQL's archive_command and restore_command, which run with the postmaster's
    // environment.
    PGH_RETURN_IF_ERROR(
        WriteFile(WrapperPath(),
                  absl::StrCat("#!/bin/sh\n", "PGBACKREST_REPO1_S3_KEY='", s3_->access_key(), "'\n",
                               "PGBACKREST_REPO1_S3_KEY_SECRET='", s3_->secret_key(), "'\n",
                               "export PGBACKREST_REPO1_S3_KEY PGBACKREST_REPO1_S3_KEY_SECRET\n",
                               "exec ", kPgBackRest, " --config=", ConfigPath(), " \"$@\"\n")));
    PGH_RETURN_IF_ERROR(ChownToUser(WrapperPath(), kPostgresOsUser));
    std::error_code error;
    std::filesystem::permissions(WrapperPath(), std::filesystem::perms::owner_all, error);
    if (error)
      return absl::InternalError(absl::StrCat("chmod ", WrapperPath(), ": ", error.message()));
    return absl::OkStatus();
  }

  // `pgbackrest --config=... --stanza=main ARGS` as postgres in the db namespace, with the key
  // pair in its environment. Prints how long it took.
  absl::StatusOr<CommandResult> PgBackRest(const std::vector<std::string>& args,
                                           const S3Credentials& credentials = {},
                                           absl::Duration timeout = absl::Seconds(120)) {
    std::vector<std::string> argv = {kPgBackRest, absl::StrCat("--config=", ConfigPath()),
                                     absl::StrCat("--stanza=", kStanza)};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandOptions options;
    options.launch.netns = network_->Namespace("db");
    options.launch.run_as = kPostgresOsUser;
    options.launch.env = {absl::StrCat("PGBACKREST_REPO1_S3_KEY=", credentials.key),
                          absl::StrCat("PGBACKREST_REPO1_S3_KEY_SECRET=", credentials.secret)};
    options.timeout = timeout;
    const absl::Time start = absl::Now();
    auto result = RunCommand(argv, options);
    std::cout << "pgbackrest " << absl::StrJoin(args, " ") << " took " << absl::Now() - start
              << (result.ok() ? absl::StrCat(", exit ", result->exit_code) : "") << "\n";
    return result;
  }

  // Like PgBackRest, but a non-zero exit is an error with pgBackRest's output.
  absl::StatusOr<std::string> PgBackRestChecked(const std::vector<std::string>& args,
                                                absl::Duration timeout = absl::Seconds(120)) {
    auto result = PgBackRest(args, S3Credentials(), timeout);
    if (!result.ok()) return result.status();
    if (!result->ok()) {
      return absl::FailedPreconditionError(absl::StrCat(result->command, " exited ",
                                                        result->exit_code, ":\n",
                                                        result->stdout_text, result->stderr_text));
    }
    return result->stdout_text;
  }

  // Whether object `key` of the bucket is in s3rver's store (its filesystem layout).
  bool StoredObjectExists(absl::string_view key) const {
    return std::filesystem::exists(
        absl::StrCat(s3_->data_dir(), "/", s3_->bucket(), "/", key, "._S3rver_object"));
  }

  std::unique_ptr<TempDir> dir_;
  std::string pgbackrest_dir_;
  std::unique_ptr<NetworkNamespaces> network_;
  std::unique_ptr<S3Server> s3_;
  std::unique_ptr<PgCluster> source_;
  std::unique_ptr<PgCluster> restored_;
};

TEST_F(S3ServerTest, ServesTlsWithACertificateForItsAddressToOtherNamespacesAndStopsByPid) {
  EXPECT_GT(s3_->port(), 0);
  EXPECT_EQ(s3_->url(), absl::StrCat("https://198.18.0.13:", s3_->port()));
  EXPECT_TRUE(s3_->IsRunning());
  const pid_t pid = s3_->pid();
  ASSERT_GT(pid, 0);

  auto handshake = [&](absl::string_view verify_ip) {
    CommandOptions options;
    options.launch.netns = network_->Namespace("db");
    options.timeout = absl::Seconds(10);
    return RunCommand(
        {"/usr/bin/openssl", "s_client", "-connect", absl::StrCat(s3_->address(), ":", s3_->port()),
         "-brief", "-CAfile", s3_->ca_file(), "-verify_ip", std::string(verify_ip),
         "-verify_return_error"},
        options);
  };
  // From the db namespace, across the bridge: the certificate verifies for the server's address
  // and for no other.
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult good, handshake(s3_->address()));
  EXPECT_TRUE(good.ok()) << good.stderr_text;
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult wrong_ip, handshake("198.18.0.99"));
  EXPECT_FALSE(wrong_ip.ok());
  EXPECT_TRUE(absl::StrContains(wrong_ip.stderr_text, "IP address mismatch"))
      << wrong_ip.stderr_text;
  // The bucket exists from the start.
  EXPECT_TRUE(std::filesystem::is_directory(s3_->data_dir() + "/" + kBucket));

  PGH_ASSERT_OK(s3_->Stop());
  EXPECT_FALSE(s3_->IsRunning());
  EXPECT_FALSE(ProcessExists(pid));
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult after_stop, handshake(s3_->address()));
  EXPECT_FALSE(after_stop.ok()) << "still serving after Stop()";
}

TEST_F(S3ServerTest, StartThatCannotListenFailsWithTheServersLog) {
  S3ServerOptions options;
  options.netns = network_->Namespace("s3");
  options.address = "198.18.0.99";  // not an address of the namespace
  options.dir = dir_->path() + "/s3-bad";
  const absl::Time start = absl::Now();
  auto server = S3Server::Start(options, absl::Seconds(20));
  EXPECT_LT(absl::Now() - start, absl::Seconds(15)) << "noticed the exit, not the timeout";
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kUnavailable) << server.status();
  EXPECT_TRUE(absl::StrContains(server.status().message(), "exited")) << server.status();
  EXPECT_TRUE(absl::StrContains(server.status().message(), "EADDRNOTAVAIL")) << server.status();

  options.address = "not-an-ip";
  EXPECT_EQ(S3Server::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(S3ServerTest, PgBackRestArchivesBacksUpAndRestoresThroughIt) {
  PgClusterOptions source;
  source.name = "source";
  source.port = kSourcePort;
  source.netns = network_->Namespace("db");
  source.listen_address = network_->Address("db");
  source.conf_lines = {
      "archive_mode = on",
      absl::StrCat("archive_command = '", WrapperPath(), " --stanza=", kStanza,
                   " archive-push %p'"),
  };
  PGH_ASSERT_OK_AND_ASSIGN(source_, PgCluster::Create(dir_->path(), source));
  PGH_ASSERT_OK(WriteConfig(source_.get()));
  PGH_ASSERT_OK(source_->Start());
  PGH_ASSERT_OK(
      source_->Query("CREATE TABLE marker (v text); INSERT INTO marker "
                     "VALUES ('before-backup')"));

  PGH_ASSERT_OK(PgBackRestChecked({"stanza-create"}));
  // check forces a WAL switch and waits for archive_command to push the segment to S3.
  PGH_ASSERT_OK(PgBackRestChecked({"check"}));
  PGH_ASSERT_OK(PgBackRestChecked({"--type=full", "backup"}, absl::Seconds(180)));
  // Written after the backup: an "immediate" restore must not have it.
  PGH_ASSERT_OK(source_->Query("INSERT INTO marker VALUES ('after-backup')"));

  PGH_ASSERT_OK_AND_ASSIGN(std::string info_text, PgBackRestChecked({"--output=json", "info"}));
  json info = json::parse(info_text, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(info.is_array() && info.size() == 1) << info_text;
  EXPECT_EQ(Str(info[0], "name"), kStanza);
  EXPECT_EQ(Int(info[0], "status.code"), 0) << info_text;
  ASSERT_EQ(At(info[0], "backup").size(), 1u) << info_text;
  EXPECT_EQ(Str(info[0]["backup"][0], "type"), "full");
  const std::string label = Str(info[0]["backup"][0], "label");
  // The objects are in s3rver's store: the repository really is the S3 server.
  EXPECT_TRUE(StoredObjectExists(absl::StrCat("repo/backup/", kStanza, "/backup.info")));
  EXPECT_TRUE(StoredObjectExists(absl::StrCat("repo/archive/", kStanza, "/archive.info")));
  EXPECT_TRUE(
      StoredObjectExists(absl::StrCat("repo/backup/", kStanza, "/", label, "/backup.manifest")))
      << label;

  // Restore over a freshly initdb'ed second data directory; recovery fetches WAL from S3
  // through the wrapper.
  PgClusterOptions restored;
  restored.name = "restored";
  restored.port = kRestoredPort;
  restored.netns = network_->Namespace("db");
  PGH_ASSERT_OK_AND_ASSIGN(restored_, PgCluster::Create(dir_->path(), restored));
  PGH_ASSERT_OK(PgBackRestChecked(
      {absl::StrCat("--pg1-path=", restored_->data_dir()), "--delta", "--type=immediate",
       "--target-action=promote", "--archive-mode=off",
       // archive-get insists that pg1-path is the server's data directory.
       absl::StrCat("--recovery-option=restore_command=", WrapperPath(), " --stanza=", kStanza,
                    " --pg1-path=", restored_->data_dir(), " archive-get %f \"%p\""),
       "restore"},
      absl::Seconds(180)));
  // The restored postgresql.conf is the source's: give the copy its own port and socket.
  PGH_ASSERT_OK(AppendToFile(restored_->data_dir() + "/postgresql.conf",
                             absl::StrCat("\n# the restored copy's own settings\nport = ",
                                          kRestoredPort, "\nunix_socket_directories = '",
                                          restored_->socket_dir(), "'\nlisten_addresses = ''\n")));
  const absl::Time start = absl::Now();
  PGH_ASSERT_OK(restored_->Start());
  PGH_ASSERT_OK(WaitFor(
      "the restored copy to finish recovery and promote", absl::Seconds(60),
      [&]() { return restored_->Query("SELECT pg_is_in_recovery()").value_or("?") == "f"; }));
  std::cout << "restored copy started and promoted in " << absl::Now() - start << "\n";
  EXPECT_EQ(restored_->Query("SELECT string_agg(v, ',' ORDER BY v) FROM marker").value_or("?"),
            "before-backup");
  EXPECT_EQ(
      restored_->Query("SELECT system_identifier FROM pg_control_system()").value_or("restored?"),
      source_->Query("SELECT system_identifier FROM pg_control_system()").value_or("source?"));
  PGH_EXPECT_OK(restored_->Query("CREATE TABLE written_after_restore (x int)"));
}

// s3rver knows one key pair and refuses any other access key, but it does not check V4
// signatures (its authentication.js: "Signature version 4 calculation is unimplemented"), and
// pgBackRest signs with V4: a wrong secret goes unnoticed. Tests of secret handling must not
// rely on this server refusing a wrong secret; this test fails when that changes.
TEST_F(S3ServerTest, WrongAccessKeyIsRefusedButAWrongSecretIsNotChecked) {
  PGH_ASSERT_OK(WriteConfig(nullptr));
  S3Credentials wrong_key;
  wrong_key.key = "NOT-S3RVER";
  wrong_key.secret = "not-the-S3RVER-secret";
  // A GET, so that pgBackRest prints the response body with S3's error code (repo-ls starts
  // with a HEAD, which has none).
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult refused,
                           PgBackRest({"repo-get", "no-such-object"}, wrong_key));
  const std::string output = refused.stdout_text + refused.stderr_text;
  EXPECT_FALSE(refused.ok()) << output;
  EXPECT_EQ(refused.exit_code, 39) << output;  // pgBackRest's ProtocolError: HTTP failed
  EXPECT_TRUE(absl::StrContains(output, "HTTP request failed with 403 (Forbidden)")) << output;
  EXPECT_TRUE(absl::StrContains(output, "<Code>InvalidAccessKeyId</Code>")) << output;
  EXPECT_FALSE(absl::StrContains(output, wrong_key.secret)) << "pgBackRest printed the secret";

  PGH_ASSERT_OK_AND_ASSIGN(CommandResult accepted, PgBackRest({"repo-ls"}));
  EXPECT_TRUE(accepted.ok()) << accepted.stdout_text << accepted.stderr_text;

  S3Credentials wrong_secret;
  wrong_secret.secret = "not-the-S3RVER-secret";
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult unchecked, PgBackRest({"repo-ls"}, wrong_secret));
  EXPECT_TRUE(unchecked.ok()) << "s3rver now checks V4 signatures: make this test expect "
                                 "SignatureDoesNotMatch and update tests/README.md\n"
                              << unchecked.stdout_text << unchecked.stderr_text;
}

// s3rver's ListObjectsV2 continuation tokens need DES, which OpenSSL 3 has only in its legacy
// provider: without --openssl-legacy-provider a listing past 1000 keys fails with HTTP 500.
TEST_F(S3ServerTest, ListsMoreThanAThousandKeys) {
  // Without it pgBackRest retries the failing listing for about a minute before failing.
  ASSERT_TRUE(s3_->legacy_openssl_provider())
      << "this node does not accept --openssl-legacy-provider: s3rver cannot list past 1000 keys";
  PGH_ASSERT_OK(WriteConfig(nullptr));
  // Objects straight into s3rver's filesystem store (one file each; it makes the .md5 on
  // demand): 1001 PUTs through pgBackRest would take minutes.
  constexpr int kObjects = 1001;
  const std::string folder = absl::StrCat(s3_->data_dir(), "/", kBucket, "/repo/many");
  std::filesystem::create_directories(folder);
  for (int i = 0; i < kObjects; ++i) {
    PGH_ASSERT_OK(WriteFile(absl::StrFormat("%s/f%04d._S3rver_object", folder, i),
                            absl::StrCat("object ", i, "\n")));
  }
  PGH_ASSERT_OK_AND_ASSIGN(std::string listing,
                           PgBackRestChecked({"repo-ls", "--recurse", "many"}));
  std::vector<std::string> names = absl::StrSplit(listing, '\n', absl::SkipEmpty());
  ASSERT_EQ(names.size(), static_cast<size_t>(kObjects)) << listing.substr(0, 2000);
  EXPECT_EQ(names.front(), "f0000");
  EXPECT_EQ(names.back(), "f1000");
}

}  // namespace
}  // namespace pghaul::integration
