// Fuzzes the progress parsers of agent/pgbackrest_progress.h (console lines, the backup lock
// file, the exec id of a "command begin" line) and feeds what they accept to a ProgressTracker,
// as the pgBackRest executor does. Input: text, read line by line; each line is also tried as a
// lock file (the committed corpus holds both kinds).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/pgbackrest_progress.h"
#include "common/clock.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using pghaul::agent::FileProgress;
using pghaul::agent::LockFileProgress;
using pghaul::agent::ParseBackupLockFile;
using pghaul::agent::ParseExecIdFromBeginLine;
using pghaul::agent::ParseFileProgressLine;
using pghaul::agent::ParseSizeText;
using pghaul::agent::ProgressTracker;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  pghaul::fuzz::QuietLogging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);

  pghaul::FakeClock clock;
  std::vector<pghaul::v1::Progress> events;
  ProgressTracker tracker(&clock,
                          [&events](const pghaul::v1::Progress& p) { events.push_back(p); });

  auto check_lock_file = [&](absl::string_view contents) {
    std::optional<LockFileProgress> lock = ParseBackupLockFile(contents);
    if (!lock.has_value() || !lock->percent.has_value()) return;
    if (!(*lock->percent >= 0 && *lock->percent <= 100)) std::abort();
    tracker.AddPercent(*lock->percent);
  };

  check_lock_file(text);
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (std::optional<std::string> id = ParseExecIdFromBeginLine(line); id.has_value()) {
      if (id->empty() || id->find(' ') != std::string::npos) std::abort();
    }
    if (std::optional<FileProgress> file = ParseFileProgressLine(line); file.has_value()) {
      // Documented: a cumulative percentage, 0..100.
      if (!(file->percent >= 0 && file->percent <= 100)) std::abort();
      tracker.AddFile(*file);
    }
    if (line.size() < 32) (void)ParseSizeText(line);
    check_lock_file(line);
    // Time moves by an amount the input chooses, so the rate limit is exercised both ways.
    clock.Advance(absl::Milliseconds(line.size() * 37));
    tracker.Tick();
  }
  tracker.Complete();

  // Documented: percent never goes down, at 100 % the ETA is 0, and bytes only add up.
  double percent = 0;
  uint64_t bytes = 0;
  for (const pghaul::v1::Progress& event : events) {
    if (event.percent() < percent || event.percent() > 100) std::abort();
    if (event.bytes_done() < bytes) std::abort();
    if (event.eta_seconds() < -1) std::abort();
    percent = event.percent();
    bytes = event.bytes_done();
  }
  if (events.empty() || events.back().percent() != 100 || events.back().eta_seconds() != 0) {
    std::abort();
  }
  return 0;
}
