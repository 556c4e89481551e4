#include "common/config_reader.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "yaml-cpp/yaml.h"

namespace pghaul {

struct ConfigReader::State {
  struct Section {
    YAML::Node node;  // a mapping, or null/undefined for a missing or empty section
    std::string path;
    std::vector<std::string> known;  // in the order the reader asked for them
  };
  std::string source;
  std::vector<Section> sections;
  std::vector<std::string> errors;
};

namespace {

constexpr size_t kMaxQuotedValue = 80;

std::string LineSuffix(const YAML::Node& node) {
  if (!node.IsDefined()) return "";
  YAML::Mark mark = node.Mark();
  if (mark.is_null()) return "";
  return absl::StrCat(" at line ", mark.line + 1);
}

// What a person would call the value they wrote.
std::string DescribeValue(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: {
      absl::string_view text = node.Scalar();
      std::string quoted = absl::StrCat("\"", absl::CHexEscape(text.substr(0, kMaxQuotedValue)));
      if (text.size() > kMaxQuotedValue) absl::StrAppend(&quoted, "...");
      return absl::StrCat(quoted, "\"");
    }
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

}  // namespace

StringRule AbsolutePathRule() {
  return {[](absl::string_view v) { return !v.empty() && v[0] == '/'; }, "an absolute path"};
}

StringRule NonEmptyRule() {
  return {[](absl::string_view v) { return !v.empty(); }, "a non-empty string"};
}

StringRule HostPortRule(bool allow_port_zero) {
  return {[allow_port_zero](absl::string_view v) { return IsHostPort(v, allow_port_zero); },
          absl::StrCat("host:port with a port from ", allow_port_zero ? 0 : 1,
                       " to 65535 (an IPv6 address in brackets, as in \"[::1]:7443\")")};
}

bool IsHostPort(absl::string_view text, bool allow_port_zero) {
  size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos) return false;
  absl::string_view host = text.substr(0, colon);
  absl::string_view port_text = text.substr(colon + 1);
  if (port_text.empty() || port_text.size() > 5) return false;
  if (!std::all_of(port_text.begin(), port_text.end(), absl::ascii_isdigit)) return false;
  int port = 0;
  if (!absl::SimpleAtoi(port_text, &port) || port > 65535) return false;
  if (port == 0 && !allow_port_zero) return false;

  if (!host.empty() && host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return false;
    std::string address(host.substr(1, host.size() - 2));
    in6_addr parsed;
    return inet_pton(AF_INET6, address.c_str(), &parsed) == 1;
  }
  if (host.empty() || host.size() > 253) return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
  });
}

absl::StatusOr<ConfigReader> ConfigReader::Parse(absl::string_view yaml,
                                                 absl::string_view source_name) {
  std::optional<YAML::Node> parsed;
  try {
    parsed.emplace(YAML::Load(std::string(yaml)));
  } catch (const YAML::ParserException& e) {
    return absl::InvalidArgumentError(absl::StrCat(source_name, ": line ", e.mark.line + 1,
                                                   ", column ", e.mark.column + 1,
                                                   ": invalid YAML: ", e.msg));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source_name, ": invalid YAML: ", e.what()));
  }
  const YAML::Node& root = *parsed;
  if (root.IsDefined() && !root.IsNull() && !root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source_name, ": expected a mapping of keys to values at the top level, got ",
                     DescribeValue(root)));
  }
  auto state = std::make_shared<State>();
  state->source = std::string(source_name);
  state->sections.push_back(State::Section{root, "", {}});
  return ConfigReader(std::move(state), 0);
}

std::string ConfigReader::PathOf(absl::string_view key) const {
  const std::string& path = state_->sections[section_].path;
  return path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
}

bool ConfigReader::Has(absl::string_view key) const {
  const YAML::Node& node = state_->sections[section_].node;
  if (!node.IsMap()) return false;
  return node[std::string(key)].IsDefined();
}

std::optional<YAML::Node> ConfigReader::Lookup(absl::string_view key, Presence presence) {
  State::Section& section = state_->sections[section_];
  if (std::find(section.known.begin(), section.known.end(), key) == section.known.end()) {
    section.known.emplace_back(key);
  }
  // Const, so that looking up a missing key does not insert it. (YAML::Node's operator= has
  // reference semantics and throws on a missing key's node, so nodes are only copy-constructed.)
  const YAML::Node& node = section.node;
  if (node.IsMap()) {
    YAML::Node found = node[std::string(key)];
    if (found.IsDefined()) return found;
  }
  if (presence == kRequired) {
    state_->errors.push_back(absl::StrCat("missing required key '", PathOf(key), "'"));
  }
  return std::nullopt;
}

bool ConfigReader::AddValueError(absl::string_view key, const YAML::Node& value,
                                 absl::string_view expectation) {
  state_->errors.push_back(absl::StrCat("key '", PathOf(key), "': expected ", expectation, ", got ",
                                        DescribeValue(value), LineSuffix(value)));
  return false;
}

void ConfigReader::AddError(absl::string_view key, absl::string_view message) {
  std::string line;
  const YAML::Node& node = state_->sections[section_].node;
  if (node.IsMap()) line = LineSuffix(node[std::string(key)]);
  state_->errors.push_back(absl::StrCat("key '", PathOf(key), "': ", message, line));
}

bool ConfigReader::String(absl::string_view key, std::string* out, Presence presence,
                          const StringRule* rule) {
  std::optional<YAML::Node> found = Lookup(key, presence);
  if (!found) return presence == kOptional;
  const YAML::Node& value = *found;
  std::string expectation = rule != nullptr ? rule->expectation : "a string";
  if (!value.IsScalar()) return AddValueError(key, value, expectation);
  if (rule != nullptr && !rule->accepts(value.Scalar())) {
    return AddValueError(key, value, expectation);
  }
  *out = value.Scalar();
  return true;
}

bool ConfigReader::StringList(absl::string_view key, std::vector<std::string>* out,
                              Presence presence, const StringRule* rule) {
  std::optional<YAML::Node> found = Lookup(key, presence);
  if (!found) return presence == kOptional;
  const YAML::Node& value = *found;
  if (!value.IsSequence()) return AddValueError(key, value, "a list of strings");
  std::vector<std::string> items;
  bool ok = true;
  for (size_t i = 0; i < value.size(); ++i) {
    const YAML::Node item = value[i];
    std::string item_key = absl::StrCat(key, "[", i, "]");
    if (!item.IsScalar()) {
      ok = AddValueError(item_key, item, "a string");
    } else if (rule != nullptr && !rule->accepts(item.Scalar())) {
      ok = AddValueError(item_key, item, rule->expectation);
    } else {
      items.push_back(item.Scalar());
    }
  }
  if (ok) *out = std::move(items);
  return ok;
}

bool ConfigReader::OneOf(absl::string_view key, std::string* out,
                         const std::vector<std::string>& choices, Presence presence) {
  std::optional<YAML::Node> found = Lookup(key, presence);
  if (!found) return presence == kOptional;
  const YAML::Node& value = *found;
  if (!value.IsScalar() ||
      std::find(choices.begin(), choices.end(), value.Scalar()) == choices.end()) {
    return AddValueError(key, value, absl::StrCat("one of: ", absl::StrJoin(choices, ", ")));
  }
  *out = value.Scalar();
  return true;
}

bool ConfigReader::Bool(absl::string_view key, bool* out, Presence presence) {
  std::optional<YAML::Node> found = Lookup(key, presence);
  if (!found) return presence == kOptional;
  const YAML::Node& value = *found;
  std::string text = value.IsScalar() ? absl::AsciiStrToLower(value.Scalar()) : "";
  if (text != "true" && text != "false") return AddValueError(key, value, "true or false");
  *out = text == "true";
  return true;
}

bool ConfigReader::Int(absl::string_view key, int* out, int min, int max, Presence presence) {
  std::optional<YAML::Node> found = Lookup(key, presence);
  if (!found) return presence == kOptional;
  const YAML::Node& value = *found;
  int64_t parsed = 0;
  if (!value.IsScalar() || !absl::SimpleAtoi(value.Scalar(), &parsed) || parsed < min ||
      parsed > max) {
    return AddValueError(key, value, absl::StrCat("an integer from ", min, " to ", max));
  }
  *out = static_cast<int>(parsed);
  return true;
}

bool ConfigReader::Duration(absl::string_view key, absl::Duration* out, absl::Duration min,
                            absl::Duration max, Presence presence) {
  std::optional<YAML::Node> found = Lookup(key, presence);
  if (!found) return presence == kOptional;
  const YAML::Node& value = *found;
  absl::Duration parsed;
  if (!value.IsScalar() || !absl::ParseDuration(value.Scalar(), &parsed) || parsed < min ||
      parsed > max) {
    return AddValueError(key, value,
                         absl::StrCat("a duration from ", absl::FormatDuration(min), " to ",
                                      absl::FormatDuration(max), ", such as \"2s\" or \"500ms\""));
  }
  *out = parsed;
  return true;
}

ConfigReader ConfigReader::Section(absl::string_view key) {
  std::string path = PathOf(key);
  std::optional<YAML::Node> value = Lookup(key, kOptional);
  if (value && !value->IsMap() && !value->IsNull()) {
    AddValueError(key, *value, "a mapping of keys to values");
  }
  // A missing, empty or invalid section reads as an empty one.
  state_->sections.push_back(
      State::Section{value && value->IsMap() ? *value : YAML::Node(), std::move(path), {}});
  return ConfigReader(state_, state_->sections.size() - 1);
}

absl::Status ConfigReader::Finish() {
  std::vector<std::string> problems;
  for (const State::Section& section : state_->sections) {
    if (!section.node.IsMap()) continue;
    std::set<std::string> seen;
    for (const auto& entry : section.node) {
      const YAML::Node& key = entry.first;
      if (!key.IsScalar()) {
        problems.push_back(absl::StrCat("a key", section.path.empty() ? "" : " in '", section.path,
                                        section.path.empty() ? "" : "'", " is not a plain name",
                                        LineSuffix(key)));
        continue;
      }
      const std::string& name = key.Scalar();
      std::string path = section.path.empty() ? name : absl::StrCat(section.path, ".", name);
      if (!seen.insert(name).second) {
        problems.push_back(
            absl::StrCat("key '", path, "' appears more than once", LineSuffix(key)));
      } else if (std::find(section.known.begin(), section.known.end(), name) ==
                 section.known.end()) {
        problems.push_back(absl::StrCat("unknown key '", path, "' (known keys: ",
                                        absl::StrJoin(section.known, ", "), ")", LineSuffix(key)));
      }
    }
  }
  problems.insert(problems.end(), state_->errors.begin(), state_->errors.end());
  if (problems.empty()) return absl::OkStatus();
  if (problems.size() == 1) {
    return absl::InvalidArgumentError(absl::StrCat(state_->source, ": ", problems[0]));
  }
  return absl::InvalidArgumentError(absl::StrCat(state_->source, ": ", problems.size(),
                                                 " problems: ", absl::StrJoin(problems, "; ")));
}

}  // namespace pghaul
