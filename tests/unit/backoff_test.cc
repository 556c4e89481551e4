#include "common/backoff.h"

#include "gtest/gtest.h"

namespace pghaul {
namespace {

TEST(BackoffTest, GrowsExponentiallyWithJitterAndStaysUnderTheCap) {
  Backoff backoff(absl::Milliseconds(100), absl::Seconds(5), /*seed=*/42);
  absl::Duration expected_base = absl::Milliseconds(100);
  for (int i = 0; i < 12; ++i) {
    absl::Duration d = backoff.Next();
    EXPECT_GE(d, expected_base / 2) << "attempt " << i;
    EXPECT_LE(d, expected_base) << "attempt " << i;
    expected_base = std::min(expected_base * 2, absl::Seconds(5));
  }
  EXPECT_LE(backoff.Next(), absl::Seconds(5));
}

TEST(BackoffTest, ResetStartsOverFromTheInitialDelay) {
  Backoff backoff(absl::Milliseconds(100), absl::Seconds(5), /*seed=*/7);
  for (int i = 0; i < 10; ++i) backoff.Next();
  backoff.Reset();
  EXPECT_LE(backoff.Next(), absl::Milliseconds(100));
}

TEST(BackoffTest, JitterSpreadsAgentsThatStartedTogether) {
  Backoff a(absl::Seconds(1), absl::Seconds(30), /*seed=*/1);
  Backoff b(absl::Seconds(1), absl::Seconds(30), /*seed=*/2);
  int different = 0;
  for (int i = 0; i < 5; ++i) different += (a.Next() != b.Next());
  EXPECT_GT(different, 0);
}

}  // namespace
}  // namespace pghaul
