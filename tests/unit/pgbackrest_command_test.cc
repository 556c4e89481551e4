#include "agent/pgbackrest_command.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kConfig[] = "--config=/var/lib/pghaul-agent/pgbackrest/mig1/pgbackrest.conf";
// The migration's secrets.conf lives there; every command names it (pgBackRest reads no include
// path by default once --config is given).
constexpr char kIncludePath[] =
    "--config-include-path=/var/lib/pghaul-agent/pgbackrest/mig1/conf.d";

PgBackRestEnvironment TestEnvironment() {
  PgBackRestEnvironment env;
  env.binary = "/usr/bin/pgbackrest";
  env.state_dir = "/var/lib/pghaul-agent";
  env.pg_path = "/var/lib/postgresql/15/main";
  env.allowed_roots = {"/srv/pgbackrest"};
  return env;
}

v1::PgBackRestCommand Command() {
  v1::PgBackRestCommand command;
  command.set_migration_id("mig1");
  return command;
}

std::vector<std::string> Build(const v1::PgBackRestCommand& command,
                               const std::string& stanza = "legacy") {
  absl::StatusOr<std::vector<std::string>> argv =
      BuildPgBackRestArgv(TestEnvironment(), command, stanza);
  EXPECT_TRUE(argv.ok()) << argv.status();
  return argv.ok() ? *argv : std::vector<std::string>{};
}

absl::Status Refusal(const v1::PgBackRestCommand& command, const std::string& stanza = "legacy") {
  return BuildPgBackRestArgv(TestEnvironment(), command, stanza).status();
}

TEST(PgBackRestCommandTest, VersionNeedsNoConfigOrStanza) {
  v1::PgBackRestCommand command;
  command.mutable_version();
  EXPECT_THAT(Build(command, ""), ElementsAre("/usr/bin/pgbackrest", "version"));
}

TEST(PgBackRestCommandTest, InfoAsksForJson) {
  v1::PgBackRestCommand command = Command();
  command.mutable_info();
  EXPECT_THAT(Build(command), ElementsAre("/usr/bin/pgbackrest", kConfig, kIncludePath,
                                          "--stanza=legacy", "info", "--output=json"));
}

TEST(PgBackRestCommandTest, CommandsWithoutOptions) {
  v1::PgBackRestCommand command = Command();
  command.mutable_stanza_create();
  EXPECT_THAT(Build(command), ElementsAre("/usr/bin/pgbackrest", kConfig, kIncludePath,
                                          "--stanza=legacy", "stanza-create"));
  command.mutable_check();
  EXPECT_THAT(Build(command), ElementsAre("/usr/bin/pgbackrest", kConfig, kIncludePath,
                                          "--stanza=legacy", "check"));
  command.mutable_verify();
  EXPECT_THAT(Build(command), ElementsAre("/usr/bin/pgbackrest", kConfig, kIncludePath,
                                          "--stanza=legacy", "verify"));
  command.mutable_expire();
  EXPECT_THAT(Build(command), ElementsAre("/usr/bin/pgbackrest", kConfig, kIncludePath,
                                          "--stanza=legacy", "expire"));
}

TEST(PgBackRestCommandTest, BackupWithEveryOption) {
  v1::PgBackRestCommand command = Command();
  command.mutable_backup()->set_type("full");
  command.mutable_backup()->set_process_max(4);
  command.mutable_backup()->set_compress_type("gz");
  EXPECT_THAT(Build(command),
              ElementsAre("/usr/bin/pgbackrest", kConfig, kIncludePath, "--stanza=legacy", "backup",
                          "--type=full", "--process-max=4", "--compress-type=gz"));
}

TEST(PgBackRestCommandTest, BackupKeepsConfiguredDefaults) {
  v1::PgBackRestCommand command = Command();
  command.mutable_backup()->set_type("incr");
  EXPECT_THAT(Build(command), ElementsAre("/usr/bin/pgbackrest", kConfig, kIncludePath,
                                          "--stanza=legacy", "backup", "--type=incr"));
}

TEST(PgBackRestCommandTest, RestoreStandbyAlwaysTurnsArchivingOff) {
  v1::PgBackRestCommand command = Command();
  v1::PgBackRestRestore* restore = command.mutable_restore();
  restore->set_delta(true);
  restore->set_type("standby");
  restore->set_set("20261126-142922F_20261126-143041D");
  restore->set_target_timeline("current");
  restore->set_process_max(2);
  EXPECT_THAT(
      Build(command),
      ElementsAre("/usr/bin/pgbackrest", kConfig, kIncludePath, "--stanza=legacy", "restore",
                  "--delta", "--type=standby", "--set=20261126-142922F_20261126-143041D",
                  "--target-timeline=current", "--process-max=2", "--archive-mode=off"));
}

TEST(PgBackRestCommandTest, StandbyRestoreCanShortenTheWalRetryInterval) {
  v1::PgBackRestCommand command = Command();
  v1::PgBackRestRestore* restore = command.mutable_restore();
  restore->set_delta(true);
  restore->set_type("standby");
  restore->set_wal_retrieve_retry_ms(250);
  EXPECT_THAT(Build(command),
              ElementsAre("/usr/bin/pgbackrest", kConfig, kIncludePath, "--stanza=legacy",
                          "restore", "--delta", "--type=standby",
                          "--recovery-option=wal_retrieve_retry_interval=250ms",
                          "--archive-mode=off"));
}

TEST(PgBackRestCommandTest, RefusesAWalRetryIntervalOutOfRangeOrNotForAStandby) {
  v1::PgBackRestCommand command = Command();
  command.mutable_restore()->set_type("standby");
  command.mutable_restore()->set_wal_retrieve_retry_ms(10);
  EXPECT_THAT(std::string(Refusal(command).message()), HasSubstr("50 to 60000, got 10"));
  command.mutable_restore()->set_wal_retrieve_retry_ms(70000);
  EXPECT_THAT(std::string(Refusal(command).message()), HasSubstr("50 to 60000"));
  command.mutable_restore()->set_type("immediate");
  command.mutable_restore()->set_wal_retrieve_retry_ms(250);
  EXPECT_THAT(std::string(Refusal(command).message()),
              HasSubstr("only valid with restore type 'standby'"));
}

TEST(PgBackRestCommandTest, RestoreToATimeOrLsn) {
  v1::PgBackRestCommand command = Command();
  v1::PgBackRestRestore* restore = command.mutable_restore();
  restore->set_type("time");
  restore->set_target("2026-11-26 14:30:00.5+01:00");
  restore->set_target_action("promote");
  EXPECT_THAT(Build(command),
              ElementsAre("/usr/bin/pgbackrest", kConfig, kIncludePath, "--stanza=legacy",
                          "restore", "--type=time", "--target=2026-11-26 14:30:00.5+01:00",
                          "--target-action=promote", "--archive-mode=off"));
  restore->set_type("lsn");
  restore->set_target("0/16000138");
  restore->set_target_action("pause");
  EXPECT_THAT(Build(command),
              ElementsAre("/usr/bin/pgbackrest", kConfig, kIncludePath, "--stanza=legacy",
                          "restore", "--type=lsn", "--target=0/16000138", "--target-action=pause",
                          "--archive-mode=off"));
}

TEST(PgBackRestCommandTest, MinimalRestoreStillTurnsArchivingOff) {
  v1::PgBackRestCommand command = Command();
  command.mutable_restore();
  EXPECT_THAT(Build(command), ElementsAre("/usr/bin/pgbackrest", kConfig, kIncludePath,
                                          "--stanza=legacy", "restore", "--archive-mode=off"));
  command.mutable_restore()->set_type("immediate");
  command.mutable_restore()->set_target_action("promote");
  EXPECT_THAT(Build(command), ElementsAre("/usr/bin/pgbackrest", kConfig, kIncludePath,
                                          "--stanza=legacy", "restore", "--type=immediate",
                                          "--target-action=promote", "--archive-mode=off"));
}

TEST(PgBackRestCommandTest, ExpireASet) {
  v1::PgBackRestCommand command = Command();
  command.mutable_expire()->set_set("20261126-142922F");
  EXPECT_THAT(Build(command), ElementsAre("/usr/bin/pgbackrest", kConfig, kIncludePath,
                                          "--stanza=legacy", "expire", "--set=20261126-142922F"));
}

TEST(PgBackRestCommandTest, RefusesUnsetCommandAndBadIdentifiers) {
  EXPECT_THAT(std::string(Refusal(Command()).message()), HasSubstr("names no command"));
  v1::PgBackRestCommand command = Command();
  command.mutable_check();
  EXPECT_THAT(std::string(Refusal(command, "a;rm -rf /").message()), HasSubstr("stanza"));
  EXPECT_THAT(std::string(Refusal(command, "-x").message()), HasSubstr("stanza"));
  EXPECT_THAT(std::string(Refusal(command, "").message()), HasSubstr("stanza"));
  command.set_migration_id("../../etc");
  EXPECT_THAT(std::string(Refusal(command).message()), HasSubstr("migration id"));
}

TEST(PgBackRestCommandTest, RefusesBadBackupOptions) {
  v1::PgBackRestCommand command = Command();
  command.mutable_backup();
  EXPECT_THAT(std::string(Refusal(command).message()), HasSubstr("backup type is required"));
  command.mutable_backup()->set_type("full; rm");
  EXPECT_THAT(std::string(Refusal(command).message()), HasSubstr("one of full, diff, incr"));
  command.mutable_backup()->set_type("full");
  command.mutable_backup()->set_compress_type("xz");
  EXPECT_THAT(std::string(Refusal(command).message()), HasSubstr("compress type"));
  command.mutable_backup()->set_compress_type("");
  command.mutable_backup()->set_process_max(100);
  EXPECT_THAT(std::string(Refusal(command).message()), HasSubstr("1 to 64"));
}

TEST(PgBackRestCommandTest, RefusesBadRestoreOptions) {
  auto refusal = [](void (*mutate)(v1::PgBackRestRestore&)) {
    v1::PgBackRestCommand command = Command();
    mutate(*command.mutable_restore());
    return std::string(Refusal(command).message());
  };
  EXPECT_THAT(refusal([](v1::PgBackRestRestore& r) { r.set_set("20261126 142922F"); }),
              HasSubstr("backup label"));
  EXPECT_THAT(refusal([](v1::PgBackRestRestore& r) {
                r.set_type("lsn");
                r.set_target("0/0; drop");
              }),
              HasSubstr("LSN"));
  EXPECT_THAT(refusal([](v1::PgBackRestRestore& r) { r.set_type("lsn"); }),
              HasSubstr("needs a target"));
  EXPECT_THAT(refusal([](v1::PgBackRestRestore& r) {
                r.set_type("time");
                r.set_target("2026-11-26 14:30:00");
              }),
              HasSubstr("explicit UTC offset"));
  EXPECT_THAT(refusal([](v1::PgBackRestRestore& r) {
                r.set_type("standby");
                r.set_target("0/1");
              }),
              HasSubstr("only valid with restore type 'time' or 'lsn'"));
  EXPECT_THAT(refusal([](v1::PgBackRestRestore& r) {
                r.set_type("standby");
                r.set_target_action("promote");
              }),
              HasSubstr("target action is only valid"));
  EXPECT_THAT(refusal([](v1::PgBackRestRestore& r) {
                r.set_type("immediate");
                r.set_target_timeline("current");
              }),
              HasSubstr("target timeline is only valid"));
  EXPECT_THAT(refusal([](v1::PgBackRestRestore& r) { r.set_target_timeline("2; rm"); }),
              HasSubstr("target timeline"));
  EXPECT_THAT(refusal([](v1::PgBackRestRestore& r) { r.set_type("xid"); }),
              HasSubstr("restore type"));
  EXPECT_THAT(refusal([](v1::PgBackRestRestore& r) { r.set_target_action("exit"); }),
              HasSubstr("target action"));
}

TEST(PgBackRestCommandTest, RefusesBadExpireSet) {
  v1::PgBackRestCommand command = Command();
  command.mutable_expire()->set_set("--set=all");
  EXPECT_THAT(std::string(Refusal(command).message()), HasSubstr("backup label"));
}

TEST(PgBackRestCommandTest, RunAsPrefixGoesFirst) {
  PgBackRestEnvironment env = TestEnvironment();
  EXPECT_THAT(WithRunAsPrefix(env, {"/usr/bin/pgbackrest", "version"}),
              ElementsAre("/usr/bin/pgbackrest", "version"));
  env.run_as_prefix = {"/usr/sbin/runuser", "-u", "postgres", "--"};
  EXPECT_THAT(
      WithRunAsPrefix(env, {"/usr/bin/pgbackrest", "version"}),
      ElementsAre("/usr/sbin/runuser", "-u", "postgres", "--", "/usr/bin/pgbackrest", "version"));
}

TEST(PgBackRestCommandTest, ChildEnvironmentIsMinimalPlusSecrets) {
  v1::Secrets secrets;
  EXPECT_THAT(PgBackRestChildEnvironment(TestEnvironment(), secrets),
              ElementsAre("PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/var/lib/pghaul-agent"));
  secrets.set_s3_key("key");
  secrets.set_s3_key_secret("secret");
  EXPECT_THAT(PgBackRestChildEnvironment(TestEnvironment(), secrets),
              ElementsAre("PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/var/lib/pghaul-agent",
                          "PGBACKREST_REPO1_S3_KEY=key", "PGBACKREST_REPO1_S3_KEY_SECRET=secret"));
}

}  // namespace
}  // namespace pghaul::agent
