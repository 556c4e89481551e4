#include "controller/plan.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/config_reader.h"
#include "common/files.h"
#include "common/identifiers.h"
#include "common/status_macros.h"
#include "common/validators.h"
#include "yaml-cpp/yaml.h"

namespace pghaul::controller {
namespace {

constexpr absl::string_view kInlineSecretMessage =
    "secrets are not read from the plan: use key_from/secret_from/passphrase_from with env or file";
constexpr size_t kMaxPlanBytes = 1 << 20;
constexpr size_t kMaxSecretsFileBytes = 1 << 20;

// ---- Grammars ----

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// ^[a-z0-9][a-z0-9_-]{0,62}$: it names directories on the agents and rows in the journal.
bool IsMigrationName(absl::string_view name) {
  if (name.empty() || name.size() > 63 || !IsLowerAlnum(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return IsLowerAlnum(c) || c == '_' || c == '-'; });
}

// The grammar the agents enforce for pgBackRest stanzas (common/validators.h), checked here
// too so that a bad stanza fails at plan time.
bool IsStanza(absl::string_view stanza) { return ValidateStanza(stanza).ok(); }

// An absolute path the agents will accept: no empty, "." or ".." component, no trailing '/',
// no control character. Checked here too, so that a bad path fails at plan time, not mid-way.
bool IsNormalizedAbsolutePath(absl::string_view path) {
  if (path.empty() || path[0] != '/' || path.size() > 4095) return false;
  if (path == "/") return true;
  for (char c : path) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  }
  for (absl::string_view part : absl::StrSplit(path.substr(1), '/')) {
    if (part.empty() || part == "." || part == "..") return false;
  }
  return true;
}

bool IsIpv4Address(absl::string_view host) {
  std::vector<absl::string_view> parts = absl::StrSplit(host, '.');
  if (parts.size() != 4) return false;
  for (absl::string_view part : parts) {
    if (part.empty() || part.size() > 3 || (part.size() > 1 && part[0] == '0')) return false;
    if (!std::all_of(part.begin(), part.end(), absl::ascii_isdigit)) return false;
    int value = 0;
    if (!absl::SimpleAtoi(part, &value) || value > 255) return false;
  }
  return true;
}

// Labels of letters, digits and '-' (not at either end), at most 253 bytes, not all numeric.
bool IsDnsName(absl::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  bool all_numeric = true;
  for (absl::string_view label : absl::StrSplit(host, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) all_numeric = false;
    }
  }
  return !all_numeric;
}

bool IsS3Bucket(absl::string_view bucket) {
  if (bucket.size() < 3 || bucket.size() > 63 || absl::StrContains(bucket, "..")) return false;
  if (!IsLowerAlnum(bucket.front()) || !IsLowerAlnum(bucket.back())) return false;
  return std::all_of(bucket.begin(), bucket.end(),
                     [](char c) { return IsLowerAlnum(c) || c == '.' || c == '-'; });
}

bool IsS3Region(absl::string_view region) {
  if (region.empty() || region.size() > 64) return false;
  return std::all_of(region.begin(), region.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

bool IsEnvName(absl::string_view name) {
  if (name.empty() || absl::ascii_isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

bool IsSecretsFileKey(absl::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

// "HH:MM", 00:00 to 23:59, as minutes after midnight.
std::optional<int> ParseTimeOfDay(absl::string_view text) {
  if (text.size() != 5 || text[2] != ':') return std::nullopt;
  int hours = 0;
  int minutes = 0;
  for (size_t i : {0, 1, 3, 4}) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(text[i]))) return std::nullopt;
  }
  if (!absl::SimpleAtoi(text.substr(0, 2), &hours) || !absl::SimpleAtoi(text.substr(3), &minutes) ||
      hours > 23 || minutes > 59) {
    return std::nullopt;
  }
  return hours * 60 + minutes;
}

std::string Quote(absl::string_view value) {
  constexpr size_t kMax = 80;
  return absl::StrCat("\"", absl::CHexEscape(value.substr(0, kMax)),
                      value.size() > kMax ? "..." : "", "\"");
}

std::string LineOf(const YAML::Node& node) {
  if (!node.IsDefined() || node.Mark().is_null()) return "";
  return absl::StrCat(" at line ", node.Mark().line + 1);
}

// The same shape as ConfigReader::Finish's message, for the problems found outside it.
absl::Status Problems(absl::string_view source, const std::vector<std::string>& problems) {
  if (problems.size() == 1)
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", problems[0]));
  return absl::InvalidArgumentError(
      absl::StrCat(source, ": ", problems.size(), " problems: ", absl::StrJoin(problems, "; ")));
}

// ---- Inline secrets ----
//
// ConfigReader cannot list a section's keys or tell a value's type without recording an error
// that quotes the value, so this scan walks the raw document first. It runs before any typed
// lookup, and when it finds anything the plan is refused with these problems alone: no other
// message can then quote a secret that was written into the plan.

bool IsSecretName(absl::string_view name) {
  return name == "key" || name == "secret" || name == "passphrase" || name == "password";
}

void FindInlineSecrets(const YAML::Node& node, const std::string& path, bool in_secret_source,
                       std::vector<std::string>* problems) {
  if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) {
      FindInlineSecrets(node[i], absl::StrCat(path, "[", i, "]"), false, problems);
    }
    return;
  }
  if (!node.IsMap()) return;
  for (const auto& entry : node) {
    if (!entry.first.IsScalar()) continue;  // ConfigReader reports non-scalar keys
    const std::string& name = entry.first.Scalar();
    std::string child = path.empty() ? name : absl::StrCat(path, ".", name);
    const YAML::Node& value = entry.second;
    // In {file: PATH, key: NAME}, `key` names an entry of the secrets file: not a secret.
    if (IsSecretName(name) && !(in_secret_source && name == "key")) {
      problems->push_back(
          absl::StrCat("key '", child, "': ", kInlineSecretMessage, LineOf(entry.first)));
      continue;
    }
    bool secret_source = absl::EndsWith(name, "_from");
    if (secret_source && !value.IsMap() && !value.IsNull()) {
      problems->push_back(absl::StrCat(
          "key '", child,
          "': expected {env: NAME} or {file: PATH, key: NAME}, got a value written in place "
          "(not shown: it may be a secret; ",
          kInlineSecretMessage, ")", LineOf(entry.first)));
      continue;
    }
    FindInlineSecrets(value, child, secret_source, problems);
  }
}

// ---- "Did you mean" ----

// Optimal string alignment distance: insertions, deletions, substitutions and transpositions of
// adjacent characters each cost 1, so "bukcet" is 1 from "bucket".
size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::optional<std::string> ClosestKey(absl::string_view unknown,
                                      const std::vector<std::string>& known) {
  std::optional<std::string> best;
  size_t best_distance = 3;
  for (const std::string& candidate : known) {
    size_t distance = EditDistance(unknown, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

// ConfigReader::Finish words an unknown key as "unknown key '<path>' (known keys: a, b) at line
// N" and has no suggestion of its own; this adds "did you mean 'b'? " inside the parentheses
// when a known key is within edit distance 2. A message in another shape is left as it is.
std::string AddSuggestions(std::string message) {
  const std::string kUnknown = "unknown key '";
  const std::string kKnown = "' (known keys: ";
  size_t at = 0;
  while ((at = message.find(kUnknown, at)) != std::string::npos) {
    size_t path_start = at + kUnknown.size();
    size_t path_end = message.find(kKnown, path_start);
    if (path_end == std::string::npos) break;
    size_t list_start = path_end + kKnown.size();
    size_t list_end = message.find(')', list_start);
    if (list_end == std::string::npos) break;
    absl::string_view path = absl::string_view(message).substr(path_start, path_end - path_start);
    absl::string_view name =
        path.substr(path.rfind('.') == absl::string_view::npos ? 0 : path.rfind('.') + 1);
    std::vector<std::string> known =
        absl::StrSplit(message.substr(list_start, list_end - list_start), ", ", absl::SkipEmpty());
    std::optional<std::string> suggestion = ClosestKey(name, known);
    if (suggestion) {
      std::string insert = absl::StrCat("did you mean '", *suggestion, "'? ");
      message.insert(path_end + 3, insert);  // after "' ("
      list_end += insert.size();
    }
    at = list_end;
  }
  return message;
}

// Takes one problem out of a ConfigReader::Finish status (see ReadChecks for why), keeping its
// "N problems: a; b" shape. Returns the status unchanged when the problem is not there.
absl::Status DropProblem(const absl::Status& status, absl::string_view source,
                         absl::string_view problem) {
  if (status.ok()) return status;
  std::string single = absl::StrCat(source, ": ", problem);
  if (status.message() == single) return absl::OkStatus();
  std::string prefix = absl::StrCat(source, ": ");
  if (!absl::StartsWith(status.message(), prefix)) return status;
  absl::string_view rest = status.message().substr(prefix.size());
  size_t count_end = rest.find(" problems: ");
  int count = 0;
  if (count_end == absl::string_view::npos ||
      !absl::SimpleAtoi(rest.substr(0, count_end), &count)) {
    return status;
  }
  std::string remaining(rest.substr(count_end + std::strlen(" problems: ")));
  std::string text(problem);
  size_t position = 0;
  if (absl::StartsWith(remaining, absl::StrCat(text, "; "))) {
    remaining.erase(0, text.size() + 2);
  } else if ((position = remaining.find(absl::StrCat("; ", text, "; "))) != std::string::npos) {
    remaining.erase(position, text.size() + 2);
  } else if (absl::EndsWith(remaining, absl::StrCat("; ", text))) {
    remaining.erase(remaining.size() - text.size() - 2);
  } else {
    return status;
  }
  if (count - 1 == 1) return absl::InvalidArgumentError(absl::StrCat(prefix, remaining));
  return absl::InvalidArgumentError(absl::StrCat(prefix, count - 1, " problems: ", remaining));
}

// ---- Sections ----

StringRule Rule(bool (*accepts)(absl::string_view), std::string expectation) {
  return StringRule{accepts, std::move(expectation)};
}

const StringRule& PathRule() {
  static const StringRule* rule = new StringRule(
      Rule(IsNormalizedAbsolutePath,
           "an absolute path (starting with '/', without '.', '..' or empty components)"));
  return *rule;
}

// An optional path where "" means unset (as in `ca_file: ""`).
void OptionalPath(ConfigReader& section, absl::string_view key, std::string* out) {
  std::string value;
  if (!section.String(key, &value) || value.empty()) return;
  if (!IsNormalizedAbsolutePath(value)) {
    section.AddError(key, absl::StrCat("expected ", PathRule().expectation,
                                       " or \"\" for none, got ", Quote(value)));
    return;
  }
  *out = value;
}

// `key` of `parent` as {env: NAME} or {file: PATH, key: NAME}. The values are never quoted in an
// error: a person may have put the secret itself where its name belongs.
std::optional<SecretSource> ReadSecretSource(ConfigReader& parent, absl::string_view key,
                                             Presence presence) {
  if (!parent.Has(key)) {
    std::string unused;
    parent.String(key, &unused, presence);  // marks it known; reports it missing if required
    return std::nullopt;
  }
  ConfigReader from = parent.Section(key);
  bool has_env = from.Has("env");
  bool has_file = from.Has("file");
  SecretSource source;
  source.plan_key = parent.PathOf(key);
  from.String("env", &source.env);
  from.String("file", &source.file);
  from.String("key", &source.file_key, has_file ? kRequired : kOptional);
  constexpr absl::string_view kNotShown = " (the value is not shown, in case it is a secret)";
  if (has_env && has_file) {
    parent.AddError(key, "give either env or file, not both");
    return std::nullopt;
  }
  if (!has_env && !has_file) {
    parent.AddError(key, "expected {env: NAME} or {file: PATH, key: NAME}");
    return std::nullopt;
  }
  bool ok = true;
  if (has_env) {
    if (from.Has("key")) {
      from.AddError("key", "is only used with file (it names the entry in the secrets file)");
      ok = false;
    }
    if (!IsEnvName(source.env)) {
      from.AddError("env", absl::StrCat("expected the name of an environment variable (letters, "
                                        "digits and '_', not starting with a digit)",
                                        kNotShown));
      ok = false;
    }
  } else {
    if (!IsNormalizedAbsolutePath(source.file)) {
      from.AddError("file", absl::StrCat("expected ", PathRule().expectation, kNotShown));
      ok = false;
    }
    if (from.Has("key") && !IsSecretsFileKey(source.file_key)) {
      from.AddError("key", absl::StrCat("expected the name of an entry in the secrets file (1 to "
                                        "128 characters of letters, digits, '_', '-' or '.')",
                                        kNotShown));
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return source;
}

void ReadS3(ConfigReader& s3, S3RepositoryPlan* out) {
  static const StringRule* endpoint =
      new StringRule({[](absl::string_view v) { return IsDnsName(v) || IsIpv4Address(v); },
                      "a DNS name or an IPv4 address, without scheme, port or path"});
  static const StringRule* bucket =
      new StringRule(Rule(IsS3Bucket,
                          "an S3 bucket name: 3 to 63 characters of a-z, 0-9, '.' or '-', starting "
                          "and ending with a letter or digit"));
  static const StringRule* region =
      new StringRule(Rule(IsS3Region, "an S3 region such as eu-west-1"));
  s3.String("endpoint", &out->endpoint, kRequired, endpoint);
  s3.Int("port", &out->port, 1, 65535);
  s3.String("bucket", &out->bucket, kRequired, bucket);
  s3.String("region", &out->region, kRequired, region);
  s3.OneOf("uri_style", &out->uri_style, {"host", "path"});
  s3.String("path", &out->path, kRequired, &PathRule());
  s3.Bool("verify_tls", &out->verify_tls);
  OptionalPath(s3, "ca_file", &out->ca_file);
  if (!out->verify_tls && !out->ca_file.empty()) {
    s3.AddError("ca_file",
                "is set while verify_tls is false: verify against the CA (verify_tls: true) or "
                "drop ca_file");
  }
  std::optional<SecretSource> key = ReadSecretSource(s3, "key_from", kRequired);
  std::optional<SecretSource> secret = ReadSecretSource(s3, "secret_from", kRequired);
  if (key) out->key_from = *key;
  if (secret) out->secret_from = *secret;
}

void ReadRepoHost(ConfigReader& host, RepoHostPlan* out) {
  static const StringRule* name = new StringRule(
      Rule(IsDnsName,
           "a DNS name, not an IP address (pgBackRest 2.45 does not match IP addresses in the "
           "repository host's certificate)"));
  host.String("host", &out->host, kRequired, name);
  host.Int("port", &out->port, 1, 65535);
  host.String("path", &out->path, kRequired, &PathRule());
  OptionalPath(host, "ca_file", &out->ca_file);
  host.String("cert_file", &out->cert_file, kRequired, &PathRule());
  host.String("key_file", &out->key_file, kRequired, &PathRule());
}

void ReadRepository(ConfigReader& root, RepositoryPlan* out) {
  if (!root.Has("repository")) {
    std::string unused;
    root.String("repository", &unused, kRequired);  // "missing required key 'repository'"
  }
  ConfigReader repository = root.Section("repository");
  const std::vector<std::pair<std::string, RepositoryKind>> kinds = {
      {"posix", RepositoryKind::kPosix},
      {"s3", RepositoryKind::kS3},
      {"repo_host", RepositoryKind::kRepoHost}};
  std::vector<std::string> present;
  for (const auto& [name, kind] : kinds) {
    if (!repository.Has(name)) continue;
    if (present.empty()) out->kind = kind;
    present.push_back(name);
  }
  // Every present kind is read in full, so that each one's own mistakes are reported too.
  ConfigReader posix = repository.Section("posix");
  if (repository.Has("posix")) posix.String("path", &out->posix.path, kRequired, &PathRule());
  ConfigReader s3 = repository.Section("s3");
  if (repository.Has("s3")) ReadS3(s3, &out->s3);
  ConfigReader repo_host = repository.Section("repo_host");
  if (repository.Has("repo_host")) ReadRepoHost(repo_host, &out->repo_host);
  if (root.Has("repository") && present.empty()) {
    root.AddError("repository", "expected exactly one of posix, s3 or repo_host, found none");
  } else if (present.size() > 1) {
    root.AddError("repository", absl::StrCat("expected exactly one of posix, s3 or repo_host, "
                                             "found ",
                                             absl::StrJoin(present, " and ")));
  }

  repository.Int("retention_full", &out->retention_full, 1, 9999999);
  repository.Bool("archive_async", &out->archive_async);
  ConfigReader cipher = repository.Section("cipher");
  if (repository.Has("cipher")) {
    cipher.OneOf("type", &out->cipher_type, {"none", "aes-256-cbc"}, kRequired);
  } else {
    cipher.OneOf("type", &out->cipher_type, {"none", "aes-256-cbc"});
  }
  bool encrypted = out->cipher_type == "aes-256-cbc";
  if (!encrypted && cipher.Has("passphrase_from")) {
    cipher.AddError("passphrase_from", "is only used with type aes-256-cbc");
  }
  out->cipher_passphrase_from =
      ReadSecretSource(cipher, "passphrase_from", encrypted ? kRequired : kOptional);
  if (!encrypted) out->cipher_passphrase_from.reset();
}

void ReadWindow(ConfigReader& root, std::optional<WindowPlan>* out) {
  bool present = root.Has("window");
  ConfigReader window = root.Section("window");
  if (!present) return;
  WindowPlan plan;
  std::string start;
  std::string end;
  bool ok = true;
  constexpr absl::string_view kTimeOfDay =
      "expected a time of day as \"HH:MM\" (24-hour, 00:00 to 23:59), got ";
  if (window.String("start", &start, kRequired)) {
    std::optional<int> minute = ParseTimeOfDay(start);
    if (minute) {
      plan.start_minute = *minute;
    } else {
      window.AddError("start", absl::StrCat(kTimeOfDay, Quote(start)));
      ok = false;
    }
  } else {
    ok = false;
  }
  if (window.String("end", &end, kRequired)) {
    std::optional<int> minute = ParseTimeOfDay(end);
    if (minute) {
      plan.end_minute = *minute;
    } else {
      window.AddError("end", absl::StrCat(kTimeOfDay, Quote(end)));
      ok = false;
    }
  } else {
    ok = false;
  }
  if (ok && plan.start_minute == plan.end_minute) {
    window.AddError("end",
                    "equals window.start: a window must have a length (to span midnight, "
                    "give an end before the start, as in 22:00 to 04:00)");
    ok = false;
  }
  if (window.String("timezone", &plan.timezone) && !absl::LoadTimeZone(plan.timezone, &plan.zone)) {
    window.AddError("timezone",
                    absl::StrCat("expected a time zone of the tz database, such as UTC or "
                                 "Europe/Berlin (the controller host must have it in "
                                 "/usr/share/zoneinfo), got ",
                                 Quote(plan.timezone)));
    ok = false;
  }
  if (ok) *out = plan;
}

void ReadCutover(ConfigReader& root, const StringRule* stanza_rule, const std::string& stanza,
                 CutoverPlan* out) {
  ConfigReader cutover = root.Section("cutover");
  if (cutover.Has("new_stanza")) {
    if (cutover.String("new_stanza", &out->new_stanza, kOptional, stanza_rule) &&
        !stanza.empty() && out->new_stanza == stanza) {
      cutover.AddError("new_stanza",
                       absl::StrCat("names the migration's stanza (\"", stanza,
                                    "\"): the promoted target must archive into a stanza of "
                                    "its own, never the source's"));
    }
  } else if (!stanza.empty()) {
    out->new_stanza = absl::StrCat(stanza, "-new");
    if (!IsStanza(out->new_stanza)) {
      cutover.AddError("new_stanza",
                       absl::StrCat("is needed: the default, the stanza with \"-new\" appended (\"",
                                    out->new_stanza, "\"), is longer than a stanza name may be"));
    }
  }
  std::string lag;
  if (cutover.String("max_lag", &lag) && cutover.Has("max_lag")) {
    absl::StatusOr<uint64_t> bytes = ParseByteSize(lag);
    if (bytes.ok()) {
      out->max_lag_bytes = *bytes;
    } else {
      cutover.AddError("max_lag", absl::StrCat(bytes.status().message(), ", got ", Quote(lag)));
    }
  }
  cutover.Duration("max_downtime", &out->max_downtime, absl::Seconds(1), absl::Hours(1));
  cutover.Bool("verify_checksums", &out->verify_checksums);
}

// ConfigReader reads mappings and scalars but not lists, and reports any key it was not asked
// about as unknown. So `checks` is read from the raw document, marked known through Section()
// (which, for a list, records "expected a mapping"), and that one problem is dropped again
// after Finish(). Returns the problem to drop, or "".
std::string ReadChecks(ConfigReader& root, const YAML::Node& document,
                       std::vector<std::string>* out) {
  // Copy-constructed, never assigned: YAML::Node's operator= writes through to the node it
  // refers to, and throws for a missing key's node.
  const YAML::Node checks = document.IsMap() ? document["checks"] : YAML::Node();
  if (!checks.IsDefined() || checks.IsNull()) {
    root.Section("checks");  // known key; absent or empty is an empty list
    return "";
  }
  constexpr absl::string_view kExpected =
      "expected a list of absolute paths of SQL files, such as [/etc/pghaul/checks/orders.sql]";
  if (checks.IsScalar()) {
    std::string unused;
    root.String("checks", &unused);
    root.AddError("checks", absl::StrCat(kExpected, ", got ", Quote(checks.Scalar())));
    return "";
  }
  root.Section("checks");
  if (checks.IsMap()) {
    root.AddError("checks", absl::StrCat(kExpected, ", got a mapping"));
    return "";
  }
  for (size_t i = 0; i < checks.size(); ++i) {
    const YAML::Node& item = checks[i];
    std::string key = absl::StrCat("checks[", i, "]");
    if (!item.IsScalar() || !IsNormalizedAbsolutePath(item.Scalar())) {
      root.AddError(key, absl::StrCat("expected ", PathRule().expectation, ", got ",
                                      item.IsScalar() ? Quote(item.Scalar()) : "a non-path value",
                                      LineOf(item)));
      continue;
    }
    if (std::find(out->begin(), out->end(), item.Scalar()) != out->end()) {
      root.AddError(key,
                    absl::StrCat("lists ", Quote(item.Scalar()), " a second time", LineOf(item)));
      continue;
    }
    out->push_back(item.Scalar());
  }
  return absl::StrCat("key 'checks': expected a mapping of keys to values, got a list",
                      LineOf(checks));
}

}  // namespace

bool WindowPlan::Contains(absl::Time when) const {
  absl::CivilMinute local = absl::ToCivilMinute(when, zone);
  int minute = local.hour() * 60 + local.minute();
  if (start_minute < end_minute) return minute >= start_minute && minute < end_minute;
  return minute >= start_minute || minute < end_minute;
}

absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text) {
  constexpr absl::string_view kExpected =
      "expected a size: an integer and a unit (B, kB, MB, GB, TB, or KiB, MiB, GiB, TiB; "
      "multiples of 1024), such as 16MB or 1GiB";
  absl::string_view rest = absl::StripAsciiWhitespace(text);
  size_t digits = 0;
  while (digits < rest.size() && absl::ascii_isdigit(static_cast<unsigned char>(rest[digits]))) {
    ++digits;
  }
  if (digits == 0) return absl::InvalidArgumentError(kExpected);
  uint64_t number = 0;
  if (!absl::SimpleAtoi(rest.substr(0, digits), &number)) {
    return absl::InvalidArgumentError(absl::StrCat(kExpected, " (the number is too large)"));
  }
  absl::string_view unit = absl::StripLeadingAsciiWhitespace(rest.substr(digits));
  static constexpr std::pair<absl::string_view, int> kUnits[] = {
      {"B", 0},    {"kB", 10}, {"KB", 10},  {"KiB", 10}, {"MB", 20},
      {"MiB", 20}, {"GB", 30}, {"GiB", 30}, {"TB", 40},  {"TiB", 40}};
  if (unit.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kExpected, " (the unit is missing)"));
  }
  for (const auto& [name, shift] : kUnits) {
    if (unit != name) continue;
    if (number > (std::numeric_limits<uint64_t>::max() >> shift)) {
      return absl::InvalidArgumentError(absl::StrCat(kExpected, " (the size is too large)"));
    }
    return number << shift;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(kExpected, " (unknown unit ", Quote(unit), "; units are case-sensitive)"));
}

absl::StatusOr<Plan> ParsePlan(absl::string_view yaml, absl::string_view source_name) {
  PGH_ASSIGN_OR_RETURN(ConfigReader root, ConfigReader::Parse(yaml, source_name));
  std::optional<YAML::Node> document;
  try {
    document.emplace(YAML::Load(std::string(yaml)));
  } catch (const YAML::Exception& e) {
    // ConfigReader::Parse accepted the same text, so this does not happen.
    return absl::InternalError(absl::StrCat(source_name, ": cannot read YAML: ", e.what()));
  }
  std::vector<std::string> secrets;
  FindInlineSecrets(*document, "", false, &secrets);
  if (!secrets.empty()) return Problems(source_name, secrets);

  static const StringRule* name_rule = new StringRule(
      Rule(IsMigrationName,
           "a migration name: 1 to 63 characters of a-z, 0-9, '_' or '-', starting with a letter "
           "or digit"));
  static const StringRule* agent_rule = new StringRule(
      {[](absl::string_view id) { return ValidateAgentId(id).ok(); },
       "an agent id: 1 to 63 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or "
       "digit"});
  static const StringRule* stanza_rule = new StringRule(
      Rule(IsStanza,
           "a stanza name: 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-', starting with a letter "
           "or digit"));

  Plan plan;
  root.String("name", &plan.name, kRequired, name_rule);
  ConfigReader source = root.Section("source");
  bool source_ok = source.String("agent", &plan.source_agent, kRequired, agent_rule);
  ConfigReader target = root.Section("target");
  bool target_ok = target.String("agent", &plan.target_agent, kRequired, agent_rule);
  if (source_ok && target_ok && !plan.source_agent.empty() &&
      plan.source_agent == plan.target_agent) {
    target.AddError("agent",
                    absl::StrCat("names the same agent as source.agent (\"", plan.source_agent,
                                 "\"): a migration moves a cluster to another host"));
  }
  target.String("data_directory", &plan.target_data_directory, kRequired, &PathRule());
  target.Bool("allow_overwrite", &plan.target_allow_overwrite);
  root.String("stanza", &plan.stanza, kRequired, stanza_rule);
  ReadRepository(root, &plan.repository);

  ConfigReader backup = root.Section("backup");
  backup.Int("process_max", &plan.backup.process_max, 1, 64);
  backup.OneOf("compress_type", &plan.backup.compress_type, {"none", "gz", "lz4", "zst", "bz2"});
  backup.OneOf("type", &plan.backup.type, {"full", "diff", "incr"});

  root.Bool("source_restart_allowed", &plan.source_restart_allowed);
  root.Bool("source_patroni_roles_allowed", &plan.source_patroni_roles_allowed);
  std::string fence = "read-only";
  root.OneOf("fence", &fence, {"read-only", "stop"});
  plan.fence = fence == "stop" ? FenceMethod::kStop : FenceMethod::kReadOnly;
  ReadWindow(root, &plan.window);
  ReadCutover(root, stanza_rule, plan.stanza, &plan.cutover);
  std::string checks_problem = ReadChecks(root, *document, &plan.checks);

  absl::Status status = root.Finish();
  if (!checks_problem.empty()) status = DropProblem(status, source_name, checks_problem);
  if (!status.ok())
    return absl::Status(status.code(), AddSuggestions(std::string(status.message())));
  return plan;
}

absl::StatusOr<Plan> LoadPlan(const std::string& path) {
  PGH_ASSIGN_OR_RETURN(std::string text, ReadFile(path, kMaxPlanBytes));
  return ParsePlan(text, path);
}

namespace {

// Reads a secrets file through one descriptor, so that the permissions checked are those of the
// file read. Errors name the file and never its contents.
absl::StatusOr<std::string> ReadSecretsFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int error = errno;
    std::string message = absl::StrCat("cannot open secrets file ", path, ": ", strerror(error));
    if (error == ENOENT) return absl::NotFoundError(message);
    if (error == EACCES) return absl::PermissionDeniedError(message);
    return absl::UnavailableError(message);
  }
  struct stat info;
  absl::Status status;
  std::string text;
  if (fstat(fd, &info) != 0) {
    status = absl::UnavailableError(
        absl::StrCat("cannot stat secrets file ", path, ": ", strerror(errno)));
  } else if (!S_ISREG(info.st_mode)) {
    status = absl::FailedPreconditionError(
        absl::StrCat("secrets file ", path, " is not a regular file"));
  } else if ((info.st_mode & 077) != 0) {
    status = absl::FailedPreconditionError(absl::StrFormat(
        "secrets file %s has mode %04o: it must not be readable or writable by group or others; "
        "run: chmod 600 %s",
        path, info.st_mode & 07777, path));
  } else if (static_cast<uint64_t>(info.st_size) > kMaxSecretsFileBytes) {
    status = absl::FailedPreconditionError(
        absl::StrCat("secrets file ", path, " is larger than ", kMaxSecretsFileBytes, " bytes"));
  } else {
    char buffer[8192];
    while (true) {
      ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = absl::UnavailableError(
            absl::StrCat("cannot read secrets file ", path, ": ", strerror(errno)));
        break;
      }
      if (n == 0) break;
      text.append(buffer, static_cast<size_t>(n));
      if (text.size() > kMaxSecretsFileBytes) {
        status = absl::FailedPreconditionError(absl::StrCat(
            "secrets file ", path, " is larger than ", kMaxSecretsFileBytes, " bytes"));
        break;
      }
    }
  }
  close(fd);
  if (!status.ok()) return status;
  return text;
}

absl::StatusOr<std::string> ResolveSecret(const SecretSource& source,
                                          const std::function<const char*(const char*)>& env) {
  if (!source.env.empty()) {
    const char* value = env(source.env.c_str());
    if (value == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          source.plan_key, ".env: environment variable ", source.env,
          " is not set in the controller's environment (set it in the controller's service "
          "environment, e.g. a systemd EnvironmentFile)"));
    }
    if (*value == '\0') {
      return absl::FailedPreconditionError(
          absl::StrCat(source.plan_key, ".env: environment variable ", source.env, " is empty"));
    }
    return std::string(value);
  }
  absl::StatusOr<std::string> text = ReadSecretsFile(source.file);
  if (!text.ok()) return Annotate(text.status(), absl::StrCat(source.plan_key, ".file"));
  // ConfigReader quotes values in some of its errors, so none of them is passed on.
  absl::StatusOr<ConfigReader> root = ConfigReader::Parse(*text, source.file);
  if (!root.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source.plan_key, ".file: secrets file ", source.file,
        " is not a YAML mapping of names to strings (details are not shown, as the file holds "
        "secrets)"));
  }
  if (!root->Has(source.file_key)) {
    return absl::NotFoundError(absl::StrCat(source.plan_key, ".key: secrets file ", source.file,
                                            " has no entry '", source.file_key, "'"));
  }
  std::string value;
  if (!root->String(source.file_key, &value)) {
    return absl::InvalidArgumentError(absl::StrCat(source.plan_key, ".key: entry '",
                                                   source.file_key, "' of secrets file ",
                                                   source.file, " is not a string"));
  }
  if (value.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(source.plan_key, ".key: entry '",
                                                      source.file_key, "' of secrets file ",
                                                      source.file, " is empty"));
  }
  return value;
}

}  // namespace

absl::StatusOr<v1::Secrets> ResolveSecrets(const Plan& plan,
                                           std::function<const char*(const char*)> env) {
  v1::Secrets secrets;
  if (plan.repository.kind == RepositoryKind::kS3) {
    PGH_ASSIGN_OR_RETURN(*secrets.mutable_s3_key(),
                         ResolveSecret(plan.repository.s3.key_from, env));
    PGH_ASSIGN_OR_RETURN(*secrets.mutable_s3_key_secret(),
                         ResolveSecret(plan.repository.s3.secret_from, env));
  }
  if (plan.repository.cipher_passphrase_from) {
    PGH_ASSIGN_OR_RETURN(*secrets.mutable_cipher_pass(),
                         ResolveSecret(*plan.repository.cipher_passphrase_from, env));
  }
  return secrets;
}

v1::ConfigurePgBackRest MakeConfigureTask(const Plan& plan, const v1::Secrets& secrets) {
  v1::ConfigurePgBackRest task;
  task.set_migration_id(plan.name);
  task.set_stanza(plan.stanza);
  task.set_new_stanza(plan.cutover.new_stanza);
  v1::RepositorySpec* repository = task.mutable_repository();
  switch (plan.repository.kind) {
    case RepositoryKind::kPosix:
      repository->mutable_posix()->set_path(plan.repository.posix.path);
      repository->set_path(plan.repository.posix.path);
      break;
    case RepositoryKind::kS3: {
      const S3RepositoryPlan& s3 = plan.repository.s3;
      v1::S3Repository* spec = repository->mutable_s3();
      spec->set_endpoint(s3.endpoint);
      spec->set_port(static_cast<uint32_t>(s3.port));
      spec->set_bucket(s3.bucket);
      spec->set_region(s3.region);
      spec->set_uri_style(s3.uri_style);
      spec->set_skip_tls_verify(!s3.verify_tls);
      spec->set_ca_file(s3.ca_file);
      repository->set_path(s3.path);
      break;
    }
    case RepositoryKind::kRepoHost: {
      const RepoHostPlan& host = plan.repository.repo_host;
      v1::RepositoryHost* spec = repository->mutable_host();
      spec->set_host(host.host);
      spec->set_port(static_cast<uint32_t>(host.port));
      spec->set_ca_file(host.ca_file);
      spec->set_cert_file(host.cert_file);
      spec->set_key_file(host.key_file);
      repository->set_path(host.path);
      break;
    }
  }
  repository->set_retention_full(static_cast<uint32_t>(plan.repository.retention_full));
  repository->set_cipher_type(plan.repository.cipher_type);
  *task.mutable_secrets() = secrets;
  task.set_process_max(static_cast<uint32_t>(plan.backup.process_max));
  task.set_compress_type(plan.backup.compress_type);
  task.set_archive_async(plan.repository.archive_async);
  return task;
}

}  // namespace pghaul::controller
