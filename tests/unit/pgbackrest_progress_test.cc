#include "agent/pgbackrest_progress.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::agent {
namespace {

using ::testing::DoubleEq;
using ::testing::Optional;

std::string TestData(const std::string& name) {
  std::string here = __FILE__;
  std::string dir = here.substr(0, here.rfind('/'));
  absl::StatusOr<std::string> text = ReadFile(absl::StrCat(dir, "/testdata/pgbackrest/", name));
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? *text : "";
}

TEST(PgBackRestProgressTest, ParsesSizes) {
  EXPECT_THAT(ParseSizeText("0B"), Optional(0u));
  EXPECT_THAT(ParseSizeText("3B"), Optional(3u));
  EXPECT_THAT(ParseSizeText("768KB"), Optional(768u * 1024));
  EXPECT_THAT(ParseSizeText("45MB"), Optional(45u * 1024 * 1024));
  EXPECT_THAT(ParseSizeText("256.1MB"), Optional(268540314u));
  EXPECT_THAT(ParseSizeText("1.5GB"), Optional(1610612736u));
  EXPECT_THAT(ParseSizeText("2TB"), Optional(2199023255552u));
  EXPECT_EQ(ParseSizeText(""), std::nullopt);
  EXPECT_EQ(ParseSizeText("MB"), std::nullopt);
  EXPECT_EQ(ParseSizeText("12"), std::nullopt);
  EXPECT_EQ(ParseSizeText("-1B"), std::nullopt);
  EXPECT_EQ(ParseSizeText("1 MB"), std::nullopt);
}

TEST(PgBackRestProgressTest, ParsesRealBackupAndRestoreLines) {
  std::optional<FileProgress> file = ParseFileProgressLine(
      "2026-11-26 14:29:45.328 P01 DETAIL: backup file /tmp/h5-exp-43GRVw/data/base/5/16396 "
      "(256.1MB, 79.75%) checksum 0bcf37f982786cc5bff9584f405c00a9ed1c2a28");
  ASSERT_TRUE(file.has_value());
  EXPECT_THAT(file->percent, DoubleEq(79.75));
  EXPECT_EQ(file->file_bytes, 268540314u);

  file = ParseFileProgressLine(
      "2026-11-26 14:30:06.608 P01 DETAIL: backup file /tmp/x/data/base/1/13404 (0B, 100.00%)");
  ASSERT_TRUE(file.has_value());
  EXPECT_THAT(file->percent, DoubleEq(100));
  EXPECT_EQ(file->file_bytes, 0u);

  file = ParseFileProgressLine(
      "2026-11-26 14:31:24.536 P01 DETAIL: restore file /tmp/x/data2/base/5/16396 (269.0MB, "
      "80.00%) checksum 3a5d2a15b654f605ecb3160fd0d96b92159b4dc6");
  ASSERT_TRUE(file.has_value());
  EXPECT_THAT(file->percent, DoubleEq(80));
}

TEST(PgBackRestProgressTest, ParsesBundledDeltaAndPriorBackupLines) {
  std::optional<FileProgress> file = ParseFileProgressLine(
      "P01 DETAIL: restore file /var/lib/postgresql/15/demo/PG_VERSION - exists and matches "
      "backup (bundle 20241216-150952F/1/40, 3B, 0.04%) checksum 587b596f04f7db9c2cad3d6b87");
  ASSERT_TRUE(file.has_value());
  EXPECT_THAT(file->percent, DoubleEq(0.04));
  EXPECT_EQ(file->file_bytes, 3u);
  file = ParseFileProgressLine(
      "P01 DETAIL: match file from prior backup /db/global/pg_control (8KB, 12.50%) checksum ab");
  ASSERT_TRUE(file.has_value());
  EXPECT_EQ(file->file_bytes, 8192u);
  file = ParseFileProgressLine(
      "P01 DETAIL: backup file /db/PG_VERSION (bundle 1/0, 3B, 0.04%) checksum dd71038f");
  ASSERT_TRUE(file.has_value());
  EXPECT_EQ(file->file_bytes, 3u);
  // A path holding parentheses.
  file = ParseFileProgressLine("P02 DETAIL: backup file /ts/odd (dir)/1 (1KB, 50.00%)");
  ASSERT_TRUE(file.has_value());
  EXPECT_THAT(file->percent, DoubleEq(50));
}

TEST(PgBackRestProgressTest, IgnoresOtherLines) {
  for (const char* line : {
           "2026-11-26 14:29:21.598 P00   INFO: backup command begin 2.45: --type=full",
           "2026-11-26 14:30:07.153 P00   INFO: new backup label = 20261126-142922F",
           "2026-11-26 14:31:17.201 P00 DETAIL: create path '/tmp/x/data2/base'",
           "2026-11-26 14:31:32.640 P00   INFO: restore size = 336.2MB, file total = 977",
           "WARN: option 'repo1-retention-full' is not set (50.00%)",
           "P01 DETAIL: backup file /x (12MB, 101.00%)",
           "P01 DETAIL: backup file /x (12MB, abc%)",
           "",
       }) {
    EXPECT_EQ(ParseFileProgressLine(line), std::nullopt) << line;
  }
}

TEST(PgBackRestProgressTest, ParsesRealLockFiles) {
  std::optional<LockFileProgress> lock =
      ParseBackupLockFile(R"({"execId":"27806-c4a358e8","pctCplt":7975,"pid":27806})");
  ASSERT_TRUE(lock.has_value());
  EXPECT_EQ(lock->exec_id, "27806-c4a358e8");
  EXPECT_THAT(lock->percent, Optional(DoubleEq(79.75)));

  lock = ParseBackupLockFile(R"({"execId":"27806-c4a358e8","pid":27806})");
  ASSERT_TRUE(lock.has_value());
  EXPECT_EQ(lock->percent, std::nullopt);

  EXPECT_EQ(ParseBackupLockFile(""), std::nullopt);
  EXPECT_EQ(ParseBackupLockFile(R"({"execId":"27806-c4a3)"), std::nullopt);
  EXPECT_EQ(ParseBackupLockFile(R"({"pctCplt":100})"), std::nullopt);
  EXPECT_EQ(ParseBackupLockFile(R"({"execId":"x","pctCplt":"high"})"), std::nullopt);
  EXPECT_EQ(ParseBackupLockFile(R"({"execId":"x","pctCplt":20000})"), std::nullopt);
}

TEST(PgBackRestProgressTest, EveryCapturedLockFileSampleParses) {
  std::vector<double> percents;
  for (absl::string_view line :
       absl::StrSplit(TestData("backup-lock-file-samples.txt"), '\n', absl::SkipEmpty())) {
    std::optional<LockFileProgress> lock = ParseBackupLockFile(line);
    ASSERT_TRUE(lock.has_value()) << line;
    EXPECT_EQ(lock->exec_id, "27806-c4a358e8");
    if (lock->percent.has_value()) percents.push_back(*lock->percent);
  }
  ASSERT_GE(percents.size(), 3u);
  EXPECT_THAT(percents.front(), DoubleEq(0));
  EXPECT_THAT(percents.back(), DoubleEq(100));
}

TEST(PgBackRestProgressTest, ExecIdComesFromTheBeginLine) {
  EXPECT_THAT(ParseExecIdFromBeginLine(
                  "2026-11-26 14:29:21.598 P00   INFO: backup command begin 2.45: "
                  "--compress-type=gz --config=/c --exec-id=27806-c4a358e8 --lock-path=/l"),
              Optional(std::string("27806-c4a358e8")));
  EXPECT_EQ(ParseExecIdFromBeginLine("P00 INFO: backup command end: completed successfully"),
            std::nullopt);
  EXPECT_EQ(ParseExecIdFromBeginLine("P00 INFO: some line --exec-id=1-2"), std::nullopt);
}

class ProgressTrackerTest : public ::testing::Test {
 protected:
  ProgressTracker MakeTracker() {
    return ProgressTracker(&clock_, [this](const v1::Progress& p) { events_.push_back(p); });
  }
  FakeClock clock_;
  std::vector<v1::Progress> events_;
};

TEST_F(ProgressTrackerTest, EmitsAtMostEveryHalfSecondWithTheNewestSample) {
  ProgressTracker tracker = MakeTracker();
  tracker.AddPercent(1);
  ASSERT_EQ(events_.size(), 1u);  // the first sample goes out at once
  clock_.Advance(absl::Milliseconds(100));
  tracker.AddPercent(2);
  clock_.Advance(absl::Milliseconds(100));
  tracker.AddPercent(3);
  EXPECT_EQ(events_.size(), 1u);
  tracker.Tick();
  EXPECT_EQ(events_.size(), 1u);
  clock_.Advance(absl::Milliseconds(300));
  tracker.Tick();
  ASSERT_EQ(events_.size(), 2u);
  EXPECT_THAT(events_[1].percent(), DoubleEq(3));
  tracker.Tick();  // nothing new
  EXPECT_EQ(events_.size(), 2u);
  tracker.AddPercent(4);
  EXPECT_EQ(events_.size(), 2u);
  tracker.Flush();
  ASSERT_EQ(events_.size(), 3u);
  EXPECT_THAT(events_[2].percent(), DoubleEq(4));
}

TEST_F(ProgressTrackerTest, PercentNeverGoesDownAndRepeatsAreNotSent) {
  ProgressTracker tracker = MakeTracker();
  tracker.AddPercent(50);
  clock_.Advance(absl::Seconds(1));
  tracker.AddPercent(40);  // a lagging lock-file read
  tracker.AddPercent(50);
  tracker.Flush();
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_THAT(tracker.Current().percent(), DoubleEq(50));
}

TEST_F(ProgressTrackerTest, RatesAndEtaFromFileLines) {
  ProgressTracker tracker = MakeTracker();
  EXPECT_EQ(tracker.Current().eta_seconds(), -1);
  clock_.Advance(absl::Seconds(10));
  tracker.AddFile(FileProgress{25, 1000});
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_THAT(events_[0].percent(), DoubleEq(25));
  EXPECT_EQ(events_[0].bytes_done(), 1000u);
  EXPECT_EQ(events_[0].bytes_total(), 4000u);
  EXPECT_THAT(events_[0].bytes_per_second(), DoubleEq(100));
  EXPECT_EQ(events_[0].eta_seconds(), 30);  // 25 % took 10 s, 75 % left

  clock_.Advance(absl::Seconds(10));
  tracker.AddFile(FileProgress{50, 1000});
  ASSERT_EQ(events_.size(), 2u);
  EXPECT_EQ(events_[1].bytes_done(), 2000u);
  EXPECT_EQ(events_[1].bytes_total(), 4000u);
  EXPECT_EQ(events_[1].eta_seconds(), 20);

  tracker.Complete();
  ASSERT_EQ(events_.size(), 3u);
  EXPECT_THAT(events_[2].percent(), DoubleEq(100));
  EXPECT_EQ(events_[2].eta_seconds(), 0);
}

TEST_F(ProgressTrackerTest, LockFileAloneGivesPercentWithoutBytes) {
  ProgressTracker tracker = MakeTracker();
  clock_.Advance(absl::Seconds(4));
  tracker.AddPercent(0.5);  // below 1 %: no byte total estimate, and there are no bytes
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].bytes_done(), 0u);
  EXPECT_EQ(events_[0].bytes_total(), 0u);
  EXPECT_THAT(events_[0].bytes_per_second(), DoubleEq(0));
  EXPECT_EQ(events_[0].eta_seconds(), 796);
}

TEST_F(ProgressTrackerTest, RealBackupConsoleGivesRisingProgressEndingAt100) {
  ProgressTracker tracker = MakeTracker();
  int file_lines = 0;
  for (absl::string_view line : absl::StrSplit(TestData("backup-full-detail-console.txt"), '\n')) {
    clock_.Advance(absl::Milliseconds(200));
    if (std::optional<FileProgress> file = ParseFileProgressLine(line)) {
      ++file_lines;
      tracker.AddFile(*file);
    }
  }
  tracker.Flush();
  EXPECT_EQ(file_lines, 98);
  ASSERT_GE(events_.size(), 3u);
  for (size_t i = 1; i < events_.size(); ++i) {
    EXPECT_GE(events_[i].percent(), events_[i - 1].percent());
    EXPECT_GE(events_[i].bytes_done(), events_[i - 1].bytes_done());
  }
  EXPECT_THAT(events_.back().percent(), DoubleEq(100));
  // Only every 10th line was kept in the capture, so bytes cover most but not all of the
  // 321.2MB the backup reported; the first (256.1MB) file alone is 79.75 %.
  EXPECT_GT(events_.back().bytes_done(), 256u << 20);
  EXPECT_LT(events_.back().bytes_done(), 330u << 20);
}

TEST_F(ProgressTrackerTest, RealRestoreConsoleGivesRisingProgress) {
  ProgressTracker tracker = MakeTracker();
  double last = -1;
  for (absl::string_view line : absl::StrSplit(TestData("restore-detail-console.txt"), '\n')) {
    if (std::optional<FileProgress> file = ParseFileProgressLine(line)) {
      EXPECT_GE(file->percent, last);
      last = file->percent;
      tracker.AddFile(*file);
    }
  }
  EXPECT_THAT(last, DoubleEq(100));
  EXPECT_THAT(tracker.Current().percent(), DoubleEq(100));
}

}  // namespace
}  // namespace pghaul::agent
