// Typed lookups in a YAML configuration file, with errors that name the full key path and what
// was expected, so that a person can fix the file from the message alone:
//
//   agent.yaml: key 'postgres.port': expected an integer from 1 to 65535, got "abc" (line 7)
//   agent.yaml: unknown key 'postgres.sockt_dir' (known keys: socket_dir, port, user, database)
//   agent.yaml: missing required key 'agent_id'
//
// Usage: each lookup records its key as known and any problem as an error; Finish() then reports
// every problem in the file at once (unknown keys first, since a misspelt key usually also
// causes a "missing" error), so a person fixes the file in one pass.
//
//   PGH_ASSIGN_OR_RETURN(ConfigReader root, ConfigReader::Parse(yaml, "agent.yaml"));
//   root.String("agent_id", &config.agent_id, kRequired);
//   ConfigReader postgres = root.Section("postgres");
//   postgres.Int("port", &config.postgres.port, 1, 65535);
//   PGH_RETURN_IF_ERROR(root.Finish());
//
// A missing optional key leaves the output untouched, so outputs start out holding the defaults.
// A key present with no value (`port:`) is an error, except for a section, which then is empty.
// Durations are strings for absl::ParseDuration ("2s", "500ms", "1m30s").
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace YAML {
class Node;
}  // namespace YAML

namespace pghaul {

enum class Presence { kOptional, kRequired };
inline constexpr Presence kOptional = Presence::kOptional;
inline constexpr Presence kRequired = Presence::kRequired;

// A constraint on a string value: `accepts` decides, `expectation` completes "expected ...".
struct StringRule {
  std::function<bool(absl::string_view)> accepts;
  std::string expectation;
};

// Accepts a path starting with '/'.
StringRule AbsolutePathRule();
// Accepts a non-empty string.
StringRule NonEmptyRule();
// Accepts "host:port" (see IsHostPort).
StringRule HostPortRule(bool allow_port_zero);

// "host:port" where host is a DNS name or IPv4 address, or an IPv6 address in brackets
// ("[::1]:7443"); the port is 1..65535, or also 0 when `allow_port_zero` (pick a free port).
bool IsHostPort(absl::string_view text, bool allow_port_zero);

class ConfigReader {
 public:
  // Parses `yaml`; `source_name` (usually the file's path) starts every error message. The
  // top level must be a mapping; an empty document is an empty mapping. Errors:
  // InvalidArgument for YAML syntax errors (with line and column) or a top level that is not a
  // mapping.
  static absl::StatusOr<ConfigReader> Parse(absl::string_view yaml, absl::string_view source_name);

  // Each typed lookup returns false when it recorded an error about `key` (a bad value, or a
  // required key missing), true otherwise (including an optional key that is absent).

  // Any scalar, taken as text. With `rule`, the value must satisfy it.
  bool String(absl::string_view key, std::string* out, Presence presence = kOptional,
              const StringRule* rule = nullptr);
  // A list of scalars (`[a, b]` or one "- a" per line), each taken as text and, with `rule`,
  // checked by it; an element's error names it as "key[index]".
  bool StringList(absl::string_view key, std::vector<std::string>* out,
                  Presence presence = kOptional, const StringRule* rule = nullptr);
  // One of `choices`, exactly (case matters).
  bool OneOf(absl::string_view key, std::string* out, const std::vector<std::string>& choices,
             Presence presence = kOptional);
  // true or false (any case).
  bool Bool(absl::string_view key, bool* out, Presence presence = kOptional);
  // A decimal integer from `min` to `max`.
  bool Int(absl::string_view key, int* out, int min, int max, Presence presence = kOptional);
  // A duration string from `min` to `max`.
  bool Duration(absl::string_view key, absl::Duration* out, absl::Duration min, absl::Duration max,
                Presence presence = kOptional);

  // The mapping under `key`; a missing or empty one reads as empty (its keys take defaults, and
  // its required keys are reported missing with their full path).
  ConfigReader Section(absl::string_view key);

  // Whether `key` is present in this section (with any value). Does not mark it known.
  bool Has(absl::string_view key) const;

  // Records a problem with `key` that the typed lookups cannot see (a rule across two keys):
  // "key '<path>': <message>".
  void AddError(absl::string_view key, absl::string_view message);

  // The full dotted path of `key` in this section, e.g. "postgres.port".
  std::string PathOf(absl::string_view key) const;

  // Checks every section read through this document for unknown or repeated keys, then returns
  // OK or one InvalidArgument listing every problem found. Call it once, on the top level.
  absl::Status Finish();

 private:
  struct State;
  ConfigReader(std::shared_ptr<State> state, size_t section) : state_(state), section_(section) {}

  // Marks `key` known and returns its value, or nothing when it is absent (recording a
  // missing-key error when it is required).
  std::optional<YAML::Node> Lookup(absl::string_view key, Presence presence);
  // Records "key '<path>': expected <expectation>, got <what value is>".
  // Returns false, for `return AddValueError(...)` in the lookups.
  bool AddValueError(absl::string_view key, const YAML::Node& value, absl::string_view expectation);

  std::shared_ptr<State> state_;
  size_t section_;
};

}  // namespace pghaul
