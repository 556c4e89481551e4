// The one place that decides which paths on its host the agent lets the controller's tasks name
// (posix repository paths, CA, certificate and key files), and how a path is resolved first.
//
// Why resolve: a check on the text of a path ("/srv/backups/repo" starts with "/srv/backups")
// says nothing about where the kernel lands when pgBackRest opens it. A symbolic link inside a
// root (say, on a repository filesystem that other hosts write to) can lead anywhere, e.g. into
// the data directory. So a path is resolved the way the kernel would resolve it now: realpath(3)
// of its longest existing prefix, then the components that do not exist yet appended as they
// are. Those cannot be links, with one exception that is refused: the first missing component
// may be a link to nothing (realpath fails on it), which creating a file there would follow. The
// roots are resolved the same way, so a root that is itself a link (/backups -> /mnt/nfs) keeps
// working as its operator meant.
//
// What it cannot do: a link made after the check (between validation and pgBackRest's open) is
// not seen; the agent checks again before each pgBackRest command, and its own files under
// state_dir refuse links when they are created or read (common/files.h). Roots should be
// writable only by the database's OS user and root.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pghaul::agent {

// Resolves `path` as described above. The result is absolute, normalized and free of links.
// Errors: InvalidArgument for a path that is not absolute and normalized (ValidateAbsolutePath:
// relative, "..", ".", "//" or a trailing '/'); FailedPrecondition naming the component when an
// existing one cannot be followed (a link to nothing, a link loop, a file used as a directory)
// or searched (permission denied).
absl::StatusOr<std::string> ResolvePath(absl::string_view path);

// Whether `path` is `area` or lies below it, both resolved with ResolvePath (component-wise:
// /srv/a2 is not below /srv/a). Errors: those of ResolvePath, for either.
absl::StatusOr<bool> ResolvedPathIsWithin(absl::string_view path, absl::string_view area);

// A place inside the roots that no task may name all the same, e.g. the data directory when a
// root holds it.
struct ReservedArea {
  std::string path;  // absolute
  std::string what;  // for errors, e.g. "PostgreSQL's data directory"
};

// Where the paths of tasks may lie: inside (or at) one of `roots` and inside none of `reserved`,
// once everything is resolved. Cheap to build; holds no file descriptor, so every Check sees
// the file system as it is then.
class PathConfinement {
 public:
  explicit PathConfinement(std::vector<std::string> roots, std::vector<ReservedArea> reserved = {});

  // Checks `path`, which a task names as `what` ("repository path"), and returns it resolved.
  // Errors:
  //   InvalidArgument     not absolute and normalized; outside every root once resolved (the
  //                       message lists the roots, and where the path leads when a link moved
  //                       it); inside a reserved area.
  //   FailedPrecondition  it cannot be resolved (see ResolvePath).
  // A root that cannot be resolved itself confines nothing (such a root is reported at
  // configuration load, not here).
  absl::StatusOr<std::string> Check(absl::string_view path, absl::string_view what) const;

  const std::vector<std::string>& roots() const { return roots_; }
  const std::vector<ReservedArea>& reserved() const { return reserved_; }

 private:
  std::vector<std::string> roots_;
  std::vector<ReservedArea> reserved_;
};

}  // namespace pghaul::agent
