#include "controller/schema_compare.h"

#include <algorithm>
#include <cstdlib>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "controller/verify_report.h"

namespace pghaul::controller {
namespace {

constexpr size_t kValueWidth = 60;
// PostgreSQL's SEQ_LOG_VALS: nextval logs this many values ahead.
constexpr int64_t kSequenceLogValues = 32;

const std::set<std::string>& KnownKinds() {
  static const std::set<std::string>* const kKinds = new std::set<std::string>{"database",
                                                                               "role",
                                                                               "membership",
                                                                               "schema",
                                                                               "table",
                                                                               "column",
                                                                               "index",
                                                                               "constraint",
                                                                               "sequence",
                                                                               "view",
                                                                               "materialized view",
                                                                               "function",
                                                                               "extension",
                                                                               "trigger"};
  return *kKinds;
}

std::string Shorten(const std::string& value) {
  if (value.empty()) return "(none)";
  if (value.size() <= kValueWidth) return value;
  return absl::StrCat(value.substr(0, kValueWidth - 3), "...");
}

std::string Difference(const std::string& source, const std::string& target) {
  std::vector<std::pair<std::string, std::string>> s = ParseCatalogueValue(source);
  std::vector<std::pair<std::string, std::string>> t = ParseCatalogueValue(target);
  std::map<std::string, std::string> t_map(t.begin(), t.end());
  std::map<std::string, std::string> s_map(s.begin(), s.end());
  std::vector<std::string> parts;
  for (const auto& [name, value] : s) {
    auto found = t_map.find(name);
    if (found == t_map.end()) {
      parts.push_back(absl::StrCat(name, ": ", Shorten(value), " vs (absent)"));
    } else if (found->second != value) {
      parts.push_back(absl::StrCat(name, ": ", Shorten(value), " vs ", Shorten(found->second)));
    }
  }
  for (const auto& [name, value] : t) {
    if (s_map.count(name) == 0) {
      parts.push_back(absl::StrCat(name, ": (absent) vs ", Shorten(value)));
    }
  }
  return absl::StrJoin(parts, "; ");
}

}  // namespace

std::optional<CatalogueKey> ParseCatalogueKey(absl::string_view key) {
  for (size_t slash = key.find('/'); slash != absl::string_view::npos;
       slash = key.find('/', slash + 1)) {
    size_t colon = key.find(':', slash + 1);
    if (colon == absl::string_view::npos) return std::nullopt;
    std::string kind(key.substr(slash + 1, colon - slash - 1));
    if (KnownKinds().count(kind) > 0) {
      return CatalogueKey{std::string(key.substr(0, slash)), kind,
                          std::string(key.substr(colon + 1))};
    }
  }
  return std::nullopt;
}

std::vector<std::pair<std::string, std::string>> ParseCatalogueValue(absl::string_view value) {
  std::vector<std::pair<std::string, std::string>> fields;
  if (value.empty()) return fields;
  for (absl::string_view part : absl::StrSplit(value, '\t')) {
    size_t eq = part.find('=');
    std::string name = eq == absl::string_view::npos ? "" : std::string(part.substr(0, eq));
    absl::string_view raw = eq == absl::string_view::npos ? part : part.substr(eq + 1);
    std::string unescaped;
    if (!absl::CUnescape(raw, &unescaped)) unescaped = std::string(raw);
    fields.emplace_back(std::move(name), std::move(unescaped));
  }
  return fields;
}

std::vector<v1::TableComparison> CompareSchema(const std::map<std::string, std::string>& source,
                                               const std::map<std::string, std::string>& target,
                                               uint32_t* compared) {
  std::set<std::string> keys;
  for (const auto& [key, value] : source) keys.insert(key);
  for (const auto& [key, value] : target) keys.insert(key);
  if (compared != nullptr) *compared = static_cast<uint32_t>(keys.size());
  std::vector<v1::TableComparison> differences;
  for (const std::string& key : keys) {
    auto s = source.find(key);
    auto t = target.find(key);
    if (s != source.end() && t != target.end() && s->second == t->second) continue;
    v1::TableComparison d;
    std::optional<CatalogueKey> parsed = ParseCatalogueKey(key);
    if (parsed) {
      d.set_table(absl::StrCat(parsed->scope, "/", parsed->name));
      d.set_kind(parsed->kind);
    } else {
      d.set_table(key);
      d.set_kind("object");
    }
    if (t == target.end()) {
      d.set_status(kObjectMissingOnTarget);
      d.set_detail("on the source only");
    } else if (s == source.end()) {
      d.set_status(kObjectMissingOnSource);
      d.set_detail("on the target only");
    } else {
      d.set_status(kObjectMismatch);
      d.set_detail(Difference(s->second, t->second));
    }
    differences.push_back(std::move(d));
  }
  return differences;
}

std::map<std::string, int64_t> SequenceSlack(const std::map<std::string, std::string>& schema) {
  std::map<std::string, int64_t> slack;
  for (const auto& [key, value] : schema) {
    std::optional<CatalogueKey> parsed = ParseCatalogueKey(key);
    if (!parsed || parsed->kind != "sequence") continue;
    int64_t increment = 0;
    int64_t cache = 1;
    bool has_increment = false;
    for (const auto& [name, field] : ParseCatalogueValue(value)) {
      if (name == "increment") has_increment = absl::SimpleAtoi(field, &increment);
      if (name == "cache" && !absl::SimpleAtoi(field, &cache)) cache = 1;
    }
    if (!has_increment || increment == 0) continue;
    // Saturate rather than overflow for extreme increments.
    const long double bound = static_cast<long double>(cache + kSequenceLogValues) *
                              static_cast<long double>(std::llabs(increment));
    slack[key] = bound > 9.0e18L ? int64_t{9000000000000000000} : static_cast<int64_t>(bound);
  }
  return slack;
}

std::set<std::string> TablesWithColumnDifferences(
    const std::vector<v1::TableComparison>& differences) {
  std::set<std::string> tables;
  for (const v1::TableComparison& d : differences) {
    if (d.kind() != "column") continue;
    size_t dot = d.table().rfind('.');
    if (dot != std::string::npos) tables.insert(d.table().substr(0, dot));
  }
  return tables;
}

std::optional<TableName> SplitTableKey(const std::string& key,
                                       const std::map<std::string, std::string>& schema) {
  std::optional<TableName> first;
  for (size_t slash = key.find('/'); slash != std::string::npos; slash = key.find('/', slash + 1)) {
    for (size_t dot = key.find('.', slash + 1); dot != std::string::npos;
         dot = key.find('.', dot + 1)) {
      TableName name{key.substr(0, slash), key.substr(slash + 1, dot - slash - 1),
                     key.substr(dot + 1)};
      if (name.database.empty() || name.schema.empty() || name.table.empty()) continue;
      if (schema.count(absl::StrCat(name.database, "/schema:", name.schema)) > 0) return name;
      if (!first) first = name;
    }
  }
  return first;
}

std::vector<std::string> SetAsideRoles(const std::set<std::string>& roles,
                                       std::vector<v1::TableComparison>* differences) {
  std::vector<std::string> set_aside;
  auto kept =
      std::remove_if(differences->begin(), differences->end(), [&](const v1::TableComparison& d) {
        if (d.kind() != "role") return false;
        absl::string_view name = d.table();
        if (!absl::ConsumePrefix(&name, "cluster/")) return false;
        if (roles.count(std::string(name)) == 0) return false;
        set_aside.emplace_back(name);
        return true;
      });
  differences->erase(kept, differences->end());
  return set_aside;
}

}  // namespace pghaul::controller
