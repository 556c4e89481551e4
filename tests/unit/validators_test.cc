#include "common/validators.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

MATCHER_P(IsInvalidSaying, text, "") {
  return arg.code() == absl::StatusCode::kInvalidArgument &&
         std::string(arg.message()).find(text) != std::string::npos;
}

TEST(ValidatorsTest, StanzaAcceptsTheDocumentedGrammar) {
  for (const char* stanza : {"main", "s1", "A", "legacy-db_15", "0abc"}) {
    EXPECT_TRUE(ValidateStanza(stanza).ok()) << stanza;
  }
  EXPECT_TRUE(ValidateStanza(std::string(64, 'a')).ok());
}

TEST(ValidatorsTest, StanzaRefusesInjectionAndOptionLikeValues) {
  for (const char* stanza : {"a;rm -rf /", "-x", "--config=/etc/passwd", "_x", "", "a b", "a/b",
                             "a.b", "a\nb", "ümlaut"}) {
    EXPECT_THAT(ValidateStanza(stanza),
                IsInvalidSaying("expected 1 to 64 characters of [A-Za-z0-9_-]"))
        << stanza;
  }
  EXPECT_FALSE(ValidateStanza(std::string(65, 'a')).ok());
}

TEST(ValidatorsTest, ErrorsEchoTheValueEscapedAndShortened) {
  absl::Status status = ValidateStanza(std::string("a\nforged log line") + std::string(200, 'x'));
  std::string message(status.message());
  EXPECT_THAT(message, HasSubstr("a\\nforged"));
  EXPECT_THAT(message, Not(HasSubstr("\n")));
  EXPECT_THAT(message, HasSubstr("..."));
  EXPECT_LT(message.size(), 250u);
}

TEST(ValidatorsTest, MigrationIdUsesTheStanzaGrammar) {
  EXPECT_TRUE(ValidateMigrationId("mig-2024_05").ok());
  EXPECT_THAT(ValidateMigrationId("../etc"), IsInvalidSaying("migration id"));
  EXPECT_FALSE(ValidateMigrationId("-rf").ok());
}

TEST(ValidatorsTest, BackupLabelAcceptsFullDiffAndIncr) {
  EXPECT_TRUE(ValidateBackupLabel("20261126-142922F").ok());
  EXPECT_TRUE(ValidateBackupLabel("20261126-142922F_20261126-143041D").ok());
  EXPECT_TRUE(ValidateBackupLabel("20240229-235959F_20240301-000000I").ok());
}

TEST(ValidatorsTest, BackupLabelRefusesMalformedOrOutOfRangeLabels) {
  for (const char* label :
       {"20261126-142922", "20261126-142922D", "20261126-142922F ", "20261126 142922F",
        "2026112-142922F", "20261126-142922F_", "20261126-142922F_20261126-143041F",
        "20261326-142922F", "20230229-120000F", "20261126-246000F", "latest",
        "20261126-142922F; rm", "20261126-142922F_20261126-143041Dx"}) {
    EXPECT_THAT(ValidateBackupLabel(label), IsInvalidSaying("YYYYMMDD-HHMMSSF")) << label;
  }
}

TEST(ValidatorsTest, LsnAcceptsPostgresNotation) {
  for (const char* lsn : {"0/0", "0/16000138", "FFFFFFFF/FFFFFFFF", "1A/B"}) {
    EXPECT_TRUE(ValidateLsn(lsn).ok()) << lsn;
  }
}

TEST(ValidatorsTest, LsnRefusesAnythingElse) {
  for (const char* lsn :
       {"0/0; drop", "0/", "/0", "0", "0/16000138 ", "0/1a", "123456789/0", "0/0/0", "x/y", ""}) {
    EXPECT_THAT(ValidateLsn(lsn), IsInvalidSaying("upper-case hex")) << lsn;
  }
}

TEST(ValidatorsTest, WalFileNameIsTwentyFourUpperCaseHexDigits) {
  EXPECT_TRUE(ValidateWalFileName("000000010000000000000003").ok());
  EXPECT_TRUE(ValidateWalFileName("0000000A00000001000000FF").ok());
  for (const char* walfile :
       {"", "00000001000000000000003", "0000000100000000000000030", "00000001000000000000000a",
        "000000010000000000000003.partial", "00000002.history", "../00000001000000000000000",
        "00000001000000000000000;"}) {
    EXPECT_THAT(ValidateWalFileName(walfile), IsInvalidSaying("24 upper-case hex")) << walfile;
  }
}

TEST(ValidatorsTest, TargetTimeAcceptsTimestampsWithAnOffset) {
  for (const char* time : {"2024-05-01 13:45:00+00", "2024-05-01 13:45:00.123456-07:30",
                           "2024-02-29 00:00:00.1+14", "1999-12-31 23:59:59+05:45"}) {
    EXPECT_TRUE(ValidateTargetTime(time).ok()) << time;
  }
}

TEST(ValidatorsTest, TargetTimeRefusesMissingOffsetBadRangesAndTrailingText) {
  for (const char* time :
       {"2024-05-01 13:45:00", "2024-05-01T13:45:00+00", "2023-02-29 00:00:00+00",
        "2024-04-31 00:00:00+00", "2024-05-01 24:00:00+00", "2024-05-01 13:60:00+00",
        "2024-05-01 13:45:60+00", "2024-05-01 13:45:00.1234567+00", "2024-05-01 13:45:00.+00",
        "2024-05-01 13:45:00+16", "2024-05-01 13:45:00+01:60", "2024-05-01 13:45:00+00'; --",
        "2024-5-01 13:45:00+00", "now"}) {
    EXPECT_THAT(ValidateTargetTime(time), IsInvalidSaying("explicit UTC offset")) << time;
  }
}

TEST(ValidatorsTest, TimelineAcceptsKeywordsAndDecimalIds) {
  for (const char* timeline : {"current", "latest", "1", "2", "4294967295"}) {
    EXPECT_TRUE(ValidateTargetTimeline(timeline).ok()) << timeline;
  }
  for (const char* timeline : {"0", "01", "4294967296", "0x2", "-1", "Current", "", "1 "}) {
    EXPECT_THAT(ValidateTargetTimeline(timeline), IsInvalidSaying("'current', 'latest'"))
        << timeline;
  }
}

TEST(ValidatorsTest, EnumerationsListTheAllowedValues) {
  EXPECT_TRUE(ValidateBackupType("incr").ok());
  EXPECT_THAT(ValidateBackupType("differential"), IsInvalidSaying("one of full, diff, incr"));
  EXPECT_TRUE(ValidateRestoreType("standby").ok());
  EXPECT_THAT(ValidateRestoreType("xid"),
              IsInvalidSaying("immediate, standby, default, time, lsn"));
  EXPECT_TRUE(ValidateTargetAction("promote").ok());
  EXPECT_FALSE(ValidateTargetAction("exit").ok());
  EXPECT_TRUE(ValidateCompressType("zst").ok());
  EXPECT_THAT(ValidateCompressType("xz"), IsInvalidSaying("none, gz, lz4, zst, bz2"));
  EXPECT_TRUE(ValidateUriStyle("path").ok());
  EXPECT_FALSE(ValidateUriStyle("virtual").ok());
  EXPECT_TRUE(ValidateCipherType("aes-256-cbc").ok());
  EXPECT_FALSE(ValidateCipherType("aes").ok());
}

TEST(ValidatorsTest, AbsolutePathMustBeNormalized) {
  for (const char* path : {"/", "/var/lib/pgbackrest", "/srv/repo-1/a.b"}) {
    EXPECT_TRUE(ValidateAbsolutePath(path).ok()) << path;
  }
  for (const char* path : {"", "relative/repo", "/srv/../etc", "/srv/./repo", "/srv//repo",
                           "/srv/repo/", "/srv/..", "/srv/re\npo", "./srv"}) {
    EXPECT_THAT(ValidateAbsolutePath(path, "repository path"), IsInvalidSaying("repository path"))
        << path;
  }
  EXPECT_FALSE(ValidateAbsolutePath(std::string("/srv/re\0po", 10)).ok());
  EXPECT_FALSE(ValidateAbsolutePath("/" + std::string(4095, 'a')).ok());
}

TEST(ValidatorsTest, PathWithinRootsComparesWholeComponents) {
  std::vector<std::string> roots = {"/srv/backups", "/etc/pghaul/ca.pem"};
  EXPECT_TRUE(PathWithinRoots("/srv/backups", roots));
  EXPECT_TRUE(PathWithinRoots("/srv/backups/legacy/repo", roots));
  EXPECT_TRUE(PathWithinRoots("/etc/pghaul/ca.pem", roots));
  EXPECT_FALSE(PathWithinRoots("/srv/backups2", roots));
  EXPECT_FALSE(PathWithinRoots("/srv", roots));
  EXPECT_FALSE(PathWithinRoots("/srv/backups/../../etc", roots));
  EXPECT_FALSE(PathWithinRoots("/etc/pghaul/ca.pem.bak", roots));
  EXPECT_FALSE(PathWithinRoots("/srv/backups/x", {}));
  EXPECT_TRUE(PathWithinRoots("/anything", {"/"}));
  // A malformed root is ignored rather than matching by prefix.
  EXPECT_FALSE(PathWithinRoots("/srv/x", {"/srv/"}));
}

TEST(ValidatorsTest, PathOutsideRootsErrorListsTheRoots) {
  EXPECT_THAT(ValidatePathWithinRoots("/etc/shadow", {"/srv/a", "/srv/b"}, "repository path"),
              IsInvalidSaying("outside the agent's allowed roots (/srv/a, /srv/b)"));
  EXPECT_THAT(ValidatePathWithinRoots("/srv/a", {}, "repository path"),
              IsInvalidSaying("no allowed roots configured"));
  EXPECT_THAT(ValidatePathWithinRoots("srv/a", {"/"}, "repository path"),
              IsInvalidSaying("absolute, normalized"));
}

TEST(ValidatorsTest, HostNamesAndAddresses) {
  for (const char* host :
       {"s3.amazonaws.com", "minio", "127.0.0.1", "repo-1.example.org", "10.0.0.255"}) {
    EXPECT_TRUE(ValidateHostName(host).ok()) << host;
  }
  for (const char* host :
       {"", "https://s3.example.com", "s3.example.com:9000", "-bad.example", "bad-.example", "a..b",
        "256.1.1.1", "1.2.3", "01.2.3.4", "a b", "host/path", "user@host"}) {
    EXPECT_THAT(ValidateHostName(host, "S3 endpoint"), IsInvalidSaying("S3 endpoint")) << host;
  }
  EXPECT_TRUE(IsIpv4Address("192.168.1.10"));
  EXPECT_FALSE(IsIpv4Address("example.com"));
}

TEST(ValidatorsTest, S3BucketAndRegion) {
  EXPECT_TRUE(ValidateS3Bucket("pghaul-backups.v1").ok());
  for (const char* bucket :
       {"ab", "UPPER", "-start", "end-", "a..b", "under_score", "bucket/prefix"}) {
    EXPECT_THAT(ValidateS3Bucket(bucket), IsInvalidSaying("3 to 63 characters")) << bucket;
  }
  EXPECT_TRUE(ValidateS3Region("us-east-1").ok());
  EXPECT_FALSE(ValidateS3Region("").ok());
  EXPECT_FALSE(ValidateS3Region("us east").ok());
}

TEST(ValidatorsTest, NumericRanges) {
  EXPECT_TRUE(ValidateProcessMax(1).ok());
  EXPECT_TRUE(ValidateProcessMax(64).ok());
  EXPECT_THAT(ValidateProcessMax(0), IsInvalidSaying("expected 1 to 64"));
  EXPECT_THAT(ValidateProcessMax(65), IsInvalidSaying("expected 1 to 64"));
  EXPECT_TRUE(ValidatePort(5432).ok());
  EXPECT_FALSE(ValidatePort(0).ok());
  EXPECT_FALSE(ValidatePort(65536).ok());
}

TEST(ValidatorsTest, PostgresUser) {
  EXPECT_TRUE(ValidatePostgresUser("postgres").ok());
  EXPECT_TRUE(ValidatePostgresUser("_backup2").ok());
  EXPECT_THAT(ValidatePostgresUser("2x"), IsInvalidSaying("PostgreSQL user"));
  EXPECT_FALSE(ValidatePostgresUser("pg user").ok());
  EXPECT_FALSE(ValidatePostgresUser("").ok());
}

}  // namespace
}  // namespace pghaul
