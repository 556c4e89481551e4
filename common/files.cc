#include "common/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace pghaul {
namespace {

absl::Status ErrnoError(absl::string_view what, const std::string& path, int err) {
  std::string message = absl::StrCat(what, " '", path, "': ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

// The components of `path` below `base` ("a", "b" for /base/a/b), in order.
absl::StatusOr<std::vector<std::string>> ComponentsBelow(const std::string& base,
                                                         const std::string& path) {
  const bool below = base == "/" ? absl::StartsWith(path, "/")
                                 : path == base || absl::StartsWith(path, base + "/");
  if (base.empty() || base[0] != '/' || !below) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is not '", base, "' or a path below it"));
  }
  std::vector<std::string> components;
  if (path == base) return components;
  const std::string rest = path.substr(base == "/" ? 1 : base.size() + 1);
  for (absl::string_view component : absl::StrSplit(rest, '/')) {
    if (component.empty() || component == "." || component == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("'", path, "' has an empty, '.' or '..' component below '", base, "'"));
    }
    components.emplace_back(component);
  }
  return components;
}

std::string JoinPath(const std::string& dir, absl::string_view name) {
  return dir == "/" ? absl::StrCat("/", name) : absl::StrCat(dir, "/", name);
}

absl::Status NotALink(const std::string& path) {
  return absl::FailedPreconditionError(absl::StrCat(
      "'", path,
      "' is a symbolic link where the agent keeps its own files: remove it (the agent never "
      "writes or reads through one there)"));
}

absl::StatusOr<std::string> ReadOpenFile(int fd, const std::string& path, size_t max_bytes) {
  std::string out;
  char buffer[65536];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return ErrnoError("cannot read", path, err);
    }
    if (n == 0) break;
    out.append(buffer, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      ::close(fd);
      return absl::ResourceExhaustedError(
          absl::StrCat("'", path, "' is larger than ", max_bytes, " bytes"));
    }
  }
  ::close(fd);
  return out;
}

// Temporary names differ between calls of one process too, so concurrent writers of one path
// never share a temporary, and a stale one left by a crash (the same pid, in a container) is
// skipped rather than reused.
std::atomic<uint64_t> temp_counter{0};

absl::Status SyncDirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open directory", dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoError("cannot fsync directory", dir, err);
  return absl::OkStatus();
}

}  // namespace

absl::Status MakeDirectories(const std::string& path, unsigned mode) {
  if (path.empty()) return absl::InvalidArgumentError("empty directory path");
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string prefix = path.substr(0, pos);
    if (::mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) {
      return ErrnoError("cannot create directory", prefix, errno);
    }
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoError("cannot stat", path, errno);
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", path, "' exists and is not a directory"));
  }
  return absl::OkStatus();
}

absl::Status MakeDirectoriesBelow(const std::string& base, const std::string& path, unsigned mode) {
  absl::StatusOr<std::vector<std::string>> components = ComponentsBelow(base, path);
  if (!components.ok()) return components.status();
  if (absl::Status made = MakeDirectories(base, mode); !made.ok()) return made;
  std::string current = base;
  for (const std::string& component : *components) {
    current = JoinPath(current, component);
    if (::mkdir(current.c_str(), mode) != 0 && errno != EEXIST) {
      return ErrnoError("cannot create directory", current, errno);
    }
    struct stat st;
    if (::lstat(current.c_str(), &st) != 0) return ErrnoError("cannot stat", current, errno);
    if (S_ISLNK(st.st_mode)) return NotALink(current);
    if (!S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("'", current, "' exists and is not a directory"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckNoSymlinksBelow(const std::string& base, const std::string& path) {
  absl::StatusOr<std::vector<std::string>> components = ComponentsBelow(base, path);
  if (!components.ok()) return components.status();
  std::string current = base;
  for (size_t i = 0; i < components->size(); ++i) {
    current = JoinPath(current, (*components)[i]);
    struct stat st;
    if (::lstat(current.c_str(), &st) != 0) {
      if (errno == ENOENT) return absl::OkStatus();
      return ErrnoError("cannot stat", current, errno);
    }
    if (S_ISLNK(st.st_mode)) return NotALink(current);
    if (i + 1 < components->size() && !S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("'", current, "' exists and is not a directory"));
    }
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomicallyWith(const std::string& path, absl::string_view contents,
                                     const AtomicWriteOptions& options) {
  std::string temp;
  int fd = -1;
  const unsigned create_mode = options.exact_mode ? 0600 : options.mode;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    temp = absl::StrCat(path, ".tmp.", ::getpid(), ".", temp_counter.fetch_add(1));
    fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, create_mode);
    if (fd < 0 && errno != EEXIST) return ErrnoError("cannot create", temp, errno);
  }
  if (fd < 0) return ErrnoError("cannot create", temp, EEXIST);
  auto fail = [&](absl::string_view what, int err) {
    ::close(fd);
    ::unlink(temp.c_str());
    return ErrnoError(what, temp, err);
  };
  // Owner first (giving a file away may clear set-id bits), then the mode.
  if (options.set_owner && ::fchown(fd, options.uid, options.gid) != 0) {
    return fail("cannot chown", errno);
  }
  if (options.exact_mode && ::fchmod(fd, options.mode) != 0) return fail("cannot chmod", errno);
  size_t written = 0;
  while (written < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("cannot write", errno);
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("cannot flush", errno);
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(temp.c_str());
    return ErrnoError("cannot flush", temp, err);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(temp.c_str());
    return ErrnoError("cannot rename into", path, err);
  }
  return options.sync_directory ? SyncDirectoryOf(path) : absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents,
                                 unsigned mode) {
  return WriteFileAtomicallyWith(path, contents, {.mode = mode});
}

absl::Status WriteFileAtomicallyWithMode(const std::string& path, absl::string_view contents,
                                         unsigned mode) {
  return WriteFileAtomicallyWith(path, contents, {.mode = mode, .exact_mode = true});
}

absl::StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path, errno);
  return ReadOpenFile(fd, path, max_bytes);
}

absl::StatusOr<std::string> ReadRegularFile(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ELOOP) return NotALink(path);
    return ErrnoError("cannot open", path, errno);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoError("cannot stat", path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::FailedPreconditionError(absl::StrCat("'", path, "' is not a regular file"));
  }
  return ReadOpenFile(fd, path, max_bytes);
}

}  // namespace pghaul
