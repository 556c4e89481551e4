// One process per state directory: an exclusive flock(2) on `<dir>/<name>.lock`, held for the
// life of the process (the kernel drops it when the process exits, kill -9 included, so a
// restart after a crash never finds a stale lock). The file holds the holder's PID, only to
// name it in the refusal.
//
// Why: two controllers on one state database would both drive the same migrations (two
// fences, two promotions); SQLite's own locking serialises their writes but not their
// decisions.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace pghaul {

class StateDirLock {
 public:
  // Takes the lock without waiting. `process` names the kind of process in the messages, e.g.
  // "pghaul-controller". Errors: FailedPrecondition when another process holds it (naming its
  // PID, the directory and what to do); Internal/PermissionDenied when the lock file cannot be
  // opened (a symbolic link there is refused, never followed).
  static absl::StatusOr<StateDirLock> Acquire(const std::string& dir, const std::string& name,
                                              const std::string& process);

  StateDirLock(StateDirLock&& other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) {
    other.fd_ = -1;
  }
  StateDirLock& operator=(StateDirLock&& other) noexcept;
  StateDirLock(const StateDirLock&) = delete;
  StateDirLock& operator=(const StateDirLock&) = delete;
  ~StateDirLock();

  const std::string& path() const { return path_; }

 private:
  StateDirLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};

}  // namespace pghaul
