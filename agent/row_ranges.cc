#include "agent/row_ranges.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "agent/pg_connection.h"
#include "agent/snapshot_sql.h"
#include "common/status_macros.h"

namespace pghaul::agent {
namespace {

using Values = std::map<std::string, std::string>;
using Params = std::vector<std::optional<std::string>>;

constexpr absl::Duration kStatementTimeout = absl::Hours(1);

constexpr char kDatabaseSql[] =
    "SELECT datname FROM pg_database WHERE datname = $1 AND datallowconn";
constexpr char kTableSql[] =
    "SELECT c.oid::text AS oid, format('%I.%I', n.nspname, c.relname) AS qualified,"
    " c.relpersistence::text AS persistence, pg_is_in_recovery()::text AS in_recovery"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'm')";
// The primary key's columns in key order: name, quoted name, type (without typmod, so a cast
// never rounds or truncates a key value).
constexpr char kPrimaryKeySql[] =
    "SELECT a.attname, format('%I', a.attname), format_type(a.atttypid, NULL)"
    " FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)"
    " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
    " WHERE i.indrelid = $1::oid AND i.indisprimary ORDER BY k.ord";

struct KeyColumn {
  std::string name;
  std::string quoted;  // by the server
  std::string type;    // by the server
};

std::string EncodeKey(const std::vector<std::string>& columns) {
  std::vector<std::string> escaped;
  for (const std::string& c : columns) escaped.push_back(absl::CEscape(c));
  return absl::StrJoin(escaped, "\t");
}

// A session inside the range's database with the table looked up.
class RangeReader {
 public:
  static absl::StatusOr<RangeReader> Open(const PostgresConnection& conn, const v1::RowRange& range,
                                          QueryCanceller* canceller) {
    PGH_RETURN_IF_ERROR(ValidateRowRange(range));
    PgSessionOptions session;
    session.statement_timeout = kStatementTimeout;
    {
      PGH_ASSIGN_OR_RETURN(PgConnection first, PgConnection::Open(conn, session));
      PGH_ASSIGN_OR_RETURN(PgResult found, first.Execute(kDatabaseSql, {range.database()}));
      if (found.rows() != 1) {
        return absl::NotFoundError(absl::StrCat("no database \"",
                                                absl::CHexEscape(range.database()),
                                                "\" that accepts connections on this server"));
      }
    }
    PostgresConnection target = conn;
    target.database = range.database();
    PGH_ASSIGN_OR_RETURN(PgConnection opened, PgConnection::Open(target, session));
    RangeReader reader(std::move(opened), range, canceller);
    PGH_RETURN_IF_ERROR(reader.Prepare());
    return reader;
  }

  RangeReader(RangeReader&&) = default;

  const std::vector<KeyColumn>& key() const { return key_; }

  Values KeyValues() const {
    std::vector<std::string> names;
    for (const KeyColumn& k : key_) names.push_back(k.name);
    Values values;
    values["key_columns"] = EncodeKey(names);
    if (key_.empty()) values["no_primary_key"] = "true";
    return values;
  }

  absl::StatusOr<PgResult> Run(const std::string& sql, const Params& params) {
    ScopedCancelAttachment attached(canceller_, conn_.raw());
    absl::StatusOr<PgResult> result = conn_.Execute(sql.c_str(), params);
    if (!result.ok()) {
      if (canceller_ != nullptr && canceller_->cancelled()) {
        return absl::CancelledError("row ranges cancelled");
      }
      return absl::Status(result.status().code(),
                          absl::StrCat(Name(), ": ", result.status().message()));
    }
    return result;
  }

  absl::Status Commit() { return Run(kCommitSql, {}).status(); }

  // "(r.a, r.b)": the key as a row of the table's columns.
  std::string KeyTuple(absl::string_view prefix) const {
    std::vector<std::string> parts;
    for (const KeyColumn& k : key_) parts.push_back(absl::StrCat(prefix, k.quoted));
    return absl::StrCat("(", absl::StrJoin(parts, ", "), ")");
  }
  std::string KeyOrder(absl::string_view prefix, absl::string_view direction = "") const {
    std::vector<std::string> parts;
    for (const KeyColumn& k : key_) parts.push_back(absl::StrCat(prefix, k.quoted, direction));
    return absl::StrJoin(parts, ", ");
  }
  // "($3::integer, $4::text)", adding the key's values to `params`.
  absl::StatusOr<std::string> KeyParams(const v1::RowKey& key, Params& params) const {
    if (key.columns_size() != static_cast<int>(key_.size())) {
      return absl::InvalidArgumentError(absl::StrCat("a key of ", key.columns_size(),
                                                     " columns for ", Name(),
                                                     " whose primary key has ", key_.size()));
    }
    std::vector<std::string> parts;
    for (int i = 0; i < key.columns_size(); ++i) {
      params.push_back(key.columns(i));
      parts.push_back(absl::StrCat("$", params.size(), "::", key_[i].type));
    }
    return absl::StrCat("(", absl::StrJoin(parts, ", "), ")");
  }
  // The WHERE clause of the range.
  absl::StatusOr<std::string> RangeCondition(Params& params) const {
    std::string where = "TRUE";
    if (range_.lower().columns_size() > 0) {
      PGH_ASSIGN_OR_RETURN(std::string lower, KeyParams(range_.lower(), params));
      absl::StrAppend(&where, " AND ", KeyTuple("r."), " > ", lower);
    }
    if (range_.upper().columns_size() > 0) {
      PGH_ASSIGN_OR_RETURN(std::string upper, KeyParams(range_.upper(), params));
      absl::StrAppend(&where, " AND ", KeyTuple("r."), " <= ", upper);
    }
    return where;
  }
  const std::string& qualified() const { return qualified_; }
  const v1::RowRange& range() const { return range_; }

 private:
  RangeReader(PgConnection conn, const v1::RowRange& range, QueryCanceller* canceller)
      : conn_(std::move(conn)), range_(range), canceller_(canceller) {}

  std::string Name() const {
    return absl::StrCat(absl::CHexEscape(range_.database()), "/", absl::CHexEscape(range_.schema()),
                        ".", absl::CHexEscape(range_.table()));
  }

  absl::Status Prepare() {
    PGH_RETURN_IF_ERROR(Run(kBeginSnapshotSql, {}).status());
    PGH_RETURN_IF_ERROR(Run(kRowTextSettingsSql, {}).status());
    PGH_ASSIGN_OR_RETURN(PgResult table, Run(kTableSql, {range_.schema(), range_.table()}));
    if (table.rows() != 1) {
      return absl::NotFoundError(absl::StrCat("no table ", Name(), " on this server"));
    }
    if (table.Value(0, 2) == "u" && table.Value(0, 3) == "true") {
      return absl::FailedPreconditionError(
          absl::StrCat(Name(), " is unlogged: it cannot be read on a server in recovery"));
    }
    qualified_ = table.Value(0, 1);
    PGH_ASSIGN_OR_RETURN(PgResult key, Run(kPrimaryKeySql, {table.Value(0, 0)}));
    for (int row = 0; row < key.rows(); ++row) {
      key_.push_back({key.Value(row, 0), key.Value(row, 1), key.Value(row, 2)});
    }
    return absl::OkStatus();
  }

  PgConnection conn_;
  v1::RowRange range_;
  QueryCanceller* canceller_;
  std::string qualified_;
  std::vector<KeyColumn> key_;
};

bool ValidName(const std::string& name) {
  return !name.empty() && name.size() <= 255 && !absl::StrContains(name, '\0');
}

}  // namespace

absl::Status ValidateRowRange(const v1::RowRange& range) {
  if (!ValidName(range.database()) || !ValidName(range.schema()) || !ValidName(range.table())) {
    return absl::InvalidArgumentError(
        "a row range needs a database, a schema and a table (1-255 bytes, no NUL)");
  }
  if (range.buckets() == 1 || range.buckets() > static_cast<uint32_t>(kMaxRowBuckets)) {
    return absl::InvalidArgumentError(
        absl::StrCat("row range buckets ", range.buckets(), ": 0 (16) or 2..", kMaxRowBuckets));
  }
  if (range.boundaries_size() >= kMaxRowBuckets) {
    return absl::InvalidArgumentError(absl::StrCat("row range with ", range.boundaries_size(),
                                                   " boundaries: at most ", kMaxRowBuckets - 1));
  }
  int columns = -1;
  auto check = [&columns](const v1::RowKey& key, bool optional) -> absl::Status {
    if (optional && key.columns_size() == 0) return absl::OkStatus();
    if (key.columns_size() == 0 || (columns >= 0 && key.columns_size() != columns)) {
      return absl::InvalidArgumentError("row range keys must all have the same columns");
    }
    for (const std::string& value : key.columns()) {
      if (absl::StrContains(value, '\0')) {
        return absl::InvalidArgumentError("a row range key value holds a NUL byte");
      }
    }
    columns = key.columns_size();
    return absl::OkStatus();
  };
  PGH_RETURN_IF_ERROR(check(range.lower(), true));
  PGH_RETURN_IF_ERROR(check(range.upper(), true));
  for (const v1::RowKey& boundary : range.boundaries()) PGH_RETURN_IF_ERROR(check(boundary, false));
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::string>> ComputeRowRanges(const PostgresConnection& conn,
                                                                    const v1::RowRange& range,
                                                                    QueryCanceller* canceller) {
  PGH_ASSIGN_OR_RETURN(RangeReader reader, RangeReader::Open(conn, range, canceller));
  Values values = reader.KeyValues();
  if (reader.key().empty()) return values;
  Params params;
  std::string bucket;
  const bool split = range.boundaries().empty();
  if (split) {
    params.push_back(absl::StrCat(range.buckets() == 0 ? kDefaultRowBuckets : range.buckets()));
    bucket = absl::StrCat("ntile($1::integer) OVER (ORDER BY ", reader.KeyOrder("r."), ")");
  } else {
    bucket = "CASE";
    for (int i = 0; i < range.boundaries_size(); ++i) {
      PGH_ASSIGN_OR_RETURN(std::string boundary, reader.KeyParams(range.boundaries(i), params));
      absl::StrAppend(&bucket, " WHEN ", reader.KeyTuple("r."), " <= ", boundary, " THEN ", i + 1);
    }
    absl::StrAppend(&bucket, " ELSE ", range.boundaries_size() + 1, " END");
  }
  PGH_ASSIGN_OR_RETURN(std::string where, reader.RangeCondition(params));
  // The inner query names the key columns k0, k1, ... so no table column can clash with the
  // outer query's names.
  std::vector<std::string> inner_keys;
  std::vector<std::string> outer_keys;
  std::vector<std::string> outer_keys_desc;
  for (size_t i = 0; i < reader.key().size(); ++i) {
    inner_keys.push_back(absl::StrCat("r.", reader.key()[i].quoted, " AS k", i));
    outer_keys.push_back(absl::StrCat("s.k", i));
    outer_keys_desc.push_back(absl::StrCat("s.k", i, " DESC"));
  }
  std::string lasts;
  if (split) {
    for (size_t i = 0; i < reader.key().size(); ++i) {
      absl::StrAppend(&lasts, ", (array_agg(s.k", i, "::text ORDER BY ",
                      absl::StrJoin(outer_keys_desc, ", "), "))[1]");
    }
  }
  const std::string sql = absl::StrCat(
      "SELECT s.b::text, count(*)::text, md5(string_agg(s.h, '' ORDER BY ",
      absl::StrJoin(outer_keys, ", "), "))", lasts, " FROM (SELECT ",
      absl::StrJoin(inner_keys, ", "), ", md5(ROW(r.*)::text) AS h, ", bucket, " AS b FROM ",
      reader.qualified(), " AS r WHERE ", where, ") AS s GROUP BY s.b ORDER BY s.b");
  PGH_ASSIGN_OR_RETURN(PgResult result, reader.Run(sql, params));
  PGH_RETURN_IF_ERROR(reader.Commit());
  auto name = [](int index) { return absl::StrFormat("bucket:%04d", index); };
  if (split) {
    for (int row = 0; row < result.rows(); ++row) {
      values[name(row)] =
          absl::StrCat("rows=", result.Value(row, 1), " md5=", result.Value(row, 2));
      std::vector<std::string> last;
      for (size_t i = 0; i < reader.key().size(); ++i) {
        last.push_back(result.Value(row, 3 + static_cast<int>(i)));
      }
      values[absl::StrCat(name(row), ":last")] = EncodeKey(last);
    }
    values["buckets"] = absl::StrCat(result.rows());
  } else {
    const int buckets = range.boundaries_size() + 1;
    for (int i = 0; i < buckets; ++i) values[name(i)] = "rows=0 md5=";
    for (int row = 0; row < result.rows(); ++row) {
      int index = std::stoi(result.Value(row, 0)) - 1;
      values[name(index)] =
          absl::StrCat("rows=", result.Value(row, 1), " md5=", result.Value(row, 2));
    }
    values["buckets"] = absl::StrCat(buckets);
  }
  return values;
}

absl::StatusOr<std::map<std::string, std::string>> ComputeRowDigests(const PostgresConnection& conn,
                                                                     const v1::RowRange& range,
                                                                     QueryCanceller* canceller) {
  PGH_ASSIGN_OR_RETURN(RangeReader reader, RangeReader::Open(conn, range, canceller));
  Values values = reader.KeyValues();
  if (reader.key().empty()) return values;
  Params params;
  PGH_ASSIGN_OR_RETURN(std::string where, reader.RangeCondition(params));
  std::vector<std::string> key_texts;
  for (const KeyColumn& k : reader.key())
    key_texts.push_back(absl::StrCat("r.", k.quoted, "::text"));
  const std::string sql = absl::StrCat(
      "SELECT md5(ROW(r.*)::text), ", absl::StrJoin(key_texts, ", "), " FROM ", reader.qualified(),
      " AS r WHERE ", where, " ORDER BY ", reader.KeyOrder("r."), " LIMIT ", kMaxRowDigests + 1);
  PGH_ASSIGN_OR_RETURN(PgResult result, reader.Run(sql, params));
  PGH_RETURN_IF_ERROR(reader.Commit());
  const int rows = std::min(result.rows(), kMaxRowDigests);
  for (int row = 0; row < rows; ++row) {
    std::vector<std::string> key;
    for (int i = 1; i < result.columns(); ++i) key.push_back(result.Value(row, i));
    values[absl::StrFormat("row:%06d", row)] =
        absl::StrCat(result.Value(row, 0), "\t", EncodeKey(key));
  }
  values["rows"] = absl::StrCat(rows);
  values["truncated"] = result.rows() > kMaxRowDigests ? "true" : "false";
  return values;
}

}  // namespace pghaul::agent
