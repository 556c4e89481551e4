// Parses `pgbackrest info --output=json` (pgBackRest 2.45).
//
// `info` exits 0 even when the repository is broken or unreachable, so the exit code says
// nothing: each stanza's status.code does. The codes (2.45 src/command/info/info.c):
//   0 ok, 1 missing stanza path, 2 no valid backups, 3 missing stanza data,
//   4 different across repos, 5 database mismatch across repos, 6 requested backup not found,
//   99 other (the repo's status.message carries the real error, e.g. "[FileMissingError] ...").
// A backup or expire running shows as status.lock.backup.held, not as a code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pghaul::agent {

inline constexpr int kStanzaStatusOk = 0;
inline constexpr int kStanzaStatusMissingStanzaPath = 1;
inline constexpr int kStanzaStatusNoValidBackups = 2;
inline constexpr int kStanzaStatusMissingStanzaData = 3;
inline constexpr int kStanzaStatusDifferentAcrossRepos = 4;
inline constexpr int kStanzaStatusDatabaseMismatch = 5;
inline constexpr int kStanzaStatusBackupNotFound = 6;
inline constexpr int kStanzaStatusOther = 99;

// "ok", "missing stanza path", ... or "unknown status code N".
std::string DescribeStanzaStatusCode(int code);

struct BackupSetInfo {
  std::string label;  // e.g. 20240501-134500F_20240502-010000D
  std::string type;   // full | diff | incr
  std::string prior;  // label of the backup this one depends on; "" for a full backup
  std::vector<std::string> reference;
  int64_t timestamp_start = 0;  // Unix seconds
  int64_t timestamp_stop = 0;
  uint64_t database_size = 0;    // info.size: the cluster's size
  uint64_t delta_size = 0;       // info.delta: what this backup copied
  uint64_t repository_size = 0;  // info.repository.size (compressed)
  uint64_t repository_delta = 0;
  std::string archive_start;  // WAL segment names
  std::string archive_stop;
  std::string lsn_start;
  std::string lsn_stop;
  bool error = false;  // pgBackRest found page checksum errors in this backup
  std::string pgbackrest_version;
};

struct DatabaseInfo {
  int id = 0;
  uint64_t system_id = 0;
  std::string version;  // "15"
};

struct ArchiveInfo {
  std::string id;   // "15-1"
  std::string min;  // oldest WAL segment; "" when none
  std::string max;
};

struct RepoStatus {
  int key = 0;
  int code = 0;
  std::string message;
};

struct StanzaInfo {
  std::string name;
  int status_code = kStanzaStatusOther;
  std::string status_message;
  bool backup_lock_held = false;  // a backup or expire is running
  std::string cipher;             // none | aes-256-cbc | mixed
  std::vector<DatabaseInfo> databases;
  std::vector<ArchiveInfo> archives;
  std::vector<BackupSetInfo> backups;  // oldest first, as pgBackRest lists them
  std::vector<RepoStatus> repos;

  int ValidBackupCount() const;  // backups without the error flag
  // The newest backup without the error flag, or null.
  const BackupSetInfo* LatestValidBackup() const;
  // For people: "status 2 (no valid backups)"; for 99 the repos' messages are added.
  std::string DescribeStatus() const;
};

// Parses the whole output (a JSON array of stanzas). Errors: InvalidArgument when the text is not
// JSON of the expected shape, saying which field was wrong.
absl::StatusOr<std::vector<StanzaInfo>> ParsePgBackRestInfo(absl::string_view json);

// Parses and returns the stanza named `stanza`. Errors: those of ParsePgBackRestInfo; NotFound
// when the output has no such stanza.
absl::StatusOr<StanzaInfo> ParseStanzaInfo(absl::string_view json, absl::string_view stanza);

}  // namespace pghaul::agent
