// Inputs the fuzz targets (tests/fuzz) found to crash or misbehave, fed to the same functions in
// the normal build. Each input is read from the fuzz corpus, where it also stays as a seed
// (tests/fuzz/README.md).
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "agent/pgbackrest_info.h"
#include "agent/pgbackrest_progress.h"
#include "common/clock.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul {
namespace {

using ::testing::HasSubstr;

// tests/fuzz/corpus/<target>/<name>.
std::string CorpusFile(const std::string& target, const std::string& name) {
  std::string here = __FILE__;
  std::string tests = here.substr(0, here.rfind("/unit/"));
  absl::StatusOr<std::string> bytes =
      ReadFile(absl::StrCat(tests, "/fuzz/corpus/", target, "/", name));
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : "";
}

// pgbackrest_info_fuzz: a JSON number with a fraction or an exponent where pgBackRest prints an
// integer was converted to an integer type it does not fit (undefined behaviour; UBSan:
// "5.42556e+72 is outside the range of representable values of type 'unsigned long'").
TEST(FuzzRegressionsTest, PgBackRestInfoRefusesAFloatSystemId) {
  absl::StatusOr<std::vector<agent::StanzaInfo>> stanzas =
      agent::ParsePgBackRestInfo(CorpusFile("pgbackrest_info_fuzz", "crash-float-system-id.json"));
  ASSERT_FALSE(stanzas.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(stanzas.status())) << stanzas.status();
  EXPECT_THAT(stanzas.status().message(), HasSubstr("system-id"));
}

TEST(FuzzRegressionsTest, PgBackRestInfoRefusesAStatusCodeBeyondInt) {
  absl::StatusOr<std::vector<agent::StanzaInfo>> stanzas = agent::ParsePgBackRestInfo(
      CorpusFile("pgbackrest_info_fuzz", "crash-float-status-code.json"));
  ASSERT_FALSE(stanzas.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(stanzas.status())) << stanzas.status();
  EXPECT_THAT(stanzas.status().message(), HasSubstr("status.code"));
}

TEST(FuzzRegressionsTest, PgBackRestInfoStillReadsLargeIntegers) {
  // The range checks must not refuse what pgBackRest really prints: a system identifier above
  // 2^63 and sizes as plain integers.
  absl::StatusOr<std::vector<agent::StanzaInfo>> stanzas = agent::ParsePgBackRestInfo(
      R"([{"name":"s1","status":{"code":0},"db":[{"id":1,"system-id":18446744073709551615,)"
      R"("version":"15"}],"backup":[{"label":"20240501-134500F","type":"full",)"
      R"("info":{"size":31457280,"delta":31457280},"timestamp":{"start":1714571100,)"
      R"("stop":1714571160}}]}])");
  ASSERT_TRUE(stanzas.ok()) << stanzas.status();
  ASSERT_EQ(stanzas->size(), 1u);
  ASSERT_EQ((*stanzas)[0].databases.size(), 1u);
  EXPECT_EQ((*stanzas)[0].databases[0].system_id, 18446744073709551615u);
  ASSERT_EQ((*stanzas)[0].backups.size(), 1u);
  EXPECT_EQ((*stanzas)[0].backups[0].database_size, 31457280u);
}

TEST(FuzzRegressionsTest, PgBackRestInfoRefusesANegativeSize) {
  absl::StatusOr<std::vector<agent::StanzaInfo>> stanzas = agent::ParsePgBackRestInfo(
      R"([{"name":"s1","status":{"code":0},"backup":[{"info":{"size":-1}}]}])");
  ASSERT_FALSE(stanzas.ok());
  EXPECT_THAT(stanzas.status().message(), HasSubstr("size"));
}

// pgbackrest_progress_fuzz feeds each console line of a file to a ProgressTracker, as the
// pgBackRest executor does, and returns every event it emitted.
std::vector<v1::Progress> TrackLines(const std::string& text) {
  FakeClock clock;
  std::vector<v1::Progress> events;
  agent::ProgressTracker tracker(&clock, [&events](const v1::Progress& p) { events.push_back(p); });
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (std::optional<agent::FileProgress> file = agent::ParseFileProgressLine(line)) {
      tracker.AddFile(*file);
    }
    clock.Advance(absl::Seconds(10));
    tracker.Tick();
  }
  tracker.Flush();
  return events;
}

// pgbackrest_progress_fuzz: "99999999999999999999PB" overflowed llround, and ParseSizeText
// returned 2^63 for it; two such lines wrapped bytes_done around to 0.
TEST(FuzzRegressionsTest, ProgressSizeBeyondWhatFitsIsNotASize) {
  EXPECT_EQ(agent::ParseSizeText("99999999999999999999PB"), std::nullopt);
  EXPECT_EQ(agent::ParseSizeText("8192PB"), std::nullopt);  // 2^63 bytes
  EXPECT_EQ(agent::ParseSizeText("8191PB"), uint64_t{8191} << 50);
  EXPECT_EQ(agent::ParseSizeText("256.1MB"), uint64_t{268540314});
  const std::string lines = CorpusFile("pgbackrest_progress_fuzz", "crash-size-beyond-int64.txt");
  for (absl::string_view line : absl::StrSplit(lines, '\n', absl::SkipEmpty())) {
    EXPECT_FALSE(agent::ParseFileProgressLine(line).has_value()) << line;
  }
}

// pgbackrest_progress_fuzz: three files of 8191PB each wrapped the sum of sizes around, so
// bytes_done went down.
TEST(FuzzRegressionsTest, ProgressBytesSaturateInsteadOfWrapping) {
  std::vector<v1::Progress> events =
      TrackLines(CorpusFile("pgbackrest_progress_fuzz", "crash-sizes-sum-wraps.txt"));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].bytes_done(), uint64_t{8191} << 50);
  EXPECT_EQ(events[1].bytes_done(), uint64_t{16382} << 50);
  EXPECT_EQ(events[2].bytes_done(), std::numeric_limits<uint64_t>::max());
  for (const v1::Progress& event : events) EXPECT_GT(event.bytes_total(), 0u);
}

// pgbackrest_progress_fuzz: a percentage of 1e-300 made the ETA overflow llround, which
// returned a large negative number (-1 means "unknown"; nothing below it is valid).
TEST(FuzzRegressionsTest, ProgressEtaOfATinyPercentageSaturates) {
  std::vector<v1::Progress> events =
      TrackLines(CorpusFile("pgbackrest_progress_fuzz", "crash-eta-tiny-percent.txt"));
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().eta_seconds(), std::numeric_limits<int64_t>::max());
}

}  // namespace
}  // namespace pghaul
