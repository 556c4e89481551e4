// The schema half of verify: both agents' SCHEMA_CATALOG values (agent/schema_catalogue.h)
// compared object by object. Pure logic; the rules are in docs/preflight.md ("VERIFY RULES").
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "pghaul/v1/migrations.pb.h"

namespace pghaul::controller {

// "<scope>/<kind>:<name>" split; scope is a database or "cluster". The kind is the text between
// the first '/' followed by a known kind and the ':' after it, so database names with '/' work.
struct CatalogueKey {
  std::string scope;
  std::string kind;
  std::string name;
};
std::optional<CatalogueKey> ParseCatalogueKey(absl::string_view key);

// "a=1\tb=x\\ty" -> {{"a","1"},{"b","x\ty"}} (values C-unescaped); a part without '=' is kept
// whole as a value with an empty name.
std::vector<std::pair<std::string, std::string>> ParseCatalogueValue(absl::string_view value);

// Every object of either side, compared: one TableComparison per object that is not the same
// (status missing-on-target, missing-on-source or mismatch; table "<scope>/<name>", kind the
// object's kind, detail naming each attribute that differs: "type: text vs character
// varying(10)"), in key order. `*compared` (optional) gets the number of objects.
std::vector<v1::TableComparison> CompareSchema(const std::map<std::string, std::string>& source,
                                               const std::map<std::string, std::string>& target,
                                               uint32_t* compared = nullptr);

// Removes from `differences` those of the cluster-wide roles named in `roles` (kind "role",
// table "cluster/<name>", any status) and returns their names in order: the roles pghaul gave a
// Patroni target on purpose, which the source does not have or has with other attributes.
std::vector<std::string> SetAsideRoles(const std::set<std::string>& roles,
                                       std::vector<v1::TableComparison>* differences);

// How far a physical copy's sequence may be ahead of its source, from the source's catalogue:
// "<db>/sequence:<schema>.<name>" (the TABLE_CHECKSUMS key) -> (cache + 32) * |increment|, the
// most PostgreSQL logs ahead of the last value it handed out.
std::map<std::string, int64_t> SequenceSlack(const std::map<std::string, std::string>& schema);

// "<db>/<schema>.<table>" of every table with a column difference among `differences`: their
// rows cannot be compared row by row.
std::set<std::string> TablesWithColumnDifferences(
    const std::vector<v1::TableComparison>& differences);

// Splits a TABLE_CHECKSUMS table key "<db>/<schema>.<name>" into its parts, using the schema
// catalogue ("<db>/schema:<schema>" must be in it) when names hold '/' or '.'. nullopt: none
// fits.
struct TableName {
  std::string database;
  std::string schema;
  std::string table;
};
std::optional<TableName> SplitTableKey(const std::string& key,
                                       const std::map<std::string, std::string>& schema);

}  // namespace pghaul::controller
