// The progress line of `pghaul watch`: a pure function of the agent's Progress and the width.
#include "cli/progress_bar.h"

#include <string>

#include "cli/text_layout.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr uint64_t kMiB = uint64_t{1} << 20;

v1::Progress Backup(double percent, uint64_t done, uint64_t total, double rate, int64_t eta) {
  v1::Progress progress;
  progress.set_percent(percent);
  progress.set_bytes_done(done);
  progress.set_bytes_total(total);
  progress.set_bytes_per_second(rate);
  progress.set_eta_seconds(eta);
  return progress;
}

TEST(ProgressBarTest, FullLineHasBarPercentBytesRateAndEta) {
  v1::Progress progress = Backup(45, 1843 * kMiB, 4 * kGiB, 120.0 * kMiB, 80);
  EXPECT_EQ(RenderProgressLine("backup", progress, 100),
            "backup  [##################----------------------]   45%  1.8 GiB / 4.0 GiB  "
            "120 MiB/s  ETA 1m20s");
}

TEST(ProgressBarTest, BarTakesTheRoomLeftAndNeverReachesTheLastColumn) {
  v1::Progress progress = Backup(50, 2 * kGiB, 4 * kGiB, 0, 0);
  for (int width : {200, 120, 80, 60, 40, 30, 20, 12}) {
    std::string line = RenderProgressLine("restore", progress, width);
    EXPECT_LE(DisplayWidth(line), static_cast<size_t>(width - 1)) << "width " << width;
  }
  // 40 at most inside the brackets, however wide the terminal.
  EXPECT_THAT(RenderProgressLine("restore", progress, 200),
              HasSubstr("[" + std::string(20, '#') + std::string(20, '-') + "]"));
  // Narrower: "restore  " (9), the brackets and gap (4) and " 50%  2.0 GiB / 4.0 GiB" (23)
  // leave 59 - 36 = 23 for the bar, half of it (rounded down) filled.
  EXPECT_THAT(RenderProgressLine("restore", progress, 60),
              HasSubstr("[" + std::string(11, '#') + std::string(12, '-') + "]"));
}

TEST(ProgressBarTest, TooNarrowForABarKeepsTheTextAndThenCutsIt) {
  v1::Progress progress = Backup(50, 2 * kGiB, 4 * kGiB, 0, 0);
  EXPECT_EQ(RenderProgressLine("restore", progress, 40), "restore   50%  2.0 GiB / 4.0 GiB");
  EXPECT_EQ(RenderProgressLine("restore", progress, 20), "restore   50%  2...");
}

TEST(ProgressBarTest, EmptyAndFullBars) {
  EXPECT_THAT(RenderProgressLine("", Backup(0, 0, 4 * kGiB, 0, 0), 80),
              HasSubstr("[" + std::string(40, '-') + "]    0%"));
  EXPECT_THAT(RenderProgressLine("", Backup(100, 4 * kGiB, 4 * kGiB, 0, 0), 80),
              HasSubstr("[" + std::string(40, '#') + "]  100%"));
  // 99.9% is not done: rounded down, and the bar is not full either.
  std::string almost = RenderProgressLine("", Backup(99.9, 0, 4 * kGiB, 0, 0), 80);
  EXPECT_THAT(almost, HasSubstr("   99%"));
  EXPECT_THAT(almost, HasSubstr("#-]"));
}

TEST(ProgressBarTest, PercentComesFromBytesWhenTheAgentSentNone) {
  v1::Progress progress = Backup(0, kGiB, 4 * kGiB, 0, 0);
  EXPECT_DOUBLE_EQ(ProgressPercent(progress), 25.0);
  EXPECT_EQ(ProgressSummary(progress), "25%  1.0 GiB / 4.0 GiB");
}

TEST(ProgressBarTest, UnknownPercentHasNoBar) {
  v1::Progress progress = Backup(0, 300 * kMiB, 0, 10.0 * kMiB, -1);
  EXPECT_LT(ProgressPercent(progress), 0);
  std::string line = RenderProgressLine("backup", progress, 80);
  EXPECT_EQ(line, "backup  300.0 MiB done  10 MiB/s");
  EXPECT_THAT(line, Not(HasSubstr("[")));
}

TEST(ProgressBarTest, EtaIsEstimatedFromTheRateWhenTheAgentGaveNone) {
  // 3 GiB left at 100 MiB/s: 30.72 s, rounded up.
  v1::Progress progress = Backup(25, kGiB, 4 * kGiB, 100.0 * kMiB, 0);
  EXPECT_EQ(ProgressEtaSeconds(progress), 31);
  EXPECT_THAT(ProgressSummary(progress), HasSubstr("100 MiB/s  ETA 31s"));
  // The agent's own estimate wins; -1 and no rate: unknown, nothing shown.
  progress.set_eta_seconds(600);
  EXPECT_EQ(ProgressEtaSeconds(progress), 600);
  EXPECT_EQ(ProgressEtaSeconds(Backup(25, kGiB, 4 * kGiB, 0, -1)), -1);
  EXPECT_THAT(ProgressSummary(Backup(25, kGiB, 4 * kGiB, 0, -1)), Not(HasSubstr("ETA")));
}

TEST(ProgressBarTest, NothingKnownIsAnEmptySummary) {
  EXPECT_EQ(ProgressSummary(v1::Progress()), "");
  EXPECT_EQ(RenderProgressLine("backup", v1::Progress(), 80), "backup");
}

TEST(ProgressBarTest, OutOfRangeValuesAreClamped) {
  EXPECT_DOUBLE_EQ(ProgressPercent(Backup(250, 0, 0, 0, 0)), 100.0);
  // More done than the total (a total estimated low): 100%, not more.
  EXPECT_DOUBLE_EQ(ProgressPercent(Backup(0, 5 * kGiB, 4 * kGiB, 0, 0)), 100.0);
}

}  // namespace
}  // namespace pghaul::cli
