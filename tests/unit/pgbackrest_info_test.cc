#include "agent/pgbackrest_info.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// The captured outputs live next to this file (see testdata/pgbackrest/README.md).
std::string TestData(const std::string& name) {
  std::string here = __FILE__;
  std::string dir = here.substr(0, here.rfind('/'));
  absl::StatusOr<std::string> text = ReadFile(absl::StrCat(dir, "/testdata/pgbackrest/", name));
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? *text : "";
}

StanzaInfo Stanza(const std::string& file) {
  absl::StatusOr<StanzaInfo> info = ParseStanzaInfo(TestData(file), "s1");
  EXPECT_TRUE(info.ok()) << info.status();
  return info.ok() ? *info : StanzaInfo{};
}

TEST(PgBackRestInfoTest, OneFullBackupIsOkWithEveryField) {
  StanzaInfo info = Stanza("info-ok-one-full-backup.json");
  EXPECT_EQ(info.name, "s1");
  EXPECT_EQ(info.status_code, kStanzaStatusOk);
  EXPECT_EQ(info.status_message, "ok");
  EXPECT_FALSE(info.backup_lock_held);
  EXPECT_EQ(info.cipher, "none");
  ASSERT_EQ(info.databases.size(), 1u);
  EXPECT_EQ(info.databases[0].system_id, 7712487103392237449u);
  EXPECT_EQ(info.databases[0].version, "15");
  ASSERT_EQ(info.archives.size(), 1u);
  EXPECT_EQ(info.archives[0].id, "15-1");
  EXPECT_EQ(info.archives[0].min, "000000010000000000000001");
  EXPECT_EQ(info.archives[0].max, "000000010000000000000012");
  ASSERT_EQ(info.backups.size(), 1u);
  const BackupSetInfo& set = info.backups[0];
  EXPECT_EQ(set.label, "20261126-142922F");
  EXPECT_EQ(set.type, "full");
  EXPECT_EQ(set.prior, "");
  EXPECT_THAT(set.reference, IsEmpty());
  EXPECT_EQ(set.timestamp_start, 1795703362);
  EXPECT_EQ(set.timestamp_stop, 1795703406);
  EXPECT_EQ(set.database_size, 336787165u);
  EXPECT_EQ(set.repository_size, 19853656u);
  EXPECT_EQ(set.lsn_start, "0/12000028");
  EXPECT_EQ(set.lsn_stop, "0/12000138");
  EXPECT_EQ(set.archive_start, "000000010000000000000012");
  EXPECT_FALSE(set.error);
  EXPECT_EQ(set.pgbackrest_version, "2.45");
  EXPECT_EQ(info.ValidBackupCount(), 1);
  ASSERT_NE(info.LatestValidBackup(), nullptr);
  EXPECT_EQ(info.LatestValidBackup()->label, "20261126-142922F");
  EXPECT_EQ(info.DescribeStatus(), "status 0 (ok)");
}

TEST(PgBackRestInfoTest, DiffBackupReferencesItsFull) {
  StanzaInfo info = Stanza("info-ok-full-and-diff.json");
  ASSERT_EQ(info.backups.size(), 2u);
  EXPECT_EQ(info.backups[1].type, "diff");
  EXPECT_EQ(info.backups[1].prior, "20261126-142922F");
  EXPECT_THAT(info.backups[1].reference, ElementsAre("20261126-142922F"));
  EXPECT_EQ(info.ValidBackupCount(), 2);
  EXPECT_EQ(info.LatestValidBackup()->label, "20261126-142922F_20261126-143041D");
}

TEST(PgBackRestInfoTest, RunningBackupShowsAsLockHeldWithStatusOk) {
  StanzaInfo info = Stanza("info-backup-running.json");
  EXPECT_EQ(info.status_code, kStanzaStatusOk);
  EXPECT_TRUE(info.backup_lock_held);
}

TEST(PgBackRestInfoTest, MissingStanzaIsCodeOne) {
  StanzaInfo info = Stanza("info-missing-stanza-path.json");
  EXPECT_EQ(info.status_code, kStanzaStatusMissingStanzaPath);
  EXPECT_THAT(info.backups, IsEmpty());
  EXPECT_THAT(info.databases, IsEmpty());
  EXPECT_EQ(info.LatestValidBackup(), nullptr);
  EXPECT_EQ(info.DescribeStatus(), "status 1 (missing stanza path)");
}

TEST(PgBackRestInfoTest, StanzaWithoutBackupsIsCodeTwo) {
  StanzaInfo info = Stanza("info-no-valid-backups.json");
  EXPECT_EQ(info.status_code, kStanzaStatusNoValidBackups);
  ASSERT_EQ(info.databases.size(), 1u);
  EXPECT_EQ(info.archives[0].min, "");  // null in the JSON
  EXPECT_EQ(info.ValidBackupCount(), 0);
}

TEST(PgBackRestInfoTest, DamagedRepositoriesAreReportedByCode) {
  EXPECT_EQ(Stanza("info-damaged-backup-info-removed.json").status_code,
            kStanzaStatusMissingStanzaData);
  StanzaInfo no_archive = Stanza("info-damaged-archive-dir-removed.json");
  EXPECT_EQ(no_archive.status_code, kStanzaStatusOther);
  EXPECT_THAT(no_archive.DescribeStatus(),
              HasSubstr("status 99 (other): repo1: [FileMissingError]"));
  StanzaInfo corrupt = Stanza("info-damaged-backup-info-corrupt.json");
  EXPECT_EQ(corrupt.status_code, kStanzaStatusOther);
  ASSERT_EQ(corrupt.repos.size(), 1u);
  EXPECT_THAT(corrupt.repos[0].message, HasSubstr("[FormatError]"));
}

TEST(PgBackRestInfoTest, EmptyArrayHasNoSuchStanza) {
  absl::StatusOr<std::vector<StanzaInfo>> all = ParsePgBackRestInfo("[]");
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(*all, IsEmpty());
  absl::StatusOr<StanzaInfo> info = ParseStanzaInfo("[]", "s1");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(info.status().message()), HasSubstr("no stanza 's1'"));
}

TEST(PgBackRestInfoTest, MalformedOutputIsAnError) {
  EXPECT_EQ(ParsePgBackRestInfo("not json").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ParsePgBackRestInfo("{}").status().message()), HasSubstr("array"));
  EXPECT_THAT(std::string(ParsePgBackRestInfo(R"([{"name":"s1"}])").status().message()),
              HasSubstr("no status.code"));
  EXPECT_THAT(
      std::string(
          ParsePgBackRestInfo(R"([{"name":"s1","status":{"code":"zero"}}])").status().message()),
      HasSubstr("unexpected shape"));
  EXPECT_FALSE(
      ParsePgBackRestInfo(R"([{"name":"s1","status":{"code":0},"backup":[{"label":5}]}])").ok());
}

TEST(PgBackRestInfoTest, BackupWithErrorFlagIsNotValid) {
  constexpr char kJson[] = R"([{"name":"s1","status":{"code":0,"message":"ok"},"backup":[
      {"label":"20260101-000000F","type":"full","error":false,"timestamp":{"start":1,"stop":2}},
      {"label":"20260102-000000F","type":"full","error":true,"timestamp":{"start":3,"stop":4}}]}])";
  absl::StatusOr<StanzaInfo> info = ParseStanzaInfo(kJson, "s1");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->ValidBackupCount(), 1);
  EXPECT_EQ(info->LatestValidBackup()->label, "20260101-000000F");
}

TEST(PgBackRestInfoTest, StatusCodesHaveNames) {
  EXPECT_EQ(DescribeStanzaStatusCode(3), "missing stanza data");
  EXPECT_EQ(DescribeStanzaStatusCode(6), "requested backup not found");
  EXPECT_EQ(DescribeStanzaStatusCode(42), "unknown status code 42");
}

}  // namespace
}  // namespace pghaul::agent
