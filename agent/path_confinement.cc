#include "agent/path_confinement.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/validators.h"

namespace pghaul::agent {
namespace {

absl::Status Unresolvable(absl::string_view path, absl::string_view why) {
  const bool denied = absl::StrContains(why, "Permission denied");
  return absl::FailedPreconditionError(absl::StrCat(
      "cannot resolve '", absl::CHexEscape(path), "': ", why,
      denied ? " (the agent's OS user must be able to search every directory above it)" : ""));
}

// The parent of an absolute, normalized path other than "/".
std::string Parent(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string Join(const std::string& dir, absl::string_view name) {
  return dir == "/" ? absl::StrCat("/", name) : absl::StrCat(dir, "/", name);
}

}  // namespace

absl::StatusOr<std::string> ResolvePath(absl::string_view path) {
  PGH_RETURN_IF_ERROR(ValidateAbsolutePath(path));
  std::string prefix(path);
  std::vector<std::string> missing;  // innermost first
  std::string resolved;
  while (true) {
    char buffer[PATH_MAX];
    if (::realpath(prefix.c_str(), buffer) != nullptr) {
      resolved = buffer;
      break;
    }
    const int err = errno;
    // ENOENT: the prefix, or the target of a link in it, does not exist. Anything else (ELOOP,
    // ENOTDIR, EACCES) means the kernel could not follow it either.
    if (err != ENOENT || prefix == "/") return Unresolvable(prefix, strerrordesc_np(err));
    missing.push_back(prefix.substr(prefix.rfind('/') + 1));
    prefix = Parent(prefix);
  }
  if (!missing.empty()) {
    // realpath failed on prefix + this name: either nothing is there (fine: nothing below it
    // exists either) or a link to nothing, which creating a file or directory would follow.
    const std::string first = Join(resolved, missing.back());
    struct stat st;
    if (::lstat(first.c_str(), &st) == 0) {
      return Unresolvable(
          path, absl::StrCat("'", absl::CHexEscape(first), "' is ",
                             S_ISLNK(st.st_mode) ? "a symbolic link to something that does not "
                                                   "exist (creating it would follow the link)"
                                                 : "there but cannot be resolved"));
    }
    if (errno != ENOENT) return Unresolvable(first, strerrordesc_np(errno));
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) resolved = Join(resolved, *it);
  return resolved;
}

absl::StatusOr<bool> ResolvedPathIsWithin(absl::string_view path, absl::string_view area) {
  PGH_ASSIGN_OR_RETURN(std::string resolved_path, ResolvePath(path));
  PGH_ASSIGN_OR_RETURN(std::string resolved_area, ResolvePath(area));
  return PathWithinRoots(resolved_path, {resolved_area});
}

PathConfinement::PathConfinement(std::vector<std::string> roots, std::vector<ReservedArea> reserved)
    : roots_(std::move(roots)), reserved_(std::move(reserved)) {}

absl::StatusOr<std::string> PathConfinement::Check(absl::string_view path,
                                                   absl::string_view what) const {
  // The grammar first, so that a relative or ".." path gets the validator's own message.
  PGH_RETURN_IF_ERROR(ValidateAbsolutePath(path, what));
  absl::StatusOr<std::string> resolved = ResolvePath(path);
  if (!resolved.ok()) {
    return absl::Status(resolved.status().code(),
                        absl::StrCat(what, ": ", resolved.status().message()));
  }
  std::vector<std::string> resolved_roots;
  for (const std::string& root : roots_) {
    absl::StatusOr<std::string> resolved_root = ResolvePath(root);
    if (resolved_root.ok()) resolved_roots.push_back(*std::move(resolved_root));
  }
  if (!PathWithinRoots(*resolved, resolved_roots)) {
    // The lexical check's own error, about the path as the task gave it when it is outside as
    // written; otherwise say where a link led it.
    if (!PathWithinRoots(path, roots_)) return ValidatePathWithinRoots(path, roots_, what);
    return absl::InvalidArgumentError(absl::StrCat(
        what, " '", absl::CHexEscape(path), "' leads through a symbolic link to '",
        absl::CHexEscape(*resolved), "', outside the agent's allowed roots (",
        absl::StrJoin(roots_, ", "), "): a task may not name a path outside them by a link"));
  }
  for (const ReservedArea& area : reserved_) {
    absl::StatusOr<std::string> resolved_area = ResolvePath(area.path);
    // An area that cannot be resolved holds nothing a resolved path could be inside, except
    // through its lexical form, which is checked too.
    const bool inside = PathWithinRoots(path, {area.path}) ||
                        (resolved_area.ok() && PathWithinRoots(*resolved, {*resolved_area}));
    if (inside) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " '", absl::CHexEscape(path), "' is inside ", area.what, " (", area.path,
          "), which no task may name even though it lies in the agent's roots"));
    }
  }
  return resolved;
}

}  // namespace pghaul::agent
