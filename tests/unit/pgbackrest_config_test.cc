#include "agent/pgbackrest_config.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kSecretKey[] = "AKIAPGHAULSECRETKEY1";
constexpr char kSecretKeySecret[] = "pghaul-s3-secret-value-xyz";
constexpr char kCipherPass[] = "pghaul-cipher-passphrase-xyz";

PgBackRestEnvironment TestEnvironment() {
  PgBackRestEnvironment env;
  env.binary = "/usr/bin/pgbackrest";
  env.state_dir = "/var/lib/pghaul-agent";
  env.pg_path = "/var/lib/postgresql/15/main";
  env.pg_port = 5433;
  env.pg_socket_path = "/var/run/postgresql";
  env.pg_user = "postgres";
  env.allowed_roots = {"/srv/pgbackrest", "/etc/pghaul/tls"};
  return env;
}

v1::ConfigurePgBackRest PosixTask() {
  v1::ConfigurePgBackRest task;
  task.set_migration_id("mig1");
  task.set_stanza("legacy");
  task.mutable_repository()->mutable_posix()->set_path("/srv/pgbackrest/repo");
  task.set_process_max(2);
  task.set_compress_type("zst");
  return task;
}

v1::ConfigurePgBackRest S3Task() {
  v1::ConfigurePgBackRest task;
  task.set_migration_id("mig1");
  task.set_stanza("legacy");
  v1::RepositorySpec* repo = task.mutable_repository();
  repo->set_path("/pghaul/legacy");
  repo->set_retention_full(2);
  repo->set_cipher_type("aes-256-cbc");
  v1::S3Repository* s3 = repo->mutable_s3();
  s3->set_endpoint("127.0.0.1");
  s3->set_port(9443);
  s3->set_bucket("pghaul-test");
  s3->set_region("us-east-1");
  s3->set_uri_style("path");
  s3->set_skip_tls_verify(true);
  task.mutable_secrets()->set_s3_key(kSecretKey);
  task.mutable_secrets()->set_s3_key_secret(kSecretKeySecret);
  task.mutable_secrets()->set_cipher_pass(kCipherPass);
  return task;
}

TEST(PgBackRestConfigTest, PosixConfigIsRenderedExactly) {
  absl::StatusOr<std::string> text = RenderPgBackRestConfig(TestEnvironment(), PosixTask());
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text,
            "# Written by pghaul-agent for migration mig1. Do not edit: ConfigurePgBackRest "
            "rewrites it.\n"
            "# Secrets are not here: they are in conf.d/secrets.conf (0600), read through "
            "--config-include-path.\n\n"
            "[global]\n"
            "repo1-type=posix\n"
            "repo1-path=/srv/pgbackrest/repo\n"
            "log-path=/var/lib/pghaul-agent/pgbackrest/mig1/log\n"
            "lock-path=/var/lib/pghaul-agent/pgbackrest/mig1/lock\n"
            "spool-path=/var/lib/pghaul-agent/pgbackrest/mig1/spool\n"
            "log-level-file=detail\n"
            "log-level-console=info\n"
            "log-level-stderr=warn\n"
            "start-fast=y\n"
            "process-max=2\n"
            "compress-type=zst\n"
            "archive-async=n\n"
            "\n[global:backup]\n"
            "log-level-console=detail\n"
            "\n[global:restore]\n"
            "log-level-console=detail\n"
            "\n[global:archive-push]\n"
            "log-level-console=warn\n"
            "\n[global:archive-get]\n"
            "log-level-console=warn\n"
            "\n[legacy]\n"
            "pg1-path=/var/lib/postgresql/15/main\n"
            "pg1-port=5433\n"
            "pg1-socket-path=/var/run/postgresql\n"
            "pg1-user=postgres\n");
}

TEST(PgBackRestConfigTest, DefaultsAreOneProcessAndLz4) {
  v1::ConfigurePgBackRest task = PosixTask();
  task.clear_process_max();
  task.clear_compress_type();
  task.set_archive_async(true);
  absl::StatusOr<std::string> text = RenderPgBackRestConfig(TestEnvironment(), task);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr("\nprocess-max=1\n"));
  EXPECT_THAT(*text, HasSubstr("\ncompress-type=lz4\n"));
  EXPECT_THAT(*text, HasSubstr("\narchive-async=y\n"));
}

TEST(PgBackRestConfigTest, S3ConfigHasEveryOptionButNoSecret) {
  absl::StatusOr<std::string> text = RenderPgBackRestConfig(TestEnvironment(), S3Task());
  ASSERT_TRUE(text.ok()) << text.status();
  for (const char* line : {"\nrepo1-type=s3\n", "\nrepo1-path=/pghaul/legacy\n",
                           "\nrepo1-s3-endpoint=127.0.0.1\n", "\nrepo1-s3-bucket=pghaul-test\n",
                           "\nrepo1-s3-region=us-east-1\n", "\nrepo1-s3-uri-style=path\n",
                           "\nrepo1-storage-port=9443\n", "\nrepo1-storage-verify-tls=n\n",
                           "\nrepo1-retention-full=2\n", "\nrepo1-cipher-type=aes-256-cbc\n"}) {
    EXPECT_THAT(*text, HasSubstr(line));
  }
  EXPECT_THAT(*text, Not(HasSubstr(kSecretKey)));
  EXPECT_THAT(*text, Not(HasSubstr(kSecretKeySecret)));
  EXPECT_THAT(*text, Not(HasSubstr(kCipherPass)));
  EXPECT_THAT(*text, Not(HasSubstr("s3-key")));
  EXPECT_THAT(*text, Not(HasSubstr("cipher-pass")));
}

TEST(PgBackRestConfigTest, S3VerifiesTlsUnlessTheTaskSaysToSkipIt) {
  v1::ConfigurePgBackRest task = S3Task();
  task.mutable_repository()->mutable_s3()->clear_skip_tls_verify();
  absl::StatusOr<std::string> text = RenderPgBackRestConfig(TestEnvironment(), task);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr("\nrepo1-storage-verify-tls=y\n"));
}

TEST(PgBackRestConfigTest, RepositoryHostUsesTls) {
  v1::ConfigurePgBackRest task = PosixTask();
  task.mutable_repository()->set_path("/var/lib/pgbackrest");
  v1::RepositoryHost* host = task.mutable_repository()->mutable_host();
  host->set_host("repo.example.internal");
  host->set_ca_file("/etc/pghaul/tls/ca.pem");
  host->set_cert_file("/etc/pghaul/tls/client.pem");
  host->set_key_file("/etc/pghaul/tls/client.key");
  absl::StatusOr<std::string> text = RenderPgBackRestConfig(TestEnvironment(), task);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr("\nrepo1-host=repo.example.internal\nrepo1-host-type=tls\n"
                               "repo1-host-ca-file=/etc/pghaul/tls/ca.pem\n"
                               "repo1-host-cert-file=/etc/pghaul/tls/client.pem\n"
                               "repo1-host-key-file=/etc/pghaul/tls/client.key\n"
                               "repo1-path=/var/lib/pgbackrest\n"));
}

// Each case breaks one field of an otherwise valid task.
struct RefusalCase {
  const char* name;
  void (*mutate)(v1::ConfigurePgBackRest&);
  const char* expected;
};

// Names the case in test output (and ctest's list) instead of dumping its bytes.
void PrintTo(const RefusalCase& refusal, std::ostream* os) { *os << refusal.name; }

class PgBackRestConfigRefusalTest : public ::testing::TestWithParam<RefusalCase> {};

TEST_P(PgBackRestConfigRefusalTest, IsRefusedWithAMessageSayingWhy) {
  v1::ConfigurePgBackRest task = PosixTask();
  GetParam().mutate(task);
  absl::StatusOr<std::string> text = RenderPgBackRestConfig(TestEnvironment(), task);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(text.status().message()), HasSubstr(GetParam().expected));
}

INSTANTIATE_TEST_SUITE_P(
    Fields, PgBackRestConfigRefusalTest,
    ::testing::Values(
        RefusalCase{"InjectedStanza", [](auto& t) { t.set_stanza("a;rm -rf /"); }, "stanza"},
        RefusalCase{"OptionLikeStanza", [](auto& t) { t.set_stanza("-x"); }, "stanza"},
        RefusalCase{"NewlineInStanza", [](auto& t) { t.set_stanza("a\n[global]"); }, "stanza"},
        RefusalCase{"TraversingMigrationId", [](auto& t) { t.set_migration_id(".."); },
                    "migration id"},
        RefusalCase{"RelativeRepoPath",
                    [](auto& t) { t.mutable_repository()->mutable_posix()->set_path("repo"); },
                    "absolute, normalized"},
        RefusalCase{"DotDotRepoPath",
                    [](auto& t) {
                      t.mutable_repository()->mutable_posix()->set_path(
                          "/srv/pgbackrest/../../etc");
                    },
                    "absolute, normalized"},
        RefusalCase{"RepoPathOutsideRoots",
                    [](auto& t) { t.mutable_repository()->mutable_posix()->set_path("/etc"); },
                    "outside the agent's allowed roots"},
        RefusalCase{"NoRepositoryKind", [](auto& t) { t.mutable_repository()->Clear(); },
                    "exactly one of posix, s3 or host"},
        RefusalCase{"PosixPathsDiffer",
                    [](auto& t) { t.mutable_repository()->set_path("/srv/pgbackrest/other"); },
                    "differ"},
        RefusalCase{"BadCompressType", [](auto& t) { t.set_compress_type("xz"); }, "compress type"},
        RefusalCase{"TooManyProcesses", [](auto& t) { t.set_process_max(65); }, "1 to 64"},
        RefusalCase{"BadCipherType",
                    [](auto& t) { t.mutable_repository()->set_cipher_type("rot13"); },
                    "cipher type"},
        RefusalCase{"CipherWithoutPassphrase",
                    [](auto& t) { t.mutable_repository()->set_cipher_type("aes-256-cbc"); },
                    "cipher_pass is required"},
        RefusalCase{"RetentionTooLarge",
                    [](auto& t) { t.mutable_repository()->set_retention_full(10000000); },
                    "retention_full"},
        RefusalCase{"NulInSecret",
                    [](auto& t) { t.mutable_secrets()->set_s3_key(std::string("ab\0cd", 5)); },
                    "NUL"}),
    [](const ::testing::TestParamInfo<RefusalCase>& info) { return info.param.name; });

TEST(PgBackRestConfigTest, S3RefusalsNeverEchoSecrets) {
  v1::ConfigurePgBackRest task = S3Task();
  task.mutable_secrets()->clear_s3_key_secret();
  absl::StatusOr<std::string> text = RenderPgBackRestConfig(TestEnvironment(), task);
  ASSERT_FALSE(text.ok());
  EXPECT_THAT(std::string(text.status().message()), HasSubstr("s3_key_secret is required"));
  EXPECT_THAT(std::string(text.status().message()), Not(HasSubstr(kSecretKey)));

  task = S3Task();
  task.mutable_repository()->mutable_s3()->set_endpoint("https://s3.example.com");
  EXPECT_THAT(std::string(RenderPgBackRestConfig(TestEnvironment(), task).status().message()),
              HasSubstr("S3 endpoint"));
  task = S3Task();
  task.mutable_repository()->mutable_s3()->set_bucket("Bad_Bucket");
  EXPECT_THAT(std::string(RenderPgBackRestConfig(TestEnvironment(), task).status().message()),
              HasSubstr("S3 bucket"));
  task = S3Task();
  task.mutable_repository()->mutable_s3()->set_ca_file("/tmp/ca.pem");
  EXPECT_THAT(std::string(RenderPgBackRestConfig(TestEnvironment(), task).status().message()),
              HasSubstr("S3 CA file '/tmp/ca.pem' is outside"));
  task = S3Task();
  task.mutable_repository()->set_path("");
  EXPECT_FALSE(RenderPgBackRestConfig(TestEnvironment(), task).ok());
}

TEST(PgBackRestConfigTest, RepositoryHostGivenAsIpAddressIsRefused) {
  v1::ConfigurePgBackRest task = PosixTask();
  task.mutable_repository()->set_path("/var/lib/pgbackrest");
  v1::RepositoryHost* host = task.mutable_repository()->mutable_host();
  host->set_host("10.1.2.3");
  host->set_cert_file("/etc/pghaul/tls/client.pem");
  host->set_key_file("/etc/pghaul/tls/client.key");
  absl::StatusOr<std::string> text = RenderPgBackRestConfig(TestEnvironment(), task);
  ASSERT_FALSE(text.ok());
  EXPECT_THAT(std::string(text.status().message()), HasSubstr("does not match IP addresses"));
}

TEST(PgBackRestConfigTest, BadEnvironmentIsReportedAsAgentConfiguration) {
  PgBackRestEnvironment env = TestEnvironment();
  env.pg_path = "relative";
  absl::StatusOr<std::string> text = RenderPgBackRestConfig(env, PosixTask());
  ASSERT_FALSE(text.ok());
  EXPECT_THAT(std::string(text.status().message()), HasSubstr("agent configuration"));
}

TEST(PgBackRestConfigTest, PathsAreUnderTheMigrationDirectory) {
  PgBackRestEnvironment env = TestEnvironment();
  EXPECT_EQ(ConfigPath(env, "m1"), "/var/lib/pghaul-agent/pgbackrest/m1/pgbackrest.conf");
  EXPECT_EQ(LockPath(env, "m1"), "/var/lib/pghaul-agent/pgbackrest/m1/lock");
  EXPECT_EQ(LogPath(env, "m1"), "/var/lib/pghaul-agent/pgbackrest/m1/log");
}

TEST(PgBackRestConfigTest, SecretEnvironmentHasOnlyTheNonEmptySecrets) {
  v1::Secrets secrets;
  EXPECT_THAT(SecretEnvironment(secrets), IsEmpty());
  secrets.set_s3_key("k");
  secrets.set_cipher_pass("p=q");
  EXPECT_THAT(SecretEnvironment(secrets),
              ElementsAre("PGBACKREST_REPO1_S3_KEY=k", "PGBACKREST_REPO1_CIPHER_PASS=p=q"));
  secrets.set_s3_key_secret("s");
  EXPECT_THAT(SecretEnvironment(secrets),
              ElementsAre("PGBACKREST_REPO1_S3_KEY=k", "PGBACKREST_REPO1_S3_KEY_SECRET=s",
                          "PGBACKREST_REPO1_CIPHER_PASS=p=q"));
}

TEST(PgBackRestConfigTest, SecretStoreKeepsStanzaAndSecretsPerMigration) {
  SecretStore store;
  EXPECT_FALSE(store.Get("m1").has_value());
  v1::Secrets secrets;
  secrets.set_s3_key("k1");
  store.Put("m1", ConfiguredMigration{"stanza1", secrets, "", ""});
  secrets.set_s3_key("k2");
  store.Put("m2", ConfiguredMigration{"stanza2", secrets, "", ""});
  ASSERT_TRUE(store.Get("m1").has_value());
  EXPECT_EQ(store.Get("m1")->stanza, "stanza1");
  EXPECT_EQ(store.Get("m1")->secrets.s3_key(), "k1");
  EXPECT_EQ(store.Get("m2")->secrets.s3_key(), "k2");
  store.Erase("m1");
  EXPECT_FALSE(store.Get("m1").has_value());
  EXPECT_TRUE(store.Get("m2").has_value());
}

class PgBackRestConfigWriteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pghaul-pgbackrest-config-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(PgBackRestConfigWriteTest, WritesTheRenderedConfigPrivatelyAndSecretsOnlyInSecretsConf) {
  PgBackRestEnvironment env = TestEnvironment();
  env.state_dir = dir_ + "/state";
  env.allowed_roots = {dir_};
  v1::ConfigurePgBackRest task = PosixTask();
  task.mutable_repository()->mutable_posix()->set_path(dir_ + "/repo");
  task.mutable_secrets()->set_s3_key(kSecretKey);
  task.mutable_secrets()->set_cipher_pass(kCipherPass);

  absl::StatusOr<std::string> path = WritePgBackRestConfig(env, task);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, ConfigPath(env, "mig1"));
  struct stat st;
  ASSERT_EQ(stat(path->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  absl::StatusOr<std::string> written = ReadFile(*path);
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(*written, *RenderPgBackRestConfig(env, task));
  for (const char* sub : {"/log", "/lock", "/spool"}) {
    EXPECT_TRUE(std::filesystem::is_directory(MigrationDirectory(env, "mig1") + sub)) << sub;
  }
  int files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_)) {
    if (!entry.is_regular_file()) continue;
    ++files;
    absl::StatusOr<std::string> contents = ReadFile(entry.path().string());
    ASSERT_TRUE(contents.ok());
    if (entry.path() == SecretsConfigPath(env, "mig1")) {
      EXPECT_THAT(*contents, HasSubstr(kSecretKey));
      EXPECT_THAT(*contents, HasSubstr(kCipherPass));
      continue;
    }
    EXPECT_THAT(*contents, Not(HasSubstr(kSecretKey))) << entry.path();
    EXPECT_THAT(*contents, Not(HasSubstr(kCipherPass))) << entry.path();
  }
  EXPECT_EQ(files, 2) << "pgbackrest.conf and conf.d/secrets.conf";

  // Rewriting (e.g. the controller re-sends the task) replaces the file.
  task.set_process_max(7);
  ASSERT_TRUE(WritePgBackRestConfig(env, task).ok());
  EXPECT_THAT(*ReadFile(*path), HasSubstr("\nprocess-max=7\n"));
}

TEST_F(PgBackRestConfigWriteTest, InvalidTaskWritesNothing) {
  PgBackRestEnvironment env = TestEnvironment();
  env.state_dir = dir_ + "/state";
  env.allowed_roots = {dir_};
  v1::ConfigurePgBackRest task = PosixTask();  // repo path outside dir_
  EXPECT_FALSE(WritePgBackRestConfig(env, task).ok());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/state"));
}

}  // namespace
}  // namespace pghaul::agent
