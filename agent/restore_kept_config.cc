#include "agent/restore_kept_config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace pghaul::agent {
namespace {

// Configuration files are small; anything larger is not one.
constexpr size_t kMaxConfigFileBytes = 64 << 20;

absl::Status ErrnoStatus(absl::string_view what, const std::string& path, int err) {
  const std::string message = absl::StrCat(what, " '", path, "': ", strerrordesc_np(err));
  if (err == ENOENT) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

absl::Status RemoveTree(const std::string& path) {
  std::error_code error;
  std::filesystem::remove_all(path, error);
  if (error)
    return absl::InternalError(absl::StrCat("cannot remove '", path, "': ", error.message()));
  return absl::OkStatus();
}

// Whether `path` is a real directory (not a link to one); false when it does not exist. Errors:
// FailedPrecondition when it is anything else, so copies are never read or written through a
// link planted in the agent's state directory.
absl::StatusOr<bool> IsRealDirectory(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return false;
    return ErrnoStatus("cannot stat", path, errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "'", path, "' is ", S_ISLNK(st.st_mode) ? "a symbolic link" : "not a directory",
        ": the agent keeps the target's configuration files only in a directory of its own"));
  }
  return true;
}

std::string ParentOf(const std::string& path) { return path.substr(0, path.rfind('/')); }

}  // namespace

absl::StatusOr<std::vector<std::string>> KeepConfigFiles(const std::string& data_dir,
                                                         const std::string& keep_dir) {
  std::vector<std::string> kept;
  struct stat st;
  // The migration's directory, where the copies go, must not lead elsewhere either.
  PGH_ASSIGN_OR_RETURN(bool parent_exists, IsRealDirectory(ParentOf(keep_dir)));
  if (!parent_exists) {
    return absl::NotFoundError(absl::StrCat("'", ParentOf(keep_dir), "' does not exist"));
  }
  PGH_ASSIGN_OR_RETURN(bool kept_before, IsRealDirectory(keep_dir));
  if (kept_before) {
    // Copies of an interrupted restore: the target's own files, whatever data_dir holds now.
    for (const char* name : kKeptConfigFileNames) {
      if (lstat(absl::StrCat(keep_dir, "/", name).c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
        kept.push_back(name);
      }
    }
    return kept;
  }
  const std::string temp_dir = absl::StrCat(keep_dir, ".tmp");
  PGH_RETURN_IF_ERROR(RemoveTree(temp_dir));
  if (mkdir(temp_dir.c_str(), 0700) != 0) {
    return ErrnoStatus("cannot create directory", temp_dir, errno);
  }
  for (const char* name : kKeptConfigFileNames) {
    const std::string source = absl::StrCat(data_dir, "/", name);
    if (lstat(source.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) continue;
      return ErrnoStatus("cannot stat", source, errno);
    }
    // A symbolic link points outside the data directory, where a restore does not write; putting
    // a copy back would turn the link into a file.
    if (!S_ISREG(st.st_mode)) continue;
    // O_NOFOLLOW: a link swapped in since the lstat is refused, not followed.
    PGH_ASSIGN_OR_RETURN(std::string contents, ReadRegularFile(source, kMaxConfigFileBytes));
    PGH_RETURN_IF_ERROR(WriteFileAtomicallyWithMode(absl::StrCat(temp_dir, "/", name), contents,
                                                    st.st_mode & 0777));
    kept.push_back(name);
  }
  if (rename(temp_dir.c_str(), keep_dir.c_str()) != 0) {
    return ErrnoStatus("cannot rename into", keep_dir, errno);
  }
  return kept;
}

absl::Status PutBackConfigFiles(const std::string& data_dir, const std::string& keep_dir) {
  struct stat st;
  PGH_ASSIGN_OR_RETURN(bool kept, IsRealDirectory(keep_dir));
  if (!kept) return absl::OkStatus();
  struct stat data;
  if (stat(data_dir.c_str(), &data) != 0) return ErrnoStatus("cannot stat", data_dir, errno);
  for (const char* name : kKeptConfigFileNames) {
    const std::string copy = absl::StrCat(keep_dir, "/", name);
    if (lstat(copy.c_str(), &st) != 0) {
      if (errno == ENOENT) continue;
      return ErrnoStatus("cannot stat", copy, errno);
    }
    PGH_ASSIGN_OR_RETURN(std::string contents, ReadRegularFile(copy, kMaxConfigFileBytes));
    // The rename replaces whatever is at `target` (a link too), never a link's target.
    const std::string target = absl::StrCat(data_dir, "/", name);
    PGH_RETURN_IF_ERROR(WriteFileAtomicallyWithMode(target, contents, st.st_mode & 0777));
    // The server must own its files; an agent running as that user owns them already.
    if ((data.st_uid != geteuid() || data.st_gid != getegid()) &&
        lchown(target.c_str(), data.st_uid, data.st_gid) != 0) {
      return ErrnoStatus("cannot chown", target, errno);
    }
  }
  return RemoveTree(keep_dir);
}

}  // namespace pghaul::agent
