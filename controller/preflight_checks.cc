#include "controller/preflight_checks.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/time_proto.h"
#include "nlohmann/json.hpp"

namespace pghaul::controller {
namespace {

// An integer of pgBackRest's JSON as an int. nlohmann's get<int>() of a float or of a number out
// of range converts it with a cast whose result is undefined; this throws instead, into the
// catch around the parse (an agent's answer must never crash the controller).
int JsonInt(const nlohmann::json& value) {
  if (!value.is_number_integer()) throw std::invalid_argument("expected an integer");
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int>::max())) {
      throw std::out_of_range("integer out of range");
    }
    return static_cast<int>(v);
  }
  const int64_t v = value.get<int64_t>();
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
    throw std::out_of_range("integer out of range");
  }
  return static_cast<int>(v);
}

// The same for an unsigned 64-bit value (a system identifier).
uint64_t JsonUint64(const nlohmann::json& value) {
  if (!value.is_number_unsigned()) throw std::invalid_argument("expected an unsigned integer");
  return value.get<uint64_t>();
}

using Json = nlohmann::json;

// pgBackRest 2.45 stanza status codes (the same values as agent/pgbackrest_info.h, which the
// controller does not link).
constexpr int kStanzaOk = 0;
constexpr int kStanzaMissingStanzaPath = 1;
constexpr int kStanzaNoValidBackups = 2;
constexpr int kStanzaMissingStanzaData = 3;

std::string DescribeStanzaCode(int code) {
  switch (code) {
    case 0:
      return "ok";
    case 1:
      return "missing stanza path";
    case 2:
      return "no valid backups";
    case 3:
      return "missing stanza data";
    case 4:
      return "different across repos";
    case 5:
      return "database mismatch across repos";
    case 6:
      return "requested backup not found";
    case 99:
      return "other error";
    default:
      return absl::StrCat("unknown status code ", code);
  }
}

v1::CheckResult Check(absl::string_view name, absl::string_view status, std::string source,
                      std::string target, std::string message, std::string fix = "") {
  v1::CheckResult result;
  result.set_name(std::string(name));
  result.set_status(std::string(status));
  result.set_source(std::move(source));
  result.set_target(std::move(target));
  result.set_message(std::move(message));
  result.set_fix(std::move(fix));
  return result;
}

bool HasFacts(const v1::HostFacts& facts) {
  return facts.has_gathered_at() || !facts.hostname().empty();
}

// "/var/lib/pg/" and "/var/lib//pg" name the same directory as "/var/lib/pg". Symbolic links
// cannot be resolved from here: the agent reports paths as configured.
std::string NormalizePath(absl::string_view path) {
  std::string out;
  for (char c : path) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out.push_back(c);
  }
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

// The data directory a host's facts name: the agent's configured one, else the server's.
std::string DataDirectoryOf(const v1::HostFacts& facts) {
  if (!facts.data_directory().empty()) return NormalizePath(facts.data_directory());
  return NormalizePath(facts.postgres().data_directory());
}

// glibc treats the codeset part of a locale name loosely ("en_US.UTF-8" and "en_US.utf8" are
// the same locale): lower case, letters and digits only. The language and modifier are exact.
std::string NormalizeLocale(absl::string_view locale) {
  size_t dot = locale.find('.');
  if (dot == absl::string_view::npos) return std::string(locale);
  size_t at = locale.find('@', dot);
  absl::string_view codeset = locale.substr(
      dot + 1, at == absl::string_view::npos ? absl::string_view::npos : at - dot - 1);
  std::string out(locale.substr(0, dot + 1));
  for (char c : codeset) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c))) {
      out.push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
    }
  }
  if (at != absl::string_view::npos) absl::StrAppend(&out, locale.substr(at));
  return out;
}

int MajorVersion(int32_t version_num) {
  // 10 and later: 150018 -> 15; before: 90624 -> 906 (9.6).
  return version_num >= 100000 ? version_num / 10000 : version_num / 100;
}

std::string FormatMajor(int32_t version_num) {
  int major = MajorVersion(version_num);
  if (version_num >= 100000) return absl::StrCat(major);
  return absl::StrCat(major / 100, ".", major % 100);
}

std::string FirstLine(absl::string_view text) {
  return std::string(text.substr(0, text.find('\n')));
}

std::string Quote(absl::string_view text) { return absl::StrCat("'", text, "'"); }

// A role name as an SQL identifier, for the statements a fix suggests: bare when it is lower
// case letters, digits and underscores, else in double quotes.
std::string QuoteIdentifier(absl::string_view name) {
  bool plain = !name.empty() && !absl::ascii_isdigit(static_cast<unsigned char>(name[0]));
  for (char c : name) {
    plain = plain && (absl::ascii_islower(static_cast<unsigned char>(c)) ||
                      absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '_');
  }
  if (plain) return std::string(name);
  return absl::StrCat("\"", absl::StrReplaceAll(name, {{"\"", "\"\""}}), "\"");
}

struct PatroniVersion {
  bool valid = false;
  int major = 0;
  int minor = 0;
};

// "3.0.2" -> 3, 0. Anything without a numeric major and minor is not valid.
PatroniVersion ParsePatroniVersion(absl::string_view text) {
  PatroniVersion version;
  std::vector<absl::string_view> parts = absl::StrSplit(text, '.');
  if (parts.size() < 2) return version;
  version.valid = absl::SimpleAtoi(parts[0], &version.major) &&
                  absl::SimpleAtoi(parts[1], &version.minor) && version.major >= 0 &&
                  version.minor >= 0;
  return version;
}

// Whether a pg_hba.conf line authenticates with scram-sha-256 and its user column is `all` or
// names one of `roles` (a +group or @file is not resolved here). Comments and blank lines are
// not. The method is the first field after the user column that is an authentication method.
bool HbaLineIsScramFor(absl::string_view line, const std::vector<std::string>& roles) {
  // Fields are separated by blanks; a double-quoted part may hold blanks, commas and '#'.
  std::vector<std::string> fields;
  bool quoted = false;
  bool in_field = false;
  for (char c : line) {
    if (!quoted && c == '#') break;
    if (!quoted && (c == ' ' || c == '\t')) {
      in_field = false;
      continue;
    }
    if (!in_field) fields.emplace_back();
    in_field = true;
    if (c == '"') quoted = !quoted;
    fields.back().push_back(c);
  }
  if (fields.size() < 4) return false;
  static const std::set<std::string> kMethods = {
      "trust", "reject", "scram-sha-256", "md5",    "password", "gss", "sspi",
      "ident", "peer",   "ldap",          "radius", "cert",     "pam", "bsd"};
  std::string method;
  for (size_t i = 3; i < fields.size(); ++i) {
    if (kMethods.count(fields[i]) > 0) {
      method = fields[i];
      break;
    }
  }
  if (method != "scram-sha-256") return false;
  // The user column: names separated by commas outside double quotes.
  std::vector<std::string> users(1);
  quoted = false;
  for (char c : fields[2]) {
    if (c == '"') quoted = !quoted;
    if (c == ',' && !quoted) {
      users.emplace_back();
    } else {
      users.back().push_back(c);
    }
  }
  for (const std::string& user : users) {
    if (user == "all") return !roles.empty();
    std::string name = user;
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
      name = absl::StrReplaceAll(name.substr(1, name.size() - 2), {{"\"\"", "\""}});
    }
    for (const std::string& role : roles) {
      if (name == role) return true;
    }
  }
  return false;
}

// What every check sees: the input, and which sides have facts to compare.
class Checker {
 public:
  explicit Checker(const PreflightInput& in)
      : in_(in),
        plan_(*in.plan),
        source_facts_(HasFacts(in.source)),
        target_facts_(HasFacts(in.target)),
        source_pg_(source_facts_ && in.source.postgres().reachable()),
        target_pg_(target_facts_ && in.target.postgres().reachable()) {}

  std::vector<v1::CheckResult> Run() {
    std::vector<v1::CheckResult> results;
    results.push_back(AgentsOnline());
    results.push_back(FactsReported());
    results.push_back(DistinctClusters());
    results.push_back(Reachable("source-reachable", "source", in_.source, source_facts_));
    results.push_back(SourcePrimary());
    results.push_back(Reachable("target-reachable", "target", in_.target, target_facts_));
    results.push_back(PostgresMajor());
    results.push_back(Architecture());
    results.push_back(BlockSize());
    results.push_back(WalSegmentSize());
    results.push_back(DataChecksums());
    results.push_back(Encoding());
    results.push_back(Locale("lc-collate", "LC_COLLATE", in_.source.postgres().lc_collate(),
                             in_.target.postgres().lc_collate()));
    results.push_back(Locale("lc-ctype", "LC_CTYPE", in_.source.postgres().lc_ctype(),
                             in_.target.postgres().lc_ctype()));
    results.push_back(LibcVersion());
    results.push_back(Extensions());
    results.push_back(Tablespaces());
    results.push_back(TargetDisk());
    results.push_back(PgBackRestPresent());
    results.push_back(PgBackRestVersion());
    results.push_back(TargetDataDirectory());
    results.push_back(TargetOverwrite());
    results.push_back(SourceArchiving());
    results.push_back(SourceRole());
    results.push_back(TargetRole());
    results.push_back(Stanza());
    results.push_back(Patroni());
    results.push_back(PatroniRoles());
    results.push_back(PasswordEncryption());
    return results;
  }

 private:
  // Why a comparison cannot be made, or "" when it can. `postgres` says whether it needs the
  // PostgreSQL facts of the sides, not only the host facts.
  std::string MissingSide(bool need_source, bool need_target, bool postgres) const {
    std::vector<std::string> why;
    if (need_source && !source_facts_) {
      why.push_back(
          absl::StrCat("the source agent ", Quote(in_.source_agent), " has reported no facts"));
    } else if (need_source && postgres && !source_pg_) {
      why.push_back("the source's PostgreSQL is not reachable");
    }
    if (need_target && !target_facts_) {
      why.push_back(
          absl::StrCat("the target agent ", Quote(in_.target_agent), " has reported no facts"));
    } else if (need_target && postgres && !target_pg_) {
      why.push_back("the target's PostgreSQL is not reachable");
    }
    return absl::StrJoin(why, " and ");
  }

  static v1::CheckResult NotCompared(absl::string_view name, const std::string& why) {
    return Check(name, kCheckWarn, "", "", absl::StrCat("not compared: ", why),
                 "fix the failing checks above, then run preflight again");
  }

  v1::CheckResult AgentsOnline() const {
    constexpr char kName[] = "agents-online";
    auto state = [](bool online) { return std::string(online ? "online" : "offline"); };
    std::vector<std::string> offline;
    if (!in_.source_online)
      offline.push_back(absl::StrCat("source agent ", Quote(in_.source_agent)));
    if (!in_.target_online)
      offline.push_back(absl::StrCat("target agent ", Quote(in_.target_agent)));
    if (offline.empty()) {
      return Check(kName, kCheckPass, state(true), state(true), "both agents are connected");
    }
    return Check(kName, kCheckFail, state(in_.source_online), state(in_.target_online),
                 absl::StrCat(absl::StrJoin(offline, " and "), offline.size() > 1 ? " are" : " is",
                              " offline"),
                 "start pghaul-agent on that host and check its link to the controller "
                 "(`pghaul agents` shows why it went offline)");
  }

  v1::CheckResult FactsReported() const {
    constexpr char kName[] = "facts-reported";
    auto when = [](const v1::HostFacts& facts) -> std::string {
      if (!HasFacts(facts)) return "none";
      if (!facts.has_gathered_at()) return "reported";
      return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", FromProto(facts.gathered_at()),
                              absl::UTCTimeZone());
    };
    if (source_facts_ && target_facts_) {
      return Check(kName, kCheckPass, when(in_.source), when(in_.target),
                   "both agents have reported their host's facts");
    }
    std::vector<std::string> missing;
    if (!source_facts_)
      missing.push_back(absl::StrCat("the source agent ", Quote(in_.source_agent)));
    if (!target_facts_)
      missing.push_back(absl::StrCat("the target agent ", Quote(in_.target_agent)));
    return Check(kName, kCheckFail, when(in_.source), when(in_.target),
                 absl::StrCat(absl::StrJoin(missing, " and "), " has not reported any facts"),
                 "wait until the agent has connected once (`pghaul agents` lists its facts)");
  }

  v1::CheckResult DistinctClusters() const {
    constexpr char kName[] = "distinct-clusters";
    constexpr char kFix[] = "point target.agent at the agent on the host the cluster moves to";
    auto describe = [](const v1::HostFacts& facts) {
      std::string text = absl::StrCat(facts.hostname(), ":", DataDirectoryOf(facts));
      if (facts.postgres().system_identifier() != 0) {
        absl::StrAppend(&text, " (system id ", facts.postgres().system_identifier(), ")");
      }
      return text;
    };
    std::string source = describe(in_.source);
    std::string target = describe(in_.target);
    if (!in_.source_agent.empty() && in_.source_agent == in_.target_agent) {
      return Check(kName, kCheckFail, in_.source_agent, in_.target_agent,
                   absl::StrCat("source and target are the same cluster: both are agent ",
                                Quote(in_.source_agent)),
                   kFix);
    }
    if (std::string why = MissingSide(true, true, false); !why.empty()) {
      return NotCompared(kName, why);
    }
    uint64_t source_id = in_.source.postgres().system_identifier();
    uint64_t target_id = in_.target.postgres().system_identifier();
    bool same_place = !in_.source.hostname().empty() &&
                      in_.source.hostname() == in_.target.hostname() &&
                      !DataDirectoryOf(in_.source).empty() &&
                      DataDirectoryOf(in_.source) == DataDirectoryOf(in_.target);
    if (same_place && source_id != 0 && source_id == target_id) {
      return Check(kName, kCheckFail, source, target,
                   "source and target are the same cluster: same host, data directory and "
                   "system identifier",
                   kFix);
    }
    if (same_place) {
      // The same directory on the same host name: one cluster, unless two hosts share a name.
      return Check(kName, kCheckWarn, source, target,
                   "source and target report the same host name and data directory: they may "
                   "be the same cluster (the target's system identifier is unknown)",
                   "make sure target.agent runs on another host, or give the hosts distinct names");
    }
    std::string message = "source and target are different clusters";
    if (source_id != 0 && source_id == target_id) {
      absl::StrAppend(&message,
                      " (the target already holds a copy of the source: same system "
                      "identifier)");
    }
    return Check(kName, kCheckPass, source, target, message);
  }

  v1::CheckResult Reachable(absl::string_view name, absl::string_view side,
                            const v1::HostFacts& facts, bool has_facts) const {
    bool is_source = side == "source";
    auto place = [&](std::string value) {
      return is_source ? Check(name, "", value, "", "") : Check(name, "", "", value, "");
    };
    if (!has_facts) {
      return NotCompared(name, absl::StrCat("the ", side, " agent has reported no facts"));
    }
    const v1::PostgresFacts& pg = facts.postgres();
    if (!pg.reachable()) {
      v1::CheckResult result = place("not reachable");
      result.set_status(kCheckFail);
      result.set_message(absl::StrCat("the ", side, "'s PostgreSQL is not reachable",
                                      pg.error().empty() ? "" : ": ", pg.error()));
      result.set_fix(
          is_source ? "start the source's PostgreSQL, or correct the postgres connection "
                      "settings in the source's agent.yaml"
                    : "start the target's PostgreSQL (the cluster the restore replaces) so "
                      "that it can be compared, or correct its agent.yaml connection settings");
      return result;
    }
    v1::CheckResult result = place(absl::StrCat(pg.server_version(), " as ", pg.current_user()));
    if (!pg.error().empty()) {
      result.set_status(kCheckWarn);
      result.set_message(absl::StrCat("the ", side,
                                      "'s PostgreSQL is reachable, but some facts could not be "
                                      "read: ",
                                      pg.error()));
      result.set_fix(absl::StrCat("give the ", side,
                                  " agent's role the rights the message names, so that every "
                                  "check can compare"));
      return result;
    }
    result.set_status(kCheckPass);
    result.set_message(absl::StrCat("the ", side, "'s PostgreSQL answers"));
    return result;
  }

  v1::CheckResult SourcePrimary() const {
    constexpr char kName[] = "source-primary";
    if (std::string why = MissingSide(true, false, true); !why.empty())
      return NotCompared(kName, why);
    if (in_.source.postgres().in_recovery()) {
      return Check(kName, kCheckFail, "in recovery (a standby)", "",
                   "the source is a standby: pghaul moves a primary (it turns on archiving and "
                   "fences writes on the source)",
                   "point source.agent at the agent next to the primary");
    }
    return Check(kName, kCheckPass, "primary", "", "the source is a primary (not in recovery)");
  }

  v1::CheckResult PostgresMajor() const {
    constexpr char kName[] = "postgres-major";
    if (std::string why = MissingSide(true, true, true); !why.empty())
      return NotCompared(kName, why);
    int32_t source = in_.source.postgres().server_version_num();
    int32_t target = in_.target.postgres().server_version_num();
    std::string source_text = FormatServerVersion(source);
    std::string target_text = FormatServerVersion(target);
    if (source == 0 || target == 0) {
      return Check(kName, kCheckFail, source_text, target_text,
                   "the server version of one side could not be read",
                   "see the warning of source-reachable or target-reachable");
    }
    if (MajorVersion(source) != MajorVersion(target)) {
      return Check(
          kName, kCheckFail, source_text, target_text,
          absl::StrCat("major versions differ (", FormatMajor(source), " and ", FormatMajor(target),
                       "): a physical copy only runs on the same major version"),
          absl::StrCat("run PostgreSQL ", FormatMajor(source),
                       " on the target (a major upgrade needs pg_upgrade or a logical "
                       "copy, not pghaul)"));
    }
    if (source == target) {
      return Check(kName, kCheckPass, source_text, target_text, "same PostgreSQL version");
    }
    if (target < source) {
      return Check(kName, kCheckWarn, source_text, target_text,
                   "same major version, but the target runs an older minor release than the "
                   "source",
                   absl::StrCat("upgrade the target's PostgreSQL packages to ", source_text,
                                " or later before the restore"));
    }
    return Check(kName, kCheckWarn, source_text, target_text,
                 "same major version; the target runs a newer minor release, which reads the "
                 "source's files",
                 "none needed; upgrade the source's minor release too when convenient");
  }

  v1::CheckResult Architecture() const {
    constexpr char kName[] = "architecture";
    if (std::string why = MissingSide(true, true, false); !why.empty())
      return NotCompared(kName, why);
    const std::string& source = in_.source.architecture();
    const std::string& target = in_.target.architecture();
    if (source.empty() || target.empty()) {
      return Check(kName, kCheckFail, source, target, "the CPU architecture of a host is unknown",
                   "check that the agent can run uname(2) on both hosts");
    }
    if (source != target) {
      return Check(kName, kCheckFail, source, target,
                   "CPU architectures differ: data files hold the machine's byte order and "
                   "alignment, so a physical copy only runs on the same architecture",
                   absl::StrCat("use a ", source, " host as the target"));
    }
    return Check(kName, kCheckPass, source, target, "same CPU architecture");
  }

  v1::CheckResult BlockSize() const {
    constexpr char kName[] = "block-size";
    if (std::string why = MissingSide(true, true, true); !why.empty())
      return NotCompared(kName, why);
    int32_t source = in_.source.postgres().block_size();
    int32_t target = in_.target.postgres().block_size();
    std::string source_text = source == 0 ? "" : absl::StrCat(source);
    std::string target_text = target == 0 ? "" : absl::StrCat(target);
    if (source == 0 || target == 0) {
      return Check(kName, kCheckFail, source_text, target_text,
                   "the block size of one side could not be read",
                   "see the warning of source-reachable or target-reachable");
    }
    if (source != target) {
      return Check(kName, kCheckFail, source_text, target_text,
                   "block sizes differ: the target's PostgreSQL was built for another page size "
                   "and cannot read the source's files",
                   absl::StrCat("install PostgreSQL binaries built with block size ", source,
                                " (the packaged default is 8192) on the target"));
    }
    return Check(kName, kCheckPass, source_text, target_text, "same block size");
  }

  v1::CheckResult WalSegmentSize() const {
    constexpr char kName[] = "wal-segment-size";
    if (std::string why = MissingSide(true, true, true); !why.empty())
      return NotCompared(kName, why);
    int64_t source = in_.source.postgres().wal_segment_size();
    int64_t target = in_.target.postgres().wal_segment_size();
    std::string source_text = source <= 0 ? "" : FormatByteCount(static_cast<uint64_t>(source));
    std::string target_text = target <= 0 ? "" : FormatByteCount(static_cast<uint64_t>(target));
    if (source <= 0 || target <= 0) {
      return Check(kName, kCheckFail, source_text, target_text,
                   "the WAL segment size of one side could not be read",
                   "see the warning of source-reachable or target-reachable");
    }
    if (source != target) {
      // The restored cluster keeps the source's segment size (it is in pg_control), but the
      // target's configuration was written by initdb for its own: a min_wal_size below two
      // segments stops the restored cluster from starting at all.
      return Check(
          kName, kCheckFail, source_text, target_text,
          "WAL segment sizes differ: the restored cluster keeps the source's, and the "
          "target's configuration (min_wal_size, max_wal_size) was made for another one",
          absl::StrCat(
              "recreate the target cluster with initdb --wal-segsize=", source / (1024 * 1024),
              " (pg_createcluster ... -- --wal-segsize=", source / (1024 * 1024), ")"));
    }
    return Check(kName, kCheckPass, source_text, target_text, "same WAL segment size");
  }

  v1::CheckResult DataChecksums() const {
    constexpr char kName[] = "data-checksums";
    if (std::string why = MissingSide(true, true, true); !why.empty())
      return NotCompared(kName, why);
    bool source = in_.source.postgres().data_checksums();
    bool target = in_.target.postgres().data_checksums();
    auto text = [](bool on) { return std::string(on ? "on" : "off"); };
    if (source == target) {
      return Check(kName, kCheckPass, text(source), text(target), "same data_checksums setting");
    }
    // Not unsafe: data_checksums lives in pg_control, which the restore copies from the source.
    return Check(kName, kCheckWarn, text(source), text(target),
                 absl::StrCat("the restored cluster keeps the source's setting (data checksums ",
                              text(source), "), not the target's current one"),
                 source ? "none needed: the restored cluster has data checksums on"
                        : "to have data checksums after cutover, run pg_checksums --enable on the "
                          "stopped target");
  }

  v1::CheckResult Encoding() const {
    constexpr char kName[] = "encoding";
    if (std::string why = MissingSide(true, true, true); !why.empty())
      return NotCompared(kName, why);
    const std::string& source = in_.source.postgres().encoding();
    const std::string& target = in_.target.postgres().encoding();
    if (source == target) return Check(kName, kCheckPass, source, target, "same encoding");
    // Not unsafe: each database's encoding is in the catalogue, which the restore copies.
    return Check(kName, kCheckWarn, source, target,
                 absl::StrCat("the restored databases keep the source's encoding (", source,
                              "); the target's current cluster was created with ", target),
                 absl::StrCat("none needed for the copy; create the target cluster with "
                              "--encoding=",
                              source, " to match"));
  }

  // The facts hold the locale of the database each agent connects to; other databases may use
  // other locales, which this check does not see. The target cluster using the same locale
  // shows that the locale is installed on the target host.
  v1::CheckResult Locale(absl::string_view name, absl::string_view setting,
                         const std::string& source, const std::string& target) const {
    if (std::string why = MissingSide(true, true, true); !why.empty())
      return NotCompared(name, why);
    if (source == target) {
      return Check(name, kCheckPass, source, target, absl::StrCat("same ", setting));
    }
    if (NormalizeLocale(source) == NormalizeLocale(target)) {
      return Check(name, kCheckPass, source, target,
                   absl::StrCat("same ", setting, ", spelled differently"));
    }
    return Check(
        name, kCheckFail, source, target,
        absl::StrCat(setting, " differs: the source's databases need locale ", Quote(source),
                     " on the target host, and text indexes are only valid with the "
                     "sort order they were built with"),
        absl::StrCat("install locale ", Quote(source),
                     " on the target (locale-gen) and create its cluster with --locale=", source));
  }

  // Only the C library's version is compared: an ICU collation provider's version is not in the
  // facts yet, so clusters with ICU collations are not fully covered.
  v1::CheckResult LibcVersion() const {
    constexpr char kName[] = "libc-version";
    if (std::string why = MissingSide(true, true, false); !why.empty())
      return NotCompared(kName, why);
    const std::string& source = in_.source.libc_version();
    const std::string& target = in_.target.libc_version();
    if (source.empty() || target.empty()) {
      return Check(kName, kCheckFail, source, target, "the C library version of a host is unknown",
                   "run agents built with glibc on both hosts");
    }
    if (source != target) {
      return Check(kName, kCheckFail, source, target,
                   "C library versions differ: glibc's collation order changes between versions, "
                   "which silently corrupts text indexes on a physical copy",
                   absl::StrCat("use a target host with glibc ", source,
                                " (the same OS release as the source), or migrate logically"));
    }
    return Check(kName, kCheckPass, source, target, "same C library version");
  }

  // An extension the source has created must be on the target host at the same version: either
  // created in some target database, or provided by the target's packages (its control file and
  // scripts are in the server's extension directory: pg_available_extension_versions). The
  // restore brings the source's catalogue, which then references the target's files. An agent
  // that does not report the available versions (older than this field) leaves only the created
  // ones to compare, which errs on the safe side.
  v1::CheckResult Extensions() const {
    constexpr char kName[] = "extensions";
    if (std::string why = MissingSide(true, true, true); !why.empty())
      return NotCompared(kName, why);
    // name -> version -> databases
    std::map<std::string, std::map<std::string, std::set<std::string>>> source;
    std::map<std::string, std::set<std::string>> created;    // name -> versions
    std::map<std::string, std::set<std::string>> available;  // name -> versions
    for (const v1::Extension& e : in_.source.postgres().extensions()) {
      source[e.name()][e.version()].insert(e.database());
    }
    for (const v1::Extension& e : in_.target.postgres().extensions()) {
      created[e.name()].insert(e.version());
    }
    for (const v1::Extension& e : in_.target.postgres().available_extensions()) {
      available[e.name()].insert(e.version());
    }
    const bool knows_available = !available.empty();
    auto has = [](const std::map<std::string, std::set<std::string>>& versions,
                  const std::string& name, const std::string& version) {
      auto found = versions.find(name);
      return found != versions.end() && found->second.count(version) > 0;
    };
    std::vector<std::string> source_list;
    std::vector<std::string> target_list;
    for (const auto& [name, versions] : created) {
      for (const std::string& version : versions) {
        target_list.push_back(absl::StrCat(name, " ", version));
      }
    }
    std::vector<std::string> installable;
    std::vector<std::string> missing;
    std::vector<std::string> different;
    for (const auto& [name, versions] : source) {
      for (const auto& [version, databases] : versions) {
        source_list.push_back(absl::StrCat(name, " ", version));
        if (has(created, name, version)) continue;
        if (has(available, name, version)) {
          installable.push_back(absl::StrCat(name, " ", version));
          target_list.push_back(absl::StrCat(name, " ", version, " (installable)"));
          continue;
        }
        std::set<std::string> other;
        for (const auto* versions_on_target : {&created, &available}) {
          auto found = versions_on_target->find(name);
          if (found != versions_on_target->end()) {
            other.insert(found->second.begin(), found->second.end());
          }
        }
        std::string where = absl::StrCat(" (in ", absl::StrJoin(databases, ", "), ")");
        if (other.empty()) {
          missing.push_back(absl::StrCat(name, " ", version, where));
        } else {
          different.push_back(absl::StrCat(name, " ", version, where, ": the target has ",
                                           absl::StrJoin(other, ", ")));
        }
      }
    }
    std::string source_text = absl::StrJoin(source_list, ", ");
    std::string target_text = absl::StrJoin(target_list, ", ");
    if (missing.empty() && different.empty()) {
      std::string message = absl::StrCat("every extension of the source (", source_list.size(),
                                         ") is on the target at the same version");
      if (!installable.empty()) {
        absl::StrAppend(&message, "; provided by the target's packages, not created there yet: ",
                        absl::StrJoin(installable, ", "), " (the restored catalogue brings them)");
      }
      return Check(kName, kCheckPass, source_text, target_text, message);
    }
    std::vector<std::string> parts;
    if (!missing.empty()) {
      parts.push_back(absl::StrCat("missing on the target: ", absl::StrJoin(missing, "; ")));
    }
    if (!different.empty()) {
      parts.push_back(
          absl::StrCat("another version on the target: ", absl::StrJoin(different, "; ")));
    }
    std::string message = absl::StrJoin(parts, "; ");
    if (!knows_available) {
      absl::StrAppend(&message,
                      " (the target's agent did not say which extensions its packages provide, "
                      "so only those created in its databases count)");
    }
    return Check(kName, kCheckFail, source_text, target_text, message,
                 knows_available
                     ? "install the packages that provide these extension versions on the target "
                       "host (their control files belong in the server's extension directory)"
                     : "install the packages of these extension versions on the target and "
                       "CREATE EXTENSION each in a target database, or upgrade the target's "
                       "pghaul-agent, so that preflight can see them");
  }

  v1::CheckResult Tablespaces() const {
    constexpr char kName[] = "tablespaces";
    if (std::string why = MissingSide(true, false, true); !why.empty())
      return NotCompared(kName, why);
    auto own = [](const v1::HostFacts& facts) {
      std::vector<std::string> list;
      for (const v1::Tablespace& t : facts.postgres().tablespaces()) {
        if (!t.location().empty()) list.push_back(absl::StrCat(t.name(), " at ", t.location()));
      }
      return list;
    };
    std::vector<std::string> source = own(in_.source);
    std::vector<std::string> target = target_pg_ ? own(in_.target) : std::vector<std::string>{};
    std::string source_text = source.empty() ? "none" : absl::StrJoin(source, ", ");
    std::string target_text =
        target_pg_ ? (target.empty() ? "none" : absl::StrJoin(target, ", ")) : "";
    if (source.empty()) {
      return Check(kName, kCheckPass, source_text, target_text,
                   "the source has no tablespaces of its own (only pg_default and pg_global)");
    }
    if (!in_.source.hostname().empty() && in_.source.hostname() == in_.target.hostname()) {
      return Check(kName, kCheckFail, source_text, target_text,
                   absl::StrCat("the restore puts each tablespace at the source's path, and the "
                                "target is on the same host (",
                                in_.source.hostname(),
                                "): it would write into the source's own tablespace directories"),
                   "restore to another host, or move the source's tablespaces into its data "
                   "directory first");
    }
    return Check(kName, kCheckWarn, source_text, target_text,
                 absl::StrCat("the restore puts each tablespace at the same path on the target: ",
                              absl::StrJoin(source, ", ")),
                 "on the target, create each path, empty and owned by the postgres user "
                 "(mode 0700), on a filesystem with room for it");
  }

  v1::CheckResult TargetDisk() const {
    constexpr char kName[] = "target-disk";
    if (std::string why = MissingSide(true, true, false); !why.empty())
      return NotCompared(kName, why);
    if (!source_pg_) return NotCompared(kName, "the source's PostgreSQL is not reachable");
    uint64_t size = in_.source.postgres().database_size_bytes();
    const v1::HostFacts& target = in_.target;
    std::string source_text = size == 0 ? "" : absl::StrCat(FormatByteCount(size), " of databases");
    if (!target.disk_error().empty()) {
      return Check(kName, kCheckWarn, source_text, "",
                   absl::StrCat("the target's free space is unknown: ", target.disk_error()),
                   "let the target agent read its data directory's filesystem (or its parent)");
    }
    if (size == 0) {
      return Check(kName, kCheckWarn, source_text, FormatByteCount(target.data_dir_free_bytes()),
                   "the source's size is unknown (its agent did not report database_size_bytes)",
                   "upgrade the source's pghaul-agent, then run preflight again");
    }
    uint64_t needed =
        static_cast<uint64_t>(std::ceil(static_cast<double>(size) * kTargetDiskGrowthFactor)) +
        kTargetDiskMarginBytes;
    // The restore replaces the cluster now in the plan's directory, so its space counts as free.
    uint64_t reclaimable = 0;
    if (target_pg_ && !target.postgres().data_directory().empty() &&
        NormalizePath(target.postgres().data_directory()) ==
            NormalizePath(plan_.target_data_directory)) {
      reclaimable = target.postgres().database_size_bytes();
    }
    uint64_t available = target.data_dir_free_bytes() + reclaimable;
    std::string target_text = absl::StrCat(FormatByteCount(target.data_dir_free_bytes()), " free");
    if (reclaimable > 0) {
      absl::StrAppend(&target_text, " + ", FormatByteCount(reclaimable), " of the current cluster");
    }
    std::string rule = absl::StrCat(FormatByteCount(needed), " (the source's ",
                                    FormatByteCount(size), " + 20 % + 1 GiB for WAL)");
    if (available < needed) {
      return Check(
          kName, kCheckFail, source_text, target_text,
          absl::StrCat("the target needs ", rule, " on the filesystem of ",
                       plan_.target_data_directory, " and has ", FormatByteCount(available)),
          absl::StrCat("free or add at least ", FormatByteCount(needed - available),
                       " on that filesystem of the target"));
    }
    return Check(kName, kCheckPass, source_text, target_text,
                 absl::StrCat("the target has room: it needs ", rule));
  }

  v1::CheckResult PgBackRestPresent() const {
    constexpr char kName[] = "pgbackrest-present";
    if (std::string why = MissingSide(true, true, false); !why.empty())
      return NotCompared(kName, why);
    auto text = [](const v1::HostFacts& facts) {
      return facts.pgbackrest_version().empty() ? std::string("missing")
                                                : facts.pgbackrest_version();
    };
    std::vector<std::string> problems;
    for (const auto* side : {&in_.source, &in_.target}) {
      if (!side->pgbackrest_version().empty()) continue;
      std::string error =
          side->pgbackrest_error().empty() ? "its version is unknown" : side->pgbackrest_error();
      problems.push_back(absl::StrCat("not usable on the ",
                                      side == &in_.source ? "source" : "target", ": ", error));
    }
    if (problems.empty()) {
      return Check(kName, kCheckPass, text(in_.source), text(in_.target),
                   "pgBackRest runs on both hosts");
    }
    return Check(kName, kCheckFail, text(in_.source), text(in_.target),
                 absl::StrCat("pgBackRest is ", absl::StrJoin(problems, "; ")),
                 "install pgbackrest on that host (apt-get install pgbackrest), or set "
                 "pgbackrest_binary in its agent.yaml");
  }

  v1::CheckResult PgBackRestVersion() const {
    constexpr char kName[] = "pgbackrest-version";
    if (std::string why = MissingSide(true, true, false); !why.empty())
      return NotCompared(kName, why);
    const std::string& source = in_.source.pgbackrest_version();
    const std::string& target = in_.target.pgbackrest_version();
    if (source.empty() || target.empty()) {
      return NotCompared(kName, "pgBackRest's version is unknown on a host");
    }
    int order = ComparePgBackRestVersions(target, source);
    if (order < 0) {
      return Check(kName, kCheckFail, source, target,
                   "the target's pgBackRest is older than the source's: an older pgBackRest "
                   "cannot read a repository written by a newer one",
                   absl::StrCat("upgrade pgbackrest on the target to ", source, " or later"));
    }
    if (source != target) {
      return Check(
          kName, kCheckWarn, source, target,
          "pgBackRest versions differ; the target's is newer and reads the source's "
          "repository",
          absl::StrCat("install pgbackrest ", target, " on the source too when convenient"));
    }
    return Check(kName, kCheckPass, source, target, "same pgBackRest version");
  }

  v1::CheckResult TargetDataDirectory() const {
    constexpr char kName[] = "target-data-directory";
    const std::string planned = NormalizePath(plan_.target_data_directory);
    if (!target_facts_) return NotCompared(kName, MissingSide(false, true, false));
    const std::string configured = NormalizePath(in_.target.data_directory());
    const std::string server =
        target_pg_ ? NormalizePath(in_.target.postgres().data_directory()) : std::string();
    std::string target_text = configured.empty() ? "(none configured)" : configured;
    if (!server.empty() && server != configured) {
      absl::StrAppend(&target_text, ", server: ", server);
    }
    if (configured.empty()) {
      return Check(kName, kCheckFail, "", target_text,
                   "the target agent has no data directory configured",
                   absl::StrCat("set data_directory: ", planned, " in the target's agent.yaml"));
    }
    if (configured != planned) {
      return Check(kName, kCheckFail, "", target_text,
                   absl::StrCat("the plan restores into ", planned,
                                ", but the target agent's data directory is ", configured),
                   "correct target.data_directory in the plan (or data_directory in the target's "
                   "agent.yaml): both must name the same directory");
    }
    if (!server.empty() && server != planned) {
      return Check(kName, kCheckFail, "", target_text,
                   absl::StrCat("the plan restores into ", planned,
                                ", but the target's PostgreSQL runs from ", server),
                   "point the target agent at the PostgreSQL whose data directory the plan names");
    }
    return Check(kName, kCheckPass, "", target_text,
                 server.empty() ? absl::StrCat(planned,
                                               " is the target agent's data directory (the "
                                               "server's own setting was not seen)")
                                : absl::StrCat(planned,
                                               " is the target agent's and its PostgreSQL's data "
                                               "directory"));
  }

  v1::CheckResult TargetOverwrite() const {
    constexpr char kName[] = "target-overwrite";
    std::string value =
        absl::StrCat("allow_overwrite: ", plan_.target_allow_overwrite ? "true" : "false");
    if (!plan_.target_allow_overwrite) {
      return Check(kName, kCheckFail, "", value,
                   absl::StrCat("the restore replaces everything in ", plan_.target_data_directory,
                                " on the target, and the plan does not allow it"),
                   "set target.allow_overwrite: true in the plan once that is the right directory "
                   "on the right host");
    }
    return Check(kName, kCheckPass, "", value,
                 absl::StrCat("allowed: the restore replaces the contents of ",
                              plan_.target_data_directory));
  }

  // Whether the archive_command names the plan's stanza (as prepare-source writes it).
  bool ArchivesToOurStanza(const std::string& command) const {
    std::string option = absl::StrCat("--stanza=", plan_.stanza);
    for (size_t at = command.find(option); at != std::string::npos;
         at = command.find(option, at + 1)) {
      size_t end = at + option.size();
      if (end == command.size() || command[end] == ' ' || command[end] == '\'' ||
          command[end] == '"') {
        return true;
      }
    }
    return false;
  }

  v1::CheckResult SourceArchiving() const {
    constexpr char kName[] = "source-archiving";
    if (std::string why = MissingSide(true, false, true); !why.empty())
      return NotCompared(kName, why);
    const std::string& mode = in_.source.postgres().archive_mode();
    const std::string& command = in_.source.postgres().archive_command();
    std::string source_text = absl::StrCat("archive_mode=", mode.empty() ? "?" : mode);
    bool has_command = !command.empty() && command != "(disabled)";
    if (has_command) absl::StrAppend(&source_text, ", archive_command=", command);
    if (mode != "on" && mode != "always") {
      if (!plan_.source_restart_allowed) {
        return Check(kName, kCheckFail, source_text, "",
                     "archive_mode is off on the source: turning it on needs a restart, which the "
                     "plan does not allow",
                     "set source_restart_allowed: true in the plan, or run ALTER SYSTEM SET "
                     "archive_mode = on and restart the source yourself");
      }
      return Check(kName, kCheckWarn, source_text, "",
                   "archive_mode is off: prepare-source will restart the source once (a fast "
                   "shutdown ends every session)",
                   "to choose the moment, run ALTER SYSTEM SET archive_mode = on and restart the "
                   "source yourself before prepare-source");
    }
    if (!has_command) {
      return Check(kName, kCheckPass, source_text, "",
                   "archive_mode is on: prepare-source sets archive_command with a reload");
    }
    if (absl::StrContains(command, "pgbackrest") && ArchivesToOurStanza(command)) {
      return Check(kName, kCheckPass, source_text, "",
                   absl::StrCat("the source already archives into stanza ", Quote(plan_.stanza)));
    }
    if (absl::StrContains(command, "pgbackrest")) {
      return Check(kName, kCheckWarn, source_text, "",
                   absl::StrCat("the source archives with pgBackRest, but not into stanza ",
                                Quote(plan_.stanza),
                                ": prepare-source replaces archive_command, so that archive gets "
                                "no WAL until abort or finish puts the old command back"),
                   "make sure nothing needs that archive to stay complete during the migration");
    }
    return Check(kName, kCheckWarn, source_text, "",
                 "the source archives with a command of its own: prepare-source replaces it, so "
                 "that archive gets no WAL until abort or finish puts the old command back",
                 "make sure nothing needs that archive to stay complete during the migration");
  }

  v1::CheckResult SourceRole() const {
    constexpr char kName[] = "source-role";
    if (std::string why = MissingSide(true, false, true); !why.empty())
      return NotCompared(kName, why);
    const v1::PostgresFacts& pg = in_.source.postgres();
    if (pg.is_superuser()) {
      return Check(kName, kCheckPass, absl::StrCat(pg.current_user(), " (superuser)"), "",
                   "the source agent connects as a superuser");
    }
    return Check(
        kName, kCheckWarn, pg.current_user(), "",
        absl::StrCat("role ", Quote(pg.current_user()),
                     " is not a superuser: pghaul needs ALTER SYSTEM on archive_mode, "
                     "archive_command and default_transaction_read_only, pg_reload_conf(), "
                     "pg_switch_wal(), CHECKPOINT, pg_terminate_backend() and "
                     "pg_read_all_settings on the source"),
        "connect the source agent as a superuser (postgres), or grant that role those rights");
  }

  // After the restore the target's catalogue is the source's, roles included: the role the
  // target agent connects as must exist there.
  v1::CheckResult TargetRole() const {
    constexpr char kName[] = "target-role";
    if (std::string why = MissingSide(true, true, true); !why.empty())
      return NotCompared(kName, why);
    const v1::PostgresFacts& source = in_.source.postgres();
    const v1::PostgresFacts& target = in_.target.postgres();
    std::string source_text =
        absl::StrCat(source.current_user(), source.is_superuser() ? " (superuser)" : "");
    std::string target_text =
        absl::StrCat(target.current_user(), target.is_superuser() ? " (superuser)" : "");
    std::vector<std::string> problems;
    if (target.current_user() != source.current_user()) {
      problems.push_back(absl::StrCat(
          "the restored target has the source's roles, so role ", Quote(target.current_user()),
          " that the target agent connects as must exist on the source"));
    }
    if (!source.is_superuser() || !target.is_superuser()) {
      problems.push_back(
          "the target agent needs a superuser (or pg_promote and pg_read_all_settings) to promote "
          "and check the restored cluster");
    }
    if (problems.empty()) {
      return Check(kName, kCheckPass, source_text, target_text,
                   "both agents connect as the same superuser, which the restored target keeps");
    }
    return Check(kName, kCheckWarn, source_text, target_text, absl::StrJoin(problems, "; "),
                 "connect both agents as the same superuser (postgres)");
  }

  v1::CheckResult Stanza() const {
    constexpr char kName[] = "stanza";
    const std::string& stanza = plan_.stanza;
    std::string check_fix = absl::StrCat("on the source, run pgbackrest --stanza=", stanza,
                                         " info (with the migration's config) to see why");
    if (!in_.repository_not_writable.empty()) {
      return Check(kName, kCheckFail, "not writable", "",
                   absl::StrCat("the source's agent user cannot write ",
                                in_.repository_not_writable,
                                " in the repository path: stanza-create, the backup and "
                                "PostgreSQL's archive-push would fail there after the source "
                                "was changed"),
                   absl::StrCat("let the database's OS user write ", in_.repository_not_writable,
                                " (chown or chmod), or choose another repository.posix.path"));
    }
    int code = in_.stanza_status_code;
    std::string status_message;  // status.message: "ok", "other", ...
    std::string detail;          // status.message and the repositories' messages
    const Json* entry = nullptr;
    Json parsed;
    if (!in_.stanza_info_json.empty()) {
      parsed = Json::parse(in_.stanza_info_json, /*cb=*/nullptr, /*allow_exceptions=*/false);
      if (parsed.is_discarded() || !parsed.is_array()) {
        return Check(kName, kCheckFail, "unreadable", "",
                     "the output of pgbackrest info is not a JSON array of stanzas", check_fix);
      }
      for (const Json& item : parsed) {
        if (item.is_object() && item.value("name", Json()).is_string() &&
            item["name"].get<std::string>() == stanza) {
          entry = &item;
        }
      }
      if (entry == nullptr) {
        return Check(kName, kCheckFail, "not listed", "",
                     absl::StrCat("pgbackrest info did not list stanza ", Quote(stanza)),
                     check_fix);
      }
      try {
        const Json& status = entry->at("status");
        code = JsonInt(status.at("code"));
        std::vector<std::string> messages;
        if (status.contains("message") && status["message"].is_string()) {
          status_message = status["message"].get<std::string>();
          messages.push_back(status_message);
        }
        if (entry->contains("repo") && (*entry)["repo"].is_array()) {
          for (const Json& repo : (*entry)["repo"]) {
            const Json& repo_status = repo.at("status");
            if (JsonInt(repo_status.at("code")) == kStanzaOk) continue;
            std::string message = FirstLine(repo_status.value("message", ""));
            if (!messages.empty() && message == messages.front()) continue;
            messages.push_back(absl::StrCat(
                "repo", JsonInt(repo.value("key", nlohmann::json(0))), ": ", message));
          }
        }
        detail = absl::StrJoin(messages, "; ");
      } catch (const std::exception& e) {
        return Check(
            kName, kCheckFail, "unreadable", "",
            absl::StrCat("the output of pgbackrest info has an unexpected shape: ", e.what()),
            check_fix);
      }
    } else if (!in_.stanza_info_error.empty()) {
      return Check(
          kName, kCheckFail, "info failed", "",
          absl::StrCat("pgbackrest info failed on the source: ", FirstLine(in_.stanza_info_error)),
          absl::StrCat("check the repository settings and that the source can reach "
                       "the repository (pgbackrest --stanza=",
                       stanza, " info)"));
    } else if (code < 0) {
      return Check(kName, kCheckWarn, "not checked", "",
                   "not checked: pgbackrest info did not run on the source",
                   "fix the failing checks above, then run preflight again");
    }
    if (status_message.empty()) status_message = DescribeStanzaCode(code);
    if (detail.empty()) detail = status_message;
    std::string source_text = absl::StrCat("status ", code, " (", status_message, ")");

    if (code == kStanzaMissingStanzaPath) {
      return Check(
          kName, kCheckPass, source_text, "",
          absl::StrCat("stanza ", Quote(stanza), " does not exist yet: prepare-source creates it"));
    }
    if (code != kStanzaOk && code != kStanzaNoValidBackups) {
      std::string fix = code == kStanzaMissingStanzaData
                            ? "the stanza is damaged (no backup.info): repair the repository, or "
                              "use a new stanza name"
                            : absl::StrCat(
                                  "check that the source can reach and write the "
                                  "repository: pgbackrest --stanza=",
                                  stanza, " check");
      return Check(kName, kCheckFail, source_text, "",
                   absl::StrCat("stanza ", Quote(stanza), " cannot be used: ", detail), fix);
    }
    if (entry == nullptr) {
      // Only a status code, no JSON: the stanza exists but whose it is cannot be told.
      return Check(
          kName, kCheckWarn, source_text, "",
          absl::StrCat("stanza ", Quote(stanza), " exists, but its system identifier was not read"),
          "run preflight again once pgbackrest info's output is available");
    }
    // The current cluster of the stanza is the db entry with the highest id; older entries are
    // history (stanza-upgrade).
    const Json* current = nullptr;
    try {
      if (entry->contains("db") && (*entry)["db"].is_array()) {
        for (const Json& db : (*entry)["db"]) {
          if (current == nullptr || JsonInt(db.at("id")) > JsonInt(current->at("id"))) {
            current = &db;
          }
        }
      }
      uint64_t source_id = in_.source.postgres().system_identifier();
      if (current == nullptr) {
        return Check(kName, kCheckFail, source_text, "",
                     absl::StrCat("stanza ", Quote(stanza), " lists no database"), check_fix);
      }
      uint64_t stanza_id = JsonUint64(current->at("system-id"));
      std::string stanza_version = current->value("version", "");
      absl::StrAppend(&source_text, ", system id ", stanza_id);
      if (source_id == 0) {
        return Check(kName, kCheckWarn, source_text, "",
                     absl::StrCat("stanza ", Quote(stanza),
                                  " exists; the source's system identifier is unknown, so whose "
                                  "backups it holds cannot be told"),
                     "fix source-reachable, then run preflight again");
      }
      if (stanza_id != source_id) {
        return Check(kName, kCheckFail, source_text, "",
                     absl::StrCat("stanza ", Quote(stanza),
                                  " holds another cluster's backups (system identifier ", stanza_id,
                                  "; the source's is ", source_id, ")"),
                     "choose another stanza name in the plan (never stanza-upgrade a stanza "
                     "over to another cluster)");
      }
      int32_t source_num = in_.source.postgres().server_version_num();
      if (source_num != 0 && !stanza_version.empty() && stanza_version != FormatMajor(source_num)) {
        return Check(kName, kCheckFail, source_text, "",
                     absl::StrCat("stanza ", Quote(stanza), " was made for PostgreSQL ",
                                  stanza_version, ", the source runs ", FormatMajor(source_num)),
                     "choose another stanza name in the plan");
      }
      bool running = entry->contains("status") &&
                     (*entry)["status"].value(Json::json_pointer("/lock/backup/held"), false);
      size_t backups = entry->contains("backup") && (*entry)["backup"].is_array()
                           ? (*entry)["backup"].size()
                           : 0;
      if (running) {
        return Check(kName, kCheckWarn, source_text, "",
                     absl::StrCat("stanza ", Quote(stanza),
                                  " holds the source's backups, and a backup or expire is running "
                                  "in it now"),
                     "wait for it to finish before the backup phase");
      }
      return Check(kName, kCheckPass, source_text, "",
                   code == kStanzaOk
                       ? absl::StrCat("stanza ", Quote(stanza), " holds the source's backups (",
                                      backups, backups == 1 ? " backup)" : " backups)")
                       : absl::StrCat("stanza ", Quote(stanza),
                                      " exists for the source's cluster, with no valid backup "
                                      "yet"));
    } catch (const std::exception& e) {
      return Check(
          kName, kCheckFail, source_text, "",
          absl::StrCat("the output of pgbackrest info has an unexpected shape: ", e.what()),
          check_fix);
    }
  }

  // Patroni on the target: its REST API answers, its version is one pghaul was tested with,
  // and it can read its DCS (GET /cluster, which makes Patroni ask the DCS there and then).
  v1::CheckResult Patroni() const {
    constexpr char kName[] = "patroni";
    if (!target_facts_) return NotCompared(kName, MissingSide(false, true, false));
    if (!in_.target.has_patroni()) {
      return Check(kName, kCheckPass, "", "not managed by Patroni",
                   "the target is not managed by Patroni (its agent has no patroni section)");
    }
    const v1::PatroniFacts& patroni = in_.target.patroni();
    if (!patroni.reachable()) {
      return Check(kName, kCheckFail, "", "not reachable",
                   absl::StrCat("Patroni's REST API at ", patroni.rest_api(), " did not answer",
                                patroni.error().empty() ? "" : ": ", patroni.error()),
                   "start Patroni on the target, or fix patroni.rest_api.address in the target's "
                   "agent.yaml (Patroni's restapi.connect_address)");
    }
    std::vector<std::string> target_parts;
    target_parts.push_back(
        absl::StrCat("Patroni ", patroni.version().empty() ? "?" : patroni.version()));
    std::string status = kCheckPass;
    std::vector<std::string> problems;
    std::vector<std::string> fixes;
    auto worsen = [&status](const char* to) {
      if (std::string(to) == kCheckFail || status == kCheckPass) status = to;
    };

    const PatroniVersion version = ParsePatroniVersion(patroni.version());
    if (!version.valid) {
      worsen(kCheckWarn);
      problems.push_back(
          absl::StrCat("Patroni's version is unknown (",
                       patroni.version().empty() ? "not reported" : Quote(patroni.version()),
                       "): pghaul was tested with 3.0.x"));
      fixes.push_back("check `patroni --version` on the target; pghaul is tested with 3.0.x");
    } else if (version.major < 3) {
      worsen(kCheckFail);
      problems.push_back(absl::StrCat("Patroni ", patroni.version(),
                                      " is older than 3.0, which pghaul needs (its etcd3 DCS, "
                                      "REST API and custom bootstrap as pghaul uses them)"));
      fixes.push_back("upgrade Patroni on the target to 3.0.x");
    } else if (version.major != 3 || version.minor != 0) {
      worsen(kCheckWarn);
      problems.push_back(absl::StrCat("Patroni ", patroni.version(),
                                      " is not tested with pghaul (tested: 3.0.x)"));
      fixes.push_back("rehearse the migration on a copy first, or run Patroni 3.0.x on the target");
    }

    std::string last_seen;
    if (patroni.has_dcs_last_seen()) {
      const absl::Time seen = FromProto(patroni.dcs_last_seen());
      if (in_.target.has_gathered_at()) {
        const absl::Duration age = FromProto(in_.target.gathered_at()) - seen;
        last_seen = absl::StrCat("; Patroni last read it ",
                                 absl::FormatDuration(absl::Seconds(
                                     absl::ToInt64Seconds(std::max(age, absl::ZeroDuration())))),
                                 " before the facts were gathered");
      } else {
        last_seen =
            absl::StrCat("; Patroni last read it at ",
                         absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", seen, absl::UTCTimeZone()));
      }
    }
    const std::string dcs =
        patroni.dcs().empty() ? "DCS" : absl::StrCat("DCS (", patroni.dcs(), ")");
    if (patroni.dcs_reachable()) {
      target_parts.push_back(absl::StrCat(dcs, " reachable"));
    } else if (patroni.dcs_error().empty()) {
      worsen(kCheckWarn);
      target_parts.push_back(absl::StrCat(dcs, " unknown"));
      problems.push_back(
          "whether Patroni reaches its DCS is unknown: the target agent does not report it");
      fixes.push_back("upgrade the target's pghaul-agent, then run preflight again");
    } else {
      worsen(kCheckFail);
      target_parts.push_back(absl::StrCat(dcs, " not reachable"));
      problems.push_back(
          absl::StrCat("Patroni cannot read its ", dcs, ": ", patroni.dcs_error(), last_seen));
      fixes.push_back(
          "start the DCS (etcd) or fix Patroni's etcd3.hosts in its configuration; `patronictl "
          "list` on the target must show the cluster");
    }
    if (!patroni.role().empty()) target_parts.push_back(patroni.role());
    const std::string target_text = absl::StrJoin(target_parts, ", ");
    if (status == kCheckPass) {
      return Check(kName, kCheckPass, "", target_text,
                   absl::StrCat("Patroni ", patroni.version(), " answers at ", patroni.rest_api(),
                                " and reads its ", dcs));
    }
    return Check(kName, status, "", target_text, absl::StrJoin(problems, "; "),
                 absl::StrJoin(fixes, "; "));
  }

  // The roles Patroni connects as (patroni.yml's postgresql.authentication) must be in the
  // restored catalogue, which is the source's: each must exist on the source before the backup,
  // with the attributes Patroni needs.
  v1::CheckResult PatroniRoles() const {
    constexpr char kName[] = "patroni-roles";
    if (!target_facts_) return NotCompared(kName, MissingSide(false, true, false));
    if (!in_.target.has_patroni()) {
      return Check(kName, kCheckPass, "", "not managed by Patroni",
                   "the target is not managed by Patroni: no roles of its own to bring along");
    }
    const v1::PatroniFacts& patroni = in_.target.patroni();
    if (!patroni.config_read()) {
      if (patroni.config_error().empty()) {
        return NotCompared(kName, "the target agent does not report Patroni's roles (upgrade it)");
      }
      return Check(
          kName, kCheckFail, "", "unreadable",
          absl::StrCat("the roles Patroni connects as are unknown: ", patroni.config_error()),
          "let the target agent's OS user read Patroni's configuration file, or fix "
          "patroni.config_file in the target's agent.yaml");
    }
    if (std::string why = MissingSide(true, false, true); !why.empty()) {
      return NotCompared(kName, why);
    }
    const v1::PostgresFacts& source = in_.source.postgres();
    if (!source.roles_listed()) {
      return NotCompared(kName,
                         "the source agent did not list its roles (upgrade it, or see "
                         "source-reachable's message)");
    }
    struct Need {
      const char* kind;  // Patroni's name for the user
      std::string name;  // the username in patroni.yml
      bool superuser;    // needs SUPERUSER
      bool replication;  // needs REPLICATION
    };
    const std::vector<Need> needs = {
        {"superuser", patroni.superuser(), true, false},
        {"replication user", patroni.replication_user(), false, true},
        {"rewind user", patroni.rewind_user(), false, false},
    };
    std::vector<std::string> target_parts;
    std::vector<std::string> source_parts;
    std::vector<std::string> failures;
    std::vector<std::string> warnings;
    std::vector<std::string> statements;
    for (const Need& need : needs) {
      if (need.name.empty()) {
        // Without a rewind user Patroni rewinds as the superuser.
        if (std::string(need.kind) == "rewind user") continue;
        warnings.push_back(absl::StrCat("Patroni's ", need.kind, " is not named in ",
                                        patroni.config_file(),
                                        " (perhaps set in Patroni's environment): not checked"));
        continue;
      }
      target_parts.push_back(absl::StrCat(absl::StripSuffix(need.kind, " user"), " ", need.name));
      std::string attributes = need.superuser     ? "SUPERUSER LOGIN"
                               : need.replication ? "REPLICATION LOGIN"
                                                  : "LOGIN";
      const v1::Role* role = nullptr;
      for (const v1::Role& candidate : source.roles()) {
        if (candidate.name() == need.name) role = &candidate;
      }
      if (role == nullptr) {
        if (source.roles_truncated()) {
          warnings.push_back(absl::StrCat("role ", Quote(need.name), " (Patroni's ", need.kind,
                                          ") is not among the roles the source agent listed, "
                                          "which were cut short"));
          continue;
        }
        source_parts.push_back(absl::StrCat(need.name, " missing"));
        failures.push_back(absl::StrCat("role ", Quote(need.name), " (Patroni's ", need.kind,
                                        ") does not exist on the source"));
        statements.push_back(
            absl::StrCat("CREATE ROLE ", QuoteIdentifier(need.name), " ", attributes));
        continue;
      }
      std::vector<std::string> lacking;
      if (need.superuser && !role->superuser()) lacking.push_back("SUPERUSER");
      if (need.replication && !role->replication() && !role->superuser()) {
        lacking.push_back("REPLICATION");
      }
      if (!role->can_login()) lacking.push_back("LOGIN");
      std::vector<std::string> has;
      if (role->superuser()) has.push_back("superuser");
      if (role->replication()) has.push_back("replication");
      if (role->can_login()) has.push_back("login");
      source_parts.push_back(absl::StrCat(need.name, has.empty() ? "" : " (",
                                          absl::StrJoin(has, ", "), has.empty() ? "" : ")"));
      if (!lacking.empty()) {
        failures.push_back(absl::StrCat("role ", Quote(need.name), " (Patroni's ", need.kind,
                                        ") exists on the source without ",
                                        absl::StrJoin(lacking, ", ")));
        statements.push_back(absl::StrCat("ALTER ROLE ", QuoteIdentifier(need.name), " ",
                                          absl::StrJoin(lacking, " ")));
      }
    }
    const std::string source_text = absl::StrJoin(source_parts, ", ");
    const std::string target_text = absl::StrJoin(target_parts, ", ");
    if (!failures.empty()) {
      std::vector<std::string> message = failures;
      message.insert(message.end(), warnings.begin(), warnings.end());
      // The rehearsal restore creates them on the target (PREPARE_RESTORED), so this is what
      // will happen rather than what stops the migration.
      return Check(
          kName, kCheckWarn, source_text, target_text,
          absl::StrCat(absl::StrJoin(message, "; "),
                       ": the restored catalogue is the source's, and Patroni connects as these "
                       "roles; the restore creates them on the target (with patroni.yml's "
                       "passwords) before Patroni starts"),
          absl::StrCat("nothing to do for a rehearsal restore; to have them in the source's "
                       "catalogue too, on the source: ",
                       absl::StrJoin(statements, "; ")));
    }
    if (!warnings.empty()) {
      return Check(kName, kCheckWarn, source_text, target_text, absl::StrJoin(warnings, "; "),
                   "make sure each role Patroni connects as exists on the source (superuser: "
                   "SUPERUSER LOGIN, replication: REPLICATION LOGIN, rewind: LOGIN)");
    }
    return Check(kName, kCheckPass, source_text, target_text,
                 "every role Patroni connects as exists on the source with the attributes it "
                 "needs");
  }

  // Login roles whose password is an md5 hash cannot log in where pg_hba.conf says
  // scram-sha-256 ("User "x" does not have a valid SCRAM secret"); the restore keeps their
  // hashes as they are.
  v1::CheckResult PasswordEncryption() const {
    constexpr char kName[] = "password-encryption";
    if (std::string why = MissingSide(true, true, false); !why.empty()) {
      return NotCompared(kName, why);
    }
    if (!source_pg_) return NotCompared(kName, "the source's PostgreSQL is not reachable");
    const v1::PostgresFacts& source = in_.source.postgres();
    if (!source.roles_listed()) {
      return NotCompared(kName,
                         "the source agent did not list its roles (upgrade it, or see "
                         "source-reachable's message)");
    }
    if (!source.password_hashes_read()) {
      return Check(kName, kCheckWarn, "not read", "",
                   absl::StrCat("the source agent's role ", Quote(source.current_user()),
                                " may not read pg_authid, so md5 password hashes were not "
                                "looked for"),
                   "connect the source agent as a superuser (postgres)");
    }
    std::vector<std::string> md5_roles;
    for (const v1::Role& role : source.roles()) {
      if (role.can_login() && role.md5_password()) md5_roles.push_back(role.name());
    }
    // What the target demands: its password_encryption, and Patroni's pg_hba lines (which
    // Patroni writes over the restored pg_hba.conf).
    const std::string& encryption = target_pg_ ? in_.target.postgres().password_encryption() : "";
    std::vector<std::string> scram_lines;
    if (in_.target.has_patroni()) {
      for (const std::string& line : in_.target.patroni().pg_hba()) {
        if (HbaLineIsScramFor(line, md5_roles)) scram_lines.push_back(line);
      }
    }
    std::vector<std::string> target_parts;
    if (!encryption.empty())
      target_parts.push_back(absl::StrCat("password_encryption=", encryption));
    if (!scram_lines.empty()) target_parts.push_back("Patroni's pg_hba: scram-sha-256");
    const std::string target_text = absl::StrJoin(target_parts, ", ");
    if (md5_roles.empty()) {
      return Check(kName, kCheckPass, "no md5 passwords", target_text,
                   "no login role of the source has an md5 password hash");
    }
    constexpr size_t kMaxNamed = 10;
    std::vector<std::string> named;
    for (size_t i = 0; i < md5_roles.size() && i < kMaxNamed; ++i)
      named.push_back(Quote(md5_roles[i]));
    std::string list = absl::StrJoin(named, ", ");
    if (md5_roles.size() > kMaxNamed) {
      absl::StrAppend(&list, " and ", md5_roles.size() - kMaxNamed, " more");
    }
    const std::string source_text =
        absl::StrCat(md5_roles.size(), md5_roles.size() == 1 ? " login role" : " login roles",
                     " with md5: ", list);
    const std::string what = absl::StrCat(
        md5_roles.size() == 1 ? "a login role" : absl::StrCat(md5_roles.size(), " login roles"),
        " of the source ", md5_roles.size() == 1 ? "has" : "have", " an md5 password hash (", list,
        ")");
    const std::string fix = absl::StrCat(
        "on the source, SET password_encryption = 'scram-sha-256' and ALTER ROLE ",
        QuoteIdentifier(md5_roles.front()),
        " PASSWORD '...' for each listed role (its clients keep the same password), or "
        "authenticate these roles with md5 lines in the target's pg_hba");
    if (!scram_lines.empty()) {
      return Check(kName, kCheckFail, source_text, target_text,
                   absl::StrCat(what, ": Patroni's pg_hba on the target authenticates ",
                                md5_roles.size() == 1 ? "it" : "them", " with scram-sha-256 (",
                                Quote(scram_lines.front()), "), so after the restore ",
                                md5_roles.size() == 1 ? "it cannot" : "they cannot",
                                " log in (User \"x\" does not have a valid SCRAM secret)"),
                   absl::StrCat(fix, " (Patroni's postgresql.pg_hba)"));
    }
    if (encryption == "scram-sha-256") {
      return Check(kName, kCheckWarn, source_text, target_text,
                   absl::StrCat(what,
                                ": the target uses scram-sha-256 (password_encryption); "
                                "the restored md5 hashes work only where pg_hba.conf "
                                "says md5, not scram-sha-256"),
                   fix);
    }
    return Check(kName, kCheckPass, source_text, target_text,
                 absl::StrCat(what, "; the target does not demand scram-sha-256",
                              encryption.empty() ? " (its password_encryption is unknown)" : ""));
  }

  const PreflightInput& in_;
  const Plan& plan_;
  const bool source_facts_;
  const bool target_facts_;
  const bool source_pg_;
  const bool target_pg_;
};

}  // namespace

const std::vector<std::string>& PreflightCheckNames() {
  static const std::vector<std::string>* const kNames =
      new std::vector<std::string>{"agents-online",
                                   "facts-reported",
                                   "distinct-clusters",
                                   "source-reachable",
                                   "source-primary",
                                   "target-reachable",
                                   "postgres-major",
                                   "architecture",
                                   "block-size",
                                   "wal-segment-size",
                                   "data-checksums",
                                   "encoding",
                                   "lc-collate",
                                   "lc-ctype",
                                   "libc-version",
                                   "extensions",
                                   "tablespaces",
                                   "target-disk",
                                   "pgbackrest-present",
                                   "pgbackrest-version",
                                   "target-data-directory",
                                   "target-overwrite",
                                   "source-archiving",
                                   "source-role",
                                   "target-role",
                                   "stanza",
                                   "patroni",
                                   "patroni-roles",
                                   "password-encryption"};
  return *kNames;
}

std::vector<v1::CheckResult> RunPreflightChecks(const PreflightInput& in) {
  return Checker(in).Run();
}

bool PreflightPassed(const std::vector<v1::CheckResult>& checks) {
  return std::none_of(checks.begin(), checks.end(),
                      [](const v1::CheckResult& check) { return check.status() == kCheckFail; });
}

std::string SummarizePreflight(const std::vector<v1::CheckResult>& checks) {
  int pass = 0;
  int warn = 0;
  std::vector<std::string> failed;
  for (const v1::CheckResult& check : checks) {
    if (check.status() == kCheckPass) {
      ++pass;
    } else if (check.status() == kCheckWarn) {
      ++warn;
    } else {
      failed.push_back(check.name());
    }
  }
  std::string text = absl::StrCat(pass, " pass, ", warn, " warn, ", failed.size(), " fail");
  if (!failed.empty()) absl::StrAppend(&text, ": ", absl::StrJoin(failed, ", "));
  return text;
}

std::string FormatServerVersion(int32_t server_version_num) {
  if (server_version_num <= 0) return "";
  if (server_version_num >= 100000) {
    return absl::StrCat(server_version_num / 10000, ".", server_version_num % 100);
  }
  return absl::StrCat(server_version_num / 10000, ".", server_version_num / 100 % 100, ".",
                      server_version_num % 100);
}

std::string FormatByteCount(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 6) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  // Whole numbers print without a fraction: "16 MiB", "1.5 GiB".
  if (value == std::floor(value)) {
    std::snprintf(text, sizeof(text), "%.0f %s", value, kUnits[unit]);
  } else {
    std::snprintf(text, sizeof(text), "%.1f %s", value, kUnits[unit]);
  }
  return text;
}

int ComparePgBackRestVersions(const std::string& a, const std::string& b) {
  auto parts = [](const std::string& version) {
    std::vector<long> numbers;
    for (absl::string_view part : absl::StrSplit(version, '.')) {
      long number = 0;
      size_t digits = 0;
      while (digits < part.size() &&
             absl::ascii_isdigit(static_cast<unsigned char>(part[digits]))) {
        ++digits;
      }
      if (digits > 0 && !absl::SimpleAtoi(part.substr(0, digits), &number)) number = 0;
      numbers.push_back(number);
    }
    return numbers;
  };
  std::vector<long> x = parts(a);
  std::vector<long> y = parts(b);
  size_t n = std::max(x.size(), y.size());
  x.resize(n, 0);
  y.resize(n, 0);
  if (x < y) return -1;
  if (y < x) return 1;
  return 0;
}

}  // namespace pghaul::controller
