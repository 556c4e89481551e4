// Progress of a running pgBackRest backup or restore (2.45), from the two places it shows:
//
// 1. Console lines at log level detail, one per file, with the file's size and the cumulative
//    percentage of the whole job:
//      P01 DETAIL: backup file /data/base/5/16396 (256.1MB, 79.75%) checksum 0bcf...
//      P01 DETAIL: backup file /data/base/1/13404 (0B, 100.00%)
//      P01 DETAIL: backup file /data/PG_VERSION (bundle 1/0, 3B, 0.04%) checksum ...
//      P01 DETAIL: match file from prior backup /data/global/6247 (8KB, 0.07%) checksum ...
//      P01 DETAIL: checksum resumed file /data/... (8KB, 1.20%) checksum ...
//      P01 DETAIL: restore file /data/base/5/16396 (269.0MB, 80.00%) checksum 3a5d...
//      P01 DETAIL: restore file /data/PG_VERSION - exists and matches backup (bundle X/1/40, 3B,
//                  0.04%) checksum ...
//    Sizes are rounded (pgBackRest prints "256.1MB", "45MB", "768KB", "0B"), so bytes derived
//    from them are estimates.
// 2. The backup lock file <lock-path>/<stanza>-backup.lock, which the backup rewrites as it goes:
//      {"execId":"27806-c4a358e8","pctCplt":7975,"pid":27806}      (pctCplt = percent x 100)
//    and which holds no pctCplt before copying starts and again after the backup finished. The
//    execId matches the "--exec-id=" that the "backup command begin" line prints, so stale files
//    of earlier runs can be told apart.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "pghaul/v1/agent_link.pb.h"

namespace pghaul::agent {

struct FileProgress {
  double percent = 0;       // cumulative percentage of the job, 0..100
  uint64_t file_bytes = 0;  // this file's size as printed (rounded)
};

// Parses one console line of a backup or restore (format above); nullopt for any other line.
std::optional<FileProgress> ParseFileProgressLine(absl::string_view line);

// Parses a pgBackRest size: "0B", "3B", "768KB", "256.1MB", "45MB", "1.2GB", "2TB", "1PB"
// (1 KB = 1024 B). nullopt when it is not one.
std::optional<uint64_t> ParseSizeText(absl::string_view text);

struct LockFileProgress {
  std::string exec_id;
  std::optional<double> percent;  // pctCplt / 100; nullopt when the file has none
};

// Parses the contents of a backup lock file; nullopt when it is not JSON of that shape (e.g. read
// while being rewritten).
std::optional<LockFileProgress> ParseBackupLockFile(absl::string_view contents);

// The exec id of a "<command> command begin" console line ("... --exec-id=27806-c4a358e8 ..."),
// or nullopt.
std::optional<std::string> ParseExecIdFromBeginLine(absl::string_view line);

// Turns progress samples into v1::Progress events: percent never goes down, at most one event
// per `min_interval` (the newest sample wins; Flush() sends one held back), and rates are
// averages since the first sample:
//   bytes_done        sum of file sizes from console lines (0 when only the lock file is seen)
//   bytes_total       bytes_done * 100 / percent, once percent >= 1 (an estimate; 0 before)
//   bytes_per_second  bytes_done growth over time since the first sample (0 when unknown)
//   eta_seconds       time the remaining percent takes at the average percent rate so far, or
//                     -1 when there is no rate yet; 0 at 100 %.
// Thread-safe: console lines and a lock-file poller may feed it from different threads. `emit`
// is called with the tracker's lock held, so events keep their order; it must not call back
// into the tracker.
class ProgressTracker {
 public:
  using Emit = std::function<void(const v1::Progress&)>;

  static constexpr absl::Duration kDefaultMinInterval = absl::Milliseconds(500);

  ProgressTracker(Clock* clock, Emit emit, absl::Duration min_interval = kDefaultMinInterval);

  // A console file line: adds its bytes and moves the percentage.
  void AddFile(const FileProgress& file);
  // A percentage without bytes (the lock file).
  void AddPercent(double percent);
  // The job finished successfully: records 100 % and sends it at once.
  void Complete();
  // Sends the newest sample if it was held back, once the interval since the last event passed
  // (call it periodically so a held-back sample does not wait for the next one).
  void Tick();
  // Sends the newest sample if it was held back, now.
  void Flush();

  // The newest state, whether sent or not (for tests and the final result).
  v1::Progress Current() const;

 private:
  void Record(double percent, uint64_t added_bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Progress Build(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeEmit(bool force) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock* const clock_;
  const Emit emit_;
  const absl::Duration min_interval_;

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time first_time_ ABSL_GUARDED_BY(mu_);  // rates are measured from construction
  double percent_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t bytes_done_ ABSL_GUARDED_BY(mu_) = 0;
  // The percentage of the last console line: what bytes_done_ corresponds to.
  double percent_of_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool pending_ ABSL_GUARDED_BY(mu_) = false;
  bool emitted_any_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_emit_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pghaul::agent
