#include "agent/hba_fence.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"

namespace pghaul::agent {
namespace {

std::string BeginMarker(absl::string_view migration_id) {
  return absl::StrCat("# BEGIN pghaul fence ", migration_id, ":");
}

std::string EndLine(absl::string_view migration_id) {
  return absl::StrCat("# END pghaul fence ", migration_id);
}

// The offset of the first line of `text` starting with `prefix`, or npos.
size_t FindLineStartingWith(absl::string_view text, absl::string_view prefix, size_t from = 0) {
  size_t line = from;
  while (line < text.size()) {
    if (absl::StartsWith(text.substr(line), prefix)) return line;
    size_t newline = text.find('\n', line);
    if (newline == absl::string_view::npos) break;
    line = newline + 1;
  }
  return absl::string_view::npos;
}

absl::Status ErrnoError(absl::string_view what, absl::string_view path, int err) {
  std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM || err == EROFS) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

}  // namespace

absl::StatusOr<std::string> QuoteHbaRole(absl::string_view role) {
  if (role.empty()) return absl::InvalidArgumentError("an empty role name");
  for (char c : role) {
    if (c == '"' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "role name '", role,
          "' holds a double quote or a control character, which pg_hba.conf cannot name"));
    }
  }
  return absl::StrCat("\"", role, "\"");
}

absl::StatusOr<std::string> HbaFenceBlock(absl::string_view migration_id,
                                          const std::vector<std::string>& rejected_roles) {
  std::string block = absl::StrCat(
      BeginMarker(migration_id), " pghaul-agent fenced this server for the cutover of migration ",
      migration_id, " (only the agent's own role may log in). `pghaul abort ", migration_id,
      "` before promotion removes this block; do not edit it.\n");
  for (const std::string& role : rejected_roles) {
    absl::StatusOr<std::string> quoted = QuoteHbaRole(role);
    if (!quoted.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot fence the login role: ", quoted.status().message()));
    }
    absl::StrAppend(&block, "local all ", *quoted, " reject\n");
  }
  absl::StrAppend(&block, "host all all all reject\n", "local replication all reject\n",
                  "host replication all all reject\n", EndLine(migration_id), "\n");
  return block;
}

bool HasHbaFence(absl::string_view hba, absl::string_view migration_id) {
  return FindLineStartingWith(hba, BeginMarker(migration_id)) != absl::string_view::npos;
}

absl::StatusOr<std::string> RemoveHbaFence(absl::string_view hba, absl::string_view migration_id,
                                           bool* removed) {
  if (removed != nullptr) *removed = false;
  const size_t begin = FindLineStartingWith(hba, BeginMarker(migration_id));
  if (begin == absl::string_view::npos) return std::string(hba);
  const std::string end_line = EndLine(migration_id);
  size_t end = FindLineStartingWith(hba, end_line, begin);
  // The END line must be exactly the marker (not "# END pghaul fence m1x").
  while (end != absl::string_view::npos) {
    size_t after = end + end_line.size();
    if (after == hba.size() || hba[after] == '\n') break;
    const size_t newline = hba.find('\n', end);
    end = newline == absl::string_view::npos ? absl::string_view::npos
                                             : FindLineStartingWith(hba, end_line, newline + 1);
  }
  if (end == absl::string_view::npos) {
    return absl::DataLossError(absl::StrCat(
        "pg_hba.conf holds the BEGIN marker of pghaul's fence for ", migration_id, " but no '",
        end_line, "' line after it: the block was edited; remove it by hand"));
  }
  size_t stop = end + end_line.size();
  if (stop < hba.size()) ++stop;  // its newline
  if (removed != nullptr) *removed = true;
  return absl::StrCat(hba.substr(0, begin), hba.substr(stop));
}

absl::StatusOr<std::string> AddHbaFence(absl::string_view hba, absl::string_view migration_id,
                                        const std::vector<std::string>& rejected_roles) {
  absl::StatusOr<std::string> block = HbaFenceBlock(migration_id, rejected_roles);
  if (!block.ok()) return block.status();
  absl::StatusOr<std::string> without = RemoveHbaFence(hba, migration_id);
  if (!without.ok()) return without.status();
  return absl::StrCat(*block, *without);
}

absl::Status ReplaceFileKeepingOwner(const std::string& path, absl::string_view contents) {
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr) {
    return ErrnoError("cannot resolve", path, errno);
  }
  const std::string target = resolved;
  struct stat st;
  if (::stat(target.c_str(), &st) != 0) return ErrnoError("cannot stat", target, errno);
  // Only a regular file is replaced: the server's hba_file could name a device or a directory.
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(target, " (", path, ") is not a regular file: not replaced"));
  }
  // Owner (only root may give it away; as the owner itself there is nothing to do) and mode
  // of the original, given to the temporary before anything is written.
  AtomicWriteOptions options{
      .mode = st.st_mode & 07777, .exact_mode = true, .sync_directory = true};
  if (::geteuid() == 0 || st.st_uid != ::geteuid()) {
    options.set_owner = true;
    options.uid = st.st_uid;
    options.gid = st.st_gid;
  }
  return WriteFileAtomicallyWith(target, contents, options);
}

}  // namespace pghaul::agent
