// Exact grammars for every value the controller may put into a pgBackRest config or argv.
//
// Why hand-written grammars and not "looks safe" filters: these values end up in an INI file
// that pgBackRest parses and in the argv of a child process, and some of them name paths the
// agent writes to. Each validator accepts exactly the documented language (so `a;rm -rf /`,
// `-x`, `0/0; drop`, `..` and embedded newlines are refused), and each error says what was
// expected. Errors are InvalidArgument. Values are echoed back escaped and shortened, never as
// raw bytes; no validator here ever sees a secret.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace pghaul {

// A pgBackRest stanza: ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$.
absl::Status ValidateStanza(absl::string_view stanza);

// A migration id (names a directory under the agent's state dir): the same grammar as a stanza.
absl::Status ValidateMigrationId(absl::string_view migration_id);

// A pgBackRest backup label: YYYYMMDD-HHMMSSF (full) or YYYYMMDD-HHMMSSF_YYYYMMDD-HHMMSS[DI]
// (differential or incremental), with month, day, hour, minute and second in range.
absl::Status ValidateBackupLabel(absl::string_view label);

// A PostgreSQL LSN as PostgreSQL prints it: ^[0-9A-F]{1,8}/[0-9A-F]{1,8}$.
absl::Status ValidateLsn(absl::string_view lsn);

// A WAL segment file name as pg_walfile_name prints it: ^[0-9A-F]{24}$.
absl::Status ValidateWalFileName(absl::string_view walfile);

// A recovery target time: "YYYY-MM-DD HH:MM:SS[.ffffff](+|-)HH[:MM]". The UTC offset is required:
// without it PostgreSQL would read the time in the restored server's time zone, which pghaul
// cannot know. Every field is range-checked (including the day of the month, leap years too).
absl::Status ValidateTargetTime(absl::string_view time);

// A recovery target timeline: "current", "latest" or a decimal timeline id 1..4294967295.
absl::Status ValidateTargetTimeline(absl::string_view timeline);

// Enumerations, each with the values pgBackRest 2.45 accepts and pghaul allows.
absl::Status ValidateBackupType(absl::string_view type);      // full | diff | incr
absl::Status ValidateRestoreType(absl::string_view type);     // immediate|standby|default|time|lsn
absl::Status ValidateTargetAction(absl::string_view action);  // pause | promote | shutdown
absl::Status ValidateCompressType(absl::string_view type);    // none | gz | lz4 | zst | bz2
absl::Status ValidateUriStyle(absl::string_view style);       // host | path
absl::Status ValidateCipherType(absl::string_view type);      // none | aes-256-cbc

// An absolute, normalized path: starts with '/', no empty ("//"), "." or ".." component, no
// trailing '/' (except "/" itself), no NUL, newline or other control character, at most 4095
// bytes. `what` names the field in the error ("repository path").
absl::Status ValidateAbsolutePath(absl::string_view path, absl::string_view what = "path");

// True when `path` equals one of `roots` or lies below one (component-wise: /srv/repo is inside
// /srv but /srv2 is not). Lexical only: both sides must already be valid absolute paths
// (ValidateAbsolutePath); a root that is not is ignored. Symbolic links are not followed: the
// agent confines the paths of tasks with agent/path_confinement.h, which resolves links first
// and then compares with this.
bool PathWithinRoots(absl::string_view path, const std::vector<std::string>& roots);

// ValidateAbsolutePath plus PathWithinRoots, with an error that lists the roots.
absl::Status ValidatePathWithinRoots(absl::string_view path, const std::vector<std::string>& roots,
                                     absl::string_view what = "path");

// A DNS host name (labels of [A-Za-z0-9-], 1-63 bytes, not starting or ending with '-', at most
// 253 bytes in all) or a dotted-quad IPv4 address. No scheme, port, path or user part.
absl::Status ValidateHostName(absl::string_view host, absl::string_view what = "host name");

// True for a dotted-quad IPv4 address with each part 0..255 and no leading zeros.
bool IsIpv4Address(absl::string_view host);

// An S3 endpoint: a host name or IPv4 address as above (pgBackRest 2.45 always uses HTTPS).
absl::Status ValidateS3Endpoint(absl::string_view endpoint);

// An S3 bucket: 3-63 bytes of [a-z0-9.-], starting and ending with a letter or digit, no "..".
absl::Status ValidateS3Bucket(absl::string_view bucket);

// An S3 region: 1-64 bytes of [A-Za-z0-9_-] (e.g. "us-east-1").
absl::Status ValidateS3Region(absl::string_view region);

// pgBackRest process-max: 1..64.
absl::Status ValidateProcessMax(uint32_t process_max);

// A TCP port: 1..65535.
absl::Status ValidatePort(uint32_t port, absl::string_view what = "port");

// A PostgreSQL role name as pghaul accepts it for pg1-user: ^[A-Za-z_][A-Za-z0-9_]{0,62}$.
absl::Status ValidatePostgresUser(absl::string_view user);

}  // namespace pghaul
