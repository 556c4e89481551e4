// Keeps the target's own configuration files across a pgBackRest restore.
//
// pgBackRest restores the source's data directory as it was backed up, including the
// postgresql.conf, pg_hba.conf and pg_ident.conf that live inside it (the initdb layout; Debian's
// /etc/postgresql layout keeps them elsewhere and has nothing to keep). Those carry the source's
// port, listen_addresses, unix_socket_directories, paths and access rules, which are wrong on the
// target. So before a restore the agent copies those of the four files that exist in the data
// directory to <state_dir>/pgbackrest/<migration_id>/kept-config/, and afterwards puts them back.
// postgresql.auto.conf is not kept: pgBackRest writes the recovery settings into it.
//
// Lifecycle (one restore task):
//
//   KeepConfigFiles: kept-config/ exists already?  -- yes -> use it as it is (an earlier restore
//        |                                                  was interrupted before putting its
//        |                                                  copies back; the data directory may
//        |                                                  hold the source's files by now)
//        | no: copy into kept-config.tmp/, rename to kept-config/ (so it is complete or absent)
//        v
//   pgBackRest restore (succeeds, fails or is cancelled)
//        v
//   PutBackConfigFiles: each copy written back atomically with its mode, owned by the data
//                       directory's owner; then kept-config/ is removed
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pghaul::agent {

// The files kept, in this order.
// postgresql.base.conf exists only where Patroni manages the cluster: its postgresql.conf says
// `include 'postgresql.base.conf'`, and with that file kept Patroni never renames a restored
// postgresql.conf into its place (which would leave the source's settings active underneath).
inline constexpr const char* kKeptConfigFileNames[] = {"postgresql.conf", "postgresql.base.conf",
                                                       "pg_hba.conf", "pg_ident.conf"};

// Copies those of kKeptConfigFileNames that exist in `data_dir` as regular files (a symbolic link
// is left alone; a missing data directory holds none) into `keep_dir` (created 0700, its parent
// must exist), or keeps using an existing `keep_dir` as described above. Returns the names of the
// files kept. Errors: Internal or PermissionDenied naming the path that could not be read, written
// or renamed; FailedPrecondition when `keep_dir` (or a directory above it under state_dir) is a
// symbolic link rather than a real directory.
absl::StatusOr<std::vector<std::string>> KeepConfigFiles(const std::string& data_dir,
                                                         const std::string& keep_dir);

// Puts every file of `keep_dir` back into `data_dir` (replacing what is there), then removes
// `keep_dir`. Nothing to do when `keep_dir` does not exist. Errors: Internal, PermissionDenied or
// NotFound (no data directory) naming the path; `keep_dir` then stays, so a retry still finds the
// copies.
absl::Status PutBackConfigFiles(const std::string& data_dir, const std::string& keep_dir);

}  // namespace pghaul::agent
