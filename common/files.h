// Small file helpers with absl::Status errors that name the path.
#pragma once

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pghaul {

// Creates `path` and its missing parents with `mode` (like mkdir -p).
absl::Status MakeDirectories(const std::string& path, unsigned mode = 0750);

// Creates `path`, which must be `base` or lie below it, with `mode` for every directory it
// creates. `base` and its parents are made like MakeDirectories and may be symbolic links (the
// operator's choice, e.g. a state_dir on another disk). Below `base` nothing may be a link,
// found or created: each directory is checked with lstat before the next one is made inside it,
// so a planted link never gets a directory created through it. Errors: those of
// MakeDirectories; InvalidArgument when `path` is not `base` or below it; FailedPrecondition
// naming the first component below `base` that is a symbolic link or not a directory.
absl::Status MakeDirectoriesBelow(const std::string& base, const std::string& path,
                                  unsigned mode = 0750);

// Checks, without creating anything, that no component of `path` below `base` is a symbolic
// link: each one that exists is lstat'ed, up to the first one missing (nothing exists below
// it). `path` itself may be a file. Errors: InvalidArgument when `path` is not `base` or below
// it; FailedPrecondition naming the link (or a non-directory in the middle of the path);
// Internal/PermissionDenied when lstat fails otherwise.
absl::Status CheckNoSymlinksBelow(const std::string& base, const std::string& path);

// Writes `contents` to `path` atomically: a temporary file in the same directory, fsync, rename.
// The temporary has a fresh name and is created with O_EXCL | O_NOFOLLOW, so nothing already
// there (a link planted under a predictable name) is ever written through; the rename replaces
// `path` itself, never the target of a link there. `mode` is subject to the umask.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents,
                                 unsigned mode = 0640);

// WriteFileAtomically with exactly `mode`, whatever the umask (fchmod before the rename).
absl::Status WriteFileAtomicallyWithMode(const std::string& path, absl::string_view contents,
                                         unsigned mode);

// Everything WriteFileAtomically can do, for the files that need more: an owner or an exact mode
// given to the temporary before a byte is written, and the directory fsynced after the rename.
struct AtomicWriteOptions {
  unsigned mode = 0640;
  // fchmod to exactly `mode` whatever the umask (the temporary is created 0600 until then).
  bool exact_mode = false;
  // fchown to uid:gid first (only root may give a file away).
  bool set_owner = false;
  uid_t uid = 0;
  gid_t gid = 0;
  // fsync the directory after the rename, so that the replacement survives a crash.
  bool sync_directory = false;
};
// The temporary is `<path>.tmp.<pid>.<n>`, so that a cleanup can find one a crash left.
absl::Status WriteFileAtomicallyWith(const std::string& path, absl::string_view contents,
                                     const AtomicWriteOptions& options);

// Follows symbolic links: for files the operator names (configuration, TLS material).
absl::StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes = 16 << 20);

// ReadFile for files in the agent's own directories, where a link could only have been planted:
// the last component is opened with O_NOFOLLOW | O_NONBLOCK and must be a regular file (fstat),
// so a link, FIFO or device is refused without being followed or blocking. Errors: those of
// ReadFile; FailedPrecondition for a symbolic link or anything but a regular file.
absl::StatusOr<std::string> ReadRegularFile(const std::string& path, size_t max_bytes = 16 << 20);

}  // namespace pghaul
