// conf.d/secrets.conf: the repository secrets on disk, for the pgBackRest commands PostgreSQL
// runs by itself (archive_command, restore_command). Content, modes, ownership, removal, and
// that the secret never shows in an error message.
#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/pgbackrest_config.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kKey[] = "AKIAPGHAULSECRETSFILE";
constexpr char kKeySecret[] = "s3-secret/with=equals #and hash";
constexpr char kCipherPass[] = "cipher pass with inner spaces";
constexpr char kMigration[] = "mig-secrets";

v1::Secrets AllSecrets() {
  v1::Secrets secrets;
  secrets.set_s3_key(kKey);
  secrets.set_s3_key_secret(kKeySecret);
  secrets.set_cipher_pass(kCipherPass);
  return secrets;
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

TEST(PgBackRestSecretsRenderTest, AllSecretsGoUnderGlobalVerbatim) {
  absl::StatusOr<std::string> text = RenderSecretsConfig(AllSecrets());
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text,
            "# Written by pghaul-agent: the repository secrets, for PostgreSQL's archive_command "
            "and restore_command.\n"
            "# Readable by the database's OS user only. ConfigurePgBackRest rewrites or removes "
            "it.\n"
            "\n[global]\n"
            "repo1-s3-key=AKIAPGHAULSECRETSFILE\n"
            "repo1-s3-key-secret=s3-secret/with=equals #and hash\n"
            "repo1-cipher-pass=cipher pass with inner spaces\n");
}

TEST(PgBackRestSecretsRenderTest, OnlyThePresentSecretsAreWritten) {
  v1::Secrets secrets;
  secrets.set_cipher_pass("only-the-passphrase");
  absl::StatusOr<std::string> text = RenderSecretsConfig(secrets);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr("[global]\nrepo1-cipher-pass=only-the-passphrase\n"));
  EXPECT_THAT(*text, Not(HasSubstr("repo1-s3-key")));

  absl::StatusOr<std::string> none = RenderSecretsConfig(v1::Secrets());
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(*none, IsEmpty());
}

TEST(PgBackRestSecretsRenderTest, SecretsAnIniLineCannotHoldAreRefusedWithoutEchoingThem) {
  struct Case {
    std::string value;
    std::string why;
  };
  const std::string token = "Tok3nValue";
  for (const Case& bad :
       {Case{token + "\n[global]\nrepo1-path=/x", "line break"}, Case{token + "\r", "line break"},
        Case{" " + token, "whitespace"}, Case{token + "\t", "whitespace"},
        Case{std::string(token) + '\0' + "x", "NUL"}}) {
    v1::Secrets secrets;
    secrets.set_s3_key_secret(bad.value);
    absl::StatusOr<std::string> text = RenderSecretsConfig(secrets);
    ASSERT_FALSE(text.ok()) << bad.why;
    EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(text.status().message()), HasSubstr("s3_key_secret"));
    EXPECT_THAT(std::string(text.status().message()), HasSubstr(bad.why));
    EXPECT_THAT(std::string(text.status().message()), Not(HasSubstr(token)));
  }
}

class PgBackRestSecretsFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pghaul-secrets-file-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    env_.state_dir = dir_ + "/state";
    env_.pg_path = dir_ + "/data";
    env_.allowed_roots = {dir_};
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string ConfD() const { return ConfigIncludePath(env_, kMigration); }
  std::string SecretsFile() const { return SecretsConfigPath(env_, kMigration); }

  v1::ConfigurePgBackRest Task(const v1::Secrets& secrets) const {
    v1::ConfigurePgBackRest task;
    task.set_migration_id(kMigration);
    task.set_stanza("main");
    task.mutable_repository()->mutable_posix()->set_path(dir_ + "/repo");
    *task.mutable_secrets() = secrets;
    return task;
  }

  std::string dir_;
  PgBackRestEnvironment env_;
};

TEST_F(PgBackRestSecretsFileTest, PathsAreTheMigrationsConfD) {
  EXPECT_EQ(ConfD(), dir_ + "/state/pgbackrest/mig-secrets/conf.d");
  EXPECT_EQ(SecretsFile(), dir_ + "/state/pgbackrest/mig-secrets/conf.d/secrets.conf");
}

TEST_F(PgBackRestSecretsFileTest, WritesThePrivateFileInAPrivateDirectoryOwnedByTheAgentsUser) {
  ASSERT_TRUE(WriteSecretsConfig(env_, kMigration, AllSecrets()).ok());
  EXPECT_EQ(ModeOf(ConfD()), 0700u);
  EXPECT_EQ(ModeOf(SecretsFile()), 0600u);
  struct stat st;
  ASSERT_EQ(stat(SecretsFile().c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, geteuid());
  EXPECT_EQ(*ReadFile(SecretsFile()), *RenderSecretsConfig(AllSecrets()));
  // Nothing else in conf.d: pgBackRest would read any other *.conf there.
  int entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(ConfD())) {
    ++entries;
    EXPECT_EQ(entry.path(), SecretsFile());
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(PgBackRestSecretsFileTest, RewriteFixesTheModesOfAnEarlierFileAndDirectory) {
  ASSERT_TRUE(MakeDirectories(ConfD(), 0755).ok());
  ASSERT_EQ(chmod(ConfD().c_str(), 0755), 0);
  ASSERT_TRUE(WriteFileAtomically(SecretsFile(), "[global]\nrepo1-s3-key=old\n", 0644).ok());
  ASSERT_EQ(chmod(SecretsFile().c_str(), 0644), 0);
  ASSERT_EQ(ModeOf(SecretsFile()), 0644u);

  ASSERT_TRUE(WriteSecretsConfig(env_, kMigration, AllSecrets()).ok());
  EXPECT_EQ(ModeOf(ConfD()), 0700u);
  EXPECT_EQ(ModeOf(SecretsFile()), 0600u);
  EXPECT_THAT(*ReadFile(SecretsFile()), Not(HasSubstr("repo1-s3-key=old")));
  EXPECT_THAT(*ReadFile(SecretsFile()), HasSubstr(kKey));
}

TEST_F(PgBackRestSecretsFileTest, ModesAreExactWhateverTheUmask) {
  // 0277 would leave the owner read-only (0400 / 0500) if the modes came from creation alone.
  const mode_t previous = umask(0277);
  absl::Status written = WriteSecretsConfig(env_, kMigration, AllSecrets());
  umask(previous);
  ASSERT_TRUE(written.ok()) << written;
  EXPECT_EQ(ModeOf(ConfD()), 0700u);
  EXPECT_EQ(ModeOf(SecretsFile()), 0600u);
}

TEST_F(PgBackRestSecretsFileTest,
       WithoutSecretsTheFileAndLeftoverTemporariesAreRemovedAndTheDirStays) {
  ASSERT_TRUE(WriteSecretsConfig(env_, kMigration, AllSecrets()).ok());
  // What a crash between creating and renaming the temporary leaves behind.
  const std::string leftover = SecretsFile() + ".tmp.Ab12Cd";
  ASSERT_TRUE(WriteFileAtomically(leftover, "[global]\nrepo1-s3-key=x\n", 0600).ok());

  ASSERT_TRUE(WriteSecretsConfig(env_, kMigration, v1::Secrets()).ok());
  EXPECT_FALSE(std::filesystem::exists(SecretsFile()));
  EXPECT_FALSE(std::filesystem::exists(leftover));
  EXPECT_TRUE(std::filesystem::is_directory(ConfD()));
  EXPECT_TRUE(std::filesystem::is_empty(ConfD()));
  EXPECT_EQ(ModeOf(ConfD()), 0700u);
  // And again: nothing to remove is fine.
  EXPECT_TRUE(WriteSecretsConfig(env_, kMigration, v1::Secrets()).ok());
}

TEST_F(PgBackRestSecretsFileTest, ConfigureWritesThenRemovesTheSecretsFile) {
  absl::StatusOr<std::string> first = WritePgBackRestConfig(env_, Task(AllSecrets()));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(ModeOf(SecretsFile()), 0600u);
  EXPECT_THAT(*ReadFile(SecretsFile()), HasSubstr(kCipherPass));
  EXPECT_THAT(*ReadFile(*first), Not(HasSubstr(kCipherPass)));

  ASSERT_TRUE(WritePgBackRestConfig(env_, Task(v1::Secrets())).ok());
  EXPECT_FALSE(std::filesystem::exists(SecretsFile()));
  EXPECT_TRUE(std::filesystem::is_directory(ConfD()));
}

TEST_F(PgBackRestSecretsFileTest, ASecretWithALineBreakIsRefusedAndNothingIsWritten) {
  v1::Secrets secrets = AllSecrets();
  secrets.set_cipher_pass("pass\nrepo1-path=/elsewhere");
  absl::StatusOr<std::string> written = WritePgBackRestConfig(env_, Task(secrets));
  ASSERT_FALSE(written.ok());
  EXPECT_EQ(written.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(written.status().message()), HasSubstr("cipher_pass"));
  EXPECT_THAT(std::string(written.status().message()), Not(HasSubstr("elsewhere")));
  EXPECT_FALSE(std::filesystem::exists(env_.state_dir));
}

TEST_F(PgBackRestSecretsFileTest, AConfDThatIsASymlinkIsRefusedAndItsTargetUntouched) {
  const std::string elsewhere = dir_ + "/elsewhere";
  ASSERT_TRUE(MakeDirectories(elsewhere, 0755).ok());
  ASSERT_TRUE(MakeDirectories(MigrationDirectory(env_, kMigration), 0750).ok());
  std::filesystem::create_directory_symlink(elsewhere, ConfD());

  absl::Status written = WriteSecretsConfig(env_, kMigration, AllSecrets());
  EXPECT_EQ(written.code(), absl::StatusCode::kFailedPrecondition) << written;
  EXPECT_TRUE(std::filesystem::is_empty(elsewhere));
  EXPECT_EQ(ModeOf(elsewhere), 0755u);
}

TEST_F(PgBackRestSecretsFileTest, AsRootTheFileAndDirectoryBelongToTheRunAsUser) {
  passwd* postgres = getpwnam("postgres");
  if (geteuid() != 0 || postgres == nullptr) GTEST_SKIP() << "needs root and a postgres user";
  env_.run_as_uid = postgres->pw_uid;
  env_.run_as_gid = postgres->pw_gid;
  ASSERT_TRUE(WriteSecretsConfig(env_, kMigration, AllSecrets()).ok());
  for (const std::string& path : {ConfD(), SecretsFile()}) {
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_uid, postgres->pw_uid) << path;
    EXPECT_EQ(st.st_gid, postgres->pw_gid) << path;
  }
}

TEST_F(PgBackRestSecretsFileTest, ABadMigrationIdIsRefused) {
  EXPECT_EQ(WriteSecretsConfig(env_, "../escape", AllSecrets()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(env_.state_dir));
}

}  // namespace
}  // namespace pghaul::agent
