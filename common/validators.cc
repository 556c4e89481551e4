#include "common/validators.h"

#include <algorithm>
#include <cstddef>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace pghaul {
namespace {

constexpr size_t kMaxEchoedBytes = 64;
constexpr size_t kMaxPathBytes = 4095;

// The value as it may appear in an error: quoted, C-escaped and shortened, so a hostile value
// cannot forge log lines or flood them.
std::string Echo(absl::string_view value) {
  std::string shown = absl::CHexEscape(value.substr(0, kMaxEchoedBytes));
  if (value.size() > kMaxEchoedBytes) absl::StrAppend(&shown, "...");
  return absl::StrCat("'", shown, "'");
}

absl::Status Invalid(absl::string_view what, absl::string_view value, absl::string_view expected) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, " ", Echo(value), " is invalid: expected ", expected));
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsUpperHex(char c) { return IsDigit(c) || (c >= 'A' && c <= 'F'); }

// Parses exactly `count` decimal digits at `text[pos]`.
bool Digits(absl::string_view text, size_t pos, size_t count, int* value) {
  if (pos + count > text.size()) return false;
  int result = 0;
  for (size_t i = pos; i < pos + count; ++i) {
    if (!IsDigit(text[i])) return false;
    result = result * 10 + (text[i] - '0');
  }
  *value = result;
  return true;
}

bool IsLeapYear(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

int DaysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2 && IsLeapYear(year)) return 29;
  return kDays[month - 1];
}

bool ValidDate(int year, int month, int day) {
  return year >= 1 && month >= 1 && month <= 12 && day >= 1 && day <= DaysInMonth(year, month);
}

bool ValidClock(int hour, int minute, int second) {
  return hour <= 23 && minute <= 59 && second <= 59;
}

// YYYYMMDD-HHMMSS at text[pos].
bool CompactTimestamp(absl::string_view text, size_t pos) {
  int year, month, day, hour, minute, second;
  return Digits(text, pos, 4, &year) && Digits(text, pos + 4, 2, &month) &&
         Digits(text, pos + 6, 2, &day) && pos + 8 < text.size() && text[pos + 8] == '-' &&
         Digits(text, pos + 9, 2, &hour) && Digits(text, pos + 11, 2, &minute) &&
         Digits(text, pos + 13, 2, &second) && ValidDate(year, month, day) &&
         ValidClock(hour, minute, second);
}

// ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$
bool IsSimpleName(absl::string_view name) {
  if (name.empty() || name.size() > 64 || !absl::ascii_isalnum(name[0])) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '-') return false;
  }
  return true;
}

absl::Status OneOf(absl::string_view what, absl::string_view value,
                   std::initializer_list<absl::string_view> allowed) {
  for (absl::string_view candidate : allowed) {
    if (value == candidate) return absl::OkStatus();
  }
  return Invalid(what, value, absl::StrCat("one of ", absl::StrJoin(allowed, ", ")));
}

bool IsDnsLabel(absl::string_view label) {
  if (label.empty() || label.size() > 63) return false;
  if (label.front() == '-' || label.back() == '-') return false;
  for (char c : label) {
    if (!absl::ascii_isalnum(c) && c != '-') return false;
  }
  return true;
}

}  // namespace

absl::Status ValidateStanza(absl::string_view stanza) {
  if (IsSimpleName(stanza)) return absl::OkStatus();
  return Invalid("stanza", stanza,
                 "1 to 64 characters of [A-Za-z0-9_-], starting with a letter or digit");
}

absl::Status ValidateMigrationId(absl::string_view migration_id) {
  if (IsSimpleName(migration_id)) return absl::OkStatus();
  return Invalid("migration id", migration_id,
                 "1 to 64 characters of [A-Za-z0-9_-], starting with a letter or digit");
}

absl::Status ValidateBackupLabel(absl::string_view label) {
  constexpr absl::string_view kExpected =
      "a pgBackRest backup label: YYYYMMDD-HHMMSSF for a full backup, or "
      "YYYYMMDD-HHMMSSF_YYYYMMDD-HHMMSSD / ...I for a differential / incremental one";
  // "YYYYMMDD-HHMMSS" is 15 bytes.
  bool full_ok = label.size() >= 16 && CompactTimestamp(label, 0) && label[15] == 'F';
  if (full_ok && label.size() == 16) return absl::OkStatus();
  if (full_ok && label.size() == 33 && label[16] == '_' && CompactTimestamp(label, 17) &&
      (label[32] == 'D' || label[32] == 'I')) {
    return absl::OkStatus();
  }
  return Invalid("backup label", label, kExpected);
}

absl::Status ValidateLsn(absl::string_view lsn) {
  size_t slash = lsn.find('/');
  auto hex_part = [](absl::string_view part) {
    if (part.empty() || part.size() > 8) return false;
    for (char c : part) {
      if (!IsUpperHex(c)) return false;
    }
    return true;
  };
  if (slash != absl::string_view::npos && hex_part(lsn.substr(0, slash)) &&
      hex_part(lsn.substr(slash + 1))) {
    return absl::OkStatus();
  }
  return Invalid("LSN", lsn, "X/X with 1 to 8 upper-case hex digits on each side, e.g. 0/16000138");
}

absl::Status ValidateWalFileName(absl::string_view walfile) {
  if (walfile.size() == 24 && std::all_of(walfile.begin(), walfile.end(), IsUpperHex)) {
    return absl::OkStatus();
  }
  return Invalid("WAL file name", walfile,
                 "24 upper-case hex digits (timeline, log, segment), e.g. "
                 "000000010000000000000003");
}

absl::Status ValidateTargetTime(absl::string_view time) {
  constexpr absl::string_view kExpected =
      "'YYYY-MM-DD HH:MM:SS[.ffffff](+|-)HH[:MM]' with a valid date and time and an explicit UTC "
      "offset, e.g. '2024-05-01 13:45:00+00'";
  int year, month, day, hour, minute, second;
  // "YYYY-MM-DD HH:MM:SS" is 19 bytes.
  if (!(Digits(time, 0, 4, &year) && time.size() > 4 && time[4] == '-' &&
        Digits(time, 5, 2, &month) && time.size() > 7 && time[7] == '-' &&
        Digits(time, 8, 2, &day) && time.size() > 10 && time[10] == ' ' &&
        Digits(time, 11, 2, &hour) && time.size() > 13 && time[13] == ':' &&
        Digits(time, 14, 2, &minute) && time.size() > 16 && time[16] == ':' &&
        Digits(time, 17, 2, &second))) {
    return Invalid("target time", time, kExpected);
  }
  if (!ValidDate(year, month, day) || !ValidClock(hour, minute, second)) {
    return Invalid("target time", time, kExpected);
  }
  size_t pos = 19;
  if (pos < time.size() && time[pos] == '.') {
    size_t digits = 0;
    ++pos;
    while (pos < time.size() && IsDigit(time[pos])) {
      ++pos;
      ++digits;
    }
    if (digits < 1 || digits > 6) return Invalid("target time", time, kExpected);
  }
  if (pos >= time.size() || (time[pos] != '+' && time[pos] != '-')) {
    return Invalid("target time", time, kExpected);
  }
  int offset_hours = 0;
  if (!Digits(time, pos + 1, 2, &offset_hours) || offset_hours > 15) {
    return Invalid("target time", time, kExpected);
  }
  pos += 3;
  if (pos < time.size()) {
    int offset_minutes = 0;
    if (time[pos] != ':' || !Digits(time, pos + 1, 2, &offset_minutes) || offset_minutes > 59) {
      return Invalid("target time", time, kExpected);
    }
    pos += 3;
  }
  if (pos != time.size()) return Invalid("target time", time, kExpected);
  return absl::OkStatus();
}

absl::Status ValidateTargetTimeline(absl::string_view timeline) {
  constexpr absl::string_view kExpected =
      "'current', 'latest' or a decimal timeline id from 1 to 4294967295";
  if (timeline == "current" || timeline == "latest") return absl::OkStatus();
  if (timeline.empty() || timeline.size() > 10 || timeline[0] == '0') {
    return Invalid("target timeline", timeline, kExpected);
  }
  uint64_t value = 0;
  for (char c : timeline) {
    if (!IsDigit(c)) return Invalid("target timeline", timeline, kExpected);
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value > 4294967295ULL) return Invalid("target timeline", timeline, kExpected);
  return absl::OkStatus();
}

absl::Status ValidateBackupType(absl::string_view type) {
  return OneOf("backup type", type, {"full", "diff", "incr"});
}

absl::Status ValidateRestoreType(absl::string_view type) {
  return OneOf("restore type", type, {"immediate", "standby", "default", "time", "lsn"});
}

absl::Status ValidateTargetAction(absl::string_view action) {
  return OneOf("target action", action, {"pause", "promote", "shutdown"});
}

absl::Status ValidateCompressType(absl::string_view type) {
  return OneOf("compress type", type, {"none", "gz", "lz4", "zst", "bz2"});
}

absl::Status ValidateUriStyle(absl::string_view style) {
  return OneOf("S3 URI style", style, {"host", "path"});
}

absl::Status ValidateCipherType(absl::string_view type) {
  return OneOf("cipher type", type, {"none", "aes-256-cbc"});
}

absl::Status ValidateAbsolutePath(absl::string_view path, absl::string_view what) {
  constexpr absl::string_view kExpected =
      "an absolute, normalized path (starting with '/', without '//', '.' or '..' components, "
      "without a trailing '/', without control characters, at most 4095 bytes)";
  if (path.empty() || path[0] != '/' || path.size() > kMaxPathBytes) {
    return Invalid(what, path, kExpected);
  }
  for (char c : path) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return Invalid(what, path, kExpected);
  }
  if (path == "/") return absl::OkStatus();
  if (path.back() == '/') return Invalid(what, path, kExpected);
  for (absl::string_view component : absl::StrSplit(path.substr(1), '/')) {
    if (component.empty() || component == "." || component == "..") {
      return Invalid(what, path, kExpected);
    }
  }
  return absl::OkStatus();
}

bool PathWithinRoots(absl::string_view path, const std::vector<std::string>& roots) {
  if (!ValidateAbsolutePath(path).ok()) return false;
  for (const std::string& root : roots) {
    if (!ValidateAbsolutePath(root).ok()) continue;
    if (root == "/" || path == root) return true;
    if (absl::StartsWith(path, root) && path[root.size()] == '/') return true;
  }
  return false;
}

absl::Status ValidatePathWithinRoots(absl::string_view path, const std::vector<std::string>& roots,
                                     absl::string_view what) {
  if (absl::Status status = ValidateAbsolutePath(path, what); !status.ok()) return status;
  if (PathWithinRoots(path, roots)) return absl::OkStatus();
  if (roots.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", Echo(path),
                     " is not allowed: this agent has no allowed roots configured for paths"));
  }
  return absl::InvalidArgumentError(absl::StrCat(what, " ", Echo(path),
                                                 " is outside the agent's allowed roots (",
                                                 absl::StrJoin(roots, ", "), ")"));
}

bool IsIpv4Address(absl::string_view host) {
  std::vector<absl::string_view> parts = absl::StrSplit(host, '.');
  if (parts.size() != 4) return false;
  for (absl::string_view part : parts) {
    if (part.empty() || part.size() > 3 || (part.size() > 1 && part[0] == '0')) return false;
    int value = 0;
    for (char c : part) {
      if (!IsDigit(c)) return false;
      value = value * 10 + (c - '0');
    }
    if (value > 255) return false;
  }
  return true;
}

absl::Status ValidateHostName(absl::string_view host, absl::string_view what) {
  constexpr absl::string_view kExpected =
      "a DNS name (labels of letters, digits and '-', at most 253 bytes) or an IPv4 address, "
      "without scheme, port or path";
  if (IsIpv4Address(host)) return absl::OkStatus();
  if (host.empty() || host.size() > 253) return Invalid(what, host, kExpected);
  bool all_numeric = true;
  for (absl::string_view label : absl::StrSplit(host, '.')) {
    if (!IsDnsLabel(label)) return Invalid(what, host, kExpected);
    for (char c : label) {
      if (!IsDigit(c)) all_numeric = false;
    }
  }
  // "1.2.3" or "999.1.1.1" look like broken addresses, not names.
  if (all_numeric) return Invalid(what, host, kExpected);
  return absl::OkStatus();
}

absl::Status ValidateS3Endpoint(absl::string_view endpoint) {
  return ValidateHostName(endpoint, "S3 endpoint");
}

absl::Status ValidateS3Bucket(absl::string_view bucket) {
  constexpr absl::string_view kExpected =
      "3 to 63 characters of [a-z0-9.-], starting and ending with a letter or digit, without "
      "'..'";
  if (bucket.size() < 3 || bucket.size() > 63 || absl::StrContains(bucket, "..")) {
    return Invalid("S3 bucket", bucket, kExpected);
  }
  auto alnum_lower = [](char c) { return IsDigit(c) || (c >= 'a' && c <= 'z'); };
  if (!alnum_lower(bucket.front()) || !alnum_lower(bucket.back())) {
    return Invalid("S3 bucket", bucket, kExpected);
  }
  for (char c : bucket) {
    if (!alnum_lower(c) && c != '.' && c != '-') return Invalid("S3 bucket", bucket, kExpected);
  }
  return absl::OkStatus();
}

absl::Status ValidateS3Region(absl::string_view region) {
  if (region.empty() || region.size() > 64) {
    return Invalid("S3 region", region, "1 to 64 characters of [A-Za-z0-9_-]");
  }
  for (char c : region) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '-') {
      return Invalid("S3 region", region, "1 to 64 characters of [A-Za-z0-9_-]");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateProcessMax(uint32_t process_max) {
  if (process_max >= 1 && process_max <= 64) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("process-max ", process_max, " is invalid: expected 1 to 64"));
}

absl::Status ValidatePort(uint32_t port, absl::string_view what) {
  if (port >= 1 && port <= 65535) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " ", port, " is invalid: expected 1 to 65535"));
}

absl::Status ValidatePostgresUser(absl::string_view user) {
  constexpr absl::string_view kExpected =
      "1 to 63 characters of [A-Za-z0-9_], starting with a letter or '_'";
  if (user.empty() || user.size() > 63 || IsDigit(user[0])) {
    return Invalid("PostgreSQL user", user, kExpected);
  }
  for (char c : user) {
    if (!absl::ascii_isalnum(c) && c != '_') return Invalid("PostgreSQL user", user, kExpected);
  }
  return absl::OkStatus();
}

}  // namespace pghaul
