#include "common/state_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace pghaul {
namespace {

// The PID the holder wrote, or "" when the file holds none yet (it is written right after the
// lock is taken).
std::string HolderPid(int fd) {
  char buffer[32] = {};
  const ssize_t n = pread(fd, buffer, sizeof(buffer) - 1, 0);
  if (n <= 0) return "";
  int64_t pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::string_view(buffer, n)), &pid) ||
      pid <= 0) {
    return "";
  }
  return absl::StrCat(pid);
}

}  // namespace

absl::StatusOr<StateDirLock> StateDirLock::Acquire(const std::string& dir, const std::string& name,
                                                   const std::string& process) {
  const std::string path = absl::StrCat(dir, "/", name, ".lock");
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    const int error = errno;
    const std::string message =
        absl::StrCat("cannot open the lock file ", path, ": ", strerror(error),
                     error == ELOOP ? " (it is a symbolic link: remove it)" : "");
    if (error == EACCES || error == EPERM) return absl::PermissionDeniedError(message);
    return absl::InternalError(message);
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (error == EWOULDBLOCK) {
      const std::string pid = HolderPid(fd);
      close(fd);
      return absl::FailedPreconditionError(absl::StrCat(
          "another ", process, pid.empty() ? "" : absl::StrCat(" (PID ", pid, ")"),
          " is using the state directory ", dir,
          "; two would drive the same migrations at once. Stop the other one first, or give "
          "this one a state_dir of its own"));
    }
    close(fd);
    return absl::InternalError(absl::StrCat("cannot lock ", path, ": ", strerror(error)));
  }
  const std::string pid = absl::StrCat(getpid(), "\n");
  if (ftruncate(fd, 0) != 0 ||
      pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    const int error = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("cannot write ", path, ": ", strerror(error)));
  }
  return StateDirLock(fd, path);
}

StateDirLock& StateDirLock::operator=(StateDirLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.fd_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

StateDirLock::~StateDirLock() {
  // Closing the descriptor drops the lock; the file stays (removing it would race with a new
  // holder that opened it already).
  if (fd_ >= 0) close(fd_);
}

}  // namespace pghaul
