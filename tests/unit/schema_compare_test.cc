#include "controller/schema_compare.h"

#include <map>
#include <string>

#include "agent/schema_catalogue.h"
#include "controller/verify_report.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::controller {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using Values = std::map<std::string, std::string>;

// A catalogue as agent/schema_catalogue.cc encodes it.
std::string Fields(const std::vector<std::pair<std::string, std::string>>& fields) {
  return agent::EncodeCatalogueValue(fields);
}

Values Catalogue() {
  return {
      {"cluster/database:app", Fields({{"owner", "postgres"}, {"encoding", "UTF8"}})},
      {"cluster/role:alice", Fields({{"superuser", "false"}, {"login", "true"}})},
      {"cluster/membership:alice in readers", Fields({{"admin_option", "false"}})},
      {"app/schema:public", Fields({{"owner", "pg_database_owner"}})},
      {"app/table:public.orders", Fields({{"kind", "r"}, {"persistence", "p"}})},
      {"app/column:public.orders.id",
       Fields({{"type", "integer"}, {"not_null", "true"}, {"default", ""}})},
      {"app/column:public.orders.note",
       Fields({{"type", "text"}, {"not_null", "false"}, {"default", "'a\tb'::text"}})},
      {"app/index:public.orders_pkey",
       Fields(
           {{"table", "public.orders"},
            {"definition", "CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)"}})},
      {"app/sequence:public.orders_id_seq",
       Fields({{"type", "bigint"}, {"increment", "1"}, {"cache", "1"}})},
      {"app/function:public.total(integer, text)", Fields({{"body_md5", "abc"}})},
      {"app/extension:pgcrypto", Fields({{"version", "1.3"}})},
  };
}

const v1::TableComparison* Find(const std::vector<v1::TableComparison>& all,
                                const std::string& kind, const std::string& table) {
  for (const v1::TableComparison& d : all) {
    if (d.kind() == kind && d.table() == table) return &d;
  }
  return nullptr;
}

TEST(ParseCatalogueKeyTest, SplitsScopeKindAndNameEvenWithSlashesAndColons) {
  std::optional<CatalogueKey> key = ParseCatalogueKey("app/column:public.orders.note");
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(key->scope, "app");
  EXPECT_EQ(key->kind, "column");
  EXPECT_EQ(key->name, "public.orders.note");

  key = ParseCatalogueKey("my/db/materialized view:s.v:1");
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(key->scope, "my/db");
  EXPECT_EQ(key->kind, "materialized view");
  EXPECT_EQ(key->name, "s.v:1");

  EXPECT_FALSE(ParseCatalogueKey("app/public.orders").has_value());
  EXPECT_FALSE(ParseCatalogueKey("app/gadget:x").has_value());
}

TEST(ParseCatalogueValueTest, UnescapesValuesSoTabsAndNewlinesRoundTrip) {
  std::string encoded = Fields({{"default", "'a\tb\nc\\'"}, {"type", "text"}});
  EXPECT_THAT(ParseCatalogueValue(encoded),
              ElementsAre(Pair("default", "'a\tb\nc\\'"), Pair("type", "text")));
  EXPECT_THAT(ParseCatalogueValue(""), IsEmpty());
}

TEST(CompareSchemaTest, IdenticalCataloguesHaveNoDifferences) {
  uint32_t compared = 0;
  EXPECT_THAT(CompareSchema(Catalogue(), Catalogue(), &compared), IsEmpty());
  EXPECT_EQ(compared, Catalogue().size());
}

TEST(CompareSchemaTest, DroppedIndexIsMissingOnTargetByKindAndName) {
  Values target = Catalogue();
  target.erase("app/index:public.orders_pkey");
  std::vector<v1::TableComparison> d = CompareSchema(Catalogue(), target);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].kind(), "index");
  EXPECT_EQ(d[0].table(), "app/public.orders_pkey");
  EXPECT_EQ(d[0].status(), kObjectMissingOnTarget);
  EXPECT_EQ(DescribeDifference(d[0]), "index app/public.orders_pkey missing on target");
}

TEST(CompareSchemaTest, AddedColumnIsMissingOnSource) {
  Values target = Catalogue();
  target["app/column:public.orders.extra"] = Fields({{"type", "integer"}});
  std::vector<v1::TableComparison> d = CompareSchema(Catalogue(), target);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(DescribeDifference(d[0]), "column app/public.orders.extra missing on source");
  EXPECT_THAT(TablesWithColumnDifferences(d), ElementsAre("app/public.orders"));
}

TEST(CompareSchemaTest, ChangedColumnTypeNamesTheAttributeAndBothValues) {
  Values target = Catalogue();
  target["app/column:public.orders.note"] = Fields(
      {{"type", "character varying(10)"}, {"not_null", "false"}, {"default", "'a\tb'::text"}});
  std::vector<v1::TableComparison> d = CompareSchema(Catalogue(), target);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].status(), kObjectMismatch);
  EXPECT_EQ(d[0].detail(), "type: text vs character varying(10)");
  EXPECT_EQ(DescribeDifference(d[0]),
            "column app/public.orders.note: type: text vs character varying(10)");
}

TEST(CompareSchemaTest, EveryKindOfDifferenceIsListedInKeyOrder) {
  Values target = Catalogue();
  target["cluster/role:alice"] = Fields({{"superuser", "true"}, {"login", "true"}});
  target.erase("cluster/membership:alice in readers");
  target["app/extension:pgcrypto"] = Fields({{"version", "1.2"}});
  target["app/function:public.total(integer, text)"] = Fields({{"body_md5", "def"}});
  std::vector<v1::TableComparison> d = CompareSchema(Catalogue(), target);
  ASSERT_EQ(d.size(), 4u);
  EXPECT_EQ(Find(d, "extension", "app/pgcrypto")->detail(), "version: 1.3 vs 1.2");
  EXPECT_EQ(Find(d, "function", "app/public.total(integer, text)")->detail(),
            "body_md5: abc vs def");
  EXPECT_EQ(Find(d, "role", "cluster/alice")->detail(), "superuser: false vs true");
  EXPECT_EQ(Find(d, "membership", "cluster/alice in readers")->status(), kObjectMissingOnTarget);
  EXPECT_EQ(d[0].kind(), "extension");  // "app/..." sorts before "cluster/..."
}

TEST(SequenceSlackTest, IsCachePlusThirtyTwoTimesTheIncrement) {
  Values schema = Catalogue();
  schema["app/sequence:public.down"] = Fields({{"increment", "-10"}, {"cache", "8"}});
  std::map<std::string, int64_t> slack = SequenceSlack(schema);
  EXPECT_EQ(slack.at("app/sequence:public.orders_id_seq"), 33);
  EXPECT_EQ(slack.at("app/sequence:public.down"), 400);
  EXPECT_EQ(slack.size(), 2u);
}

TEST(SplitTableKeyTest, UsesTheCatalogueToSplitNamesWithDotsAndSlashes) {
  Values schema = {{"a/b/schema:my.schema", ""}};
  std::optional<TableName> name = SplitTableKey("a/b/my.schema.t.x", schema);
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->database, "a/b");
  EXPECT_EQ(name->schema, "my.schema");
  EXPECT_EQ(name->table, "t.x");
  name = SplitTableKey("app/public.orders", {});
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->database, "app");
  EXPECT_EQ(name->schema, "public");
  EXPECT_EQ(name->table, "orders");
  EXPECT_FALSE(SplitTableKey("nothing", {}).has_value());
}

}  // namespace
}  // namespace pghaul::controller

namespace pghaul::controller {
namespace {

TEST(SetAsideRolesTest, RemovesOnlyTheNamedClusterRoles) {
  std::vector<v1::TableComparison> differences;
  auto add = [&](const std::string& kind, const std::string& table) {
    v1::TableComparison d;
    d.set_kind(kind);
    d.set_table(table);
    differences.push_back(d);
  };
  add("role", "cluster/operator");   // missing on the source
  add("role", "cluster/app");        // a real difference
  add("table", "cluster/rewind");    // not a role
  add("role", "cluster/rewind");     // attributes differ
  add("role", "postgres/operator");  // not cluster-wide
  std::vector<std::string> set_aside =
      SetAsideRoles({"operator", "rewind", "replicator"}, &differences);
  EXPECT_EQ(set_aside, (std::vector<std::string>{"operator", "rewind"}));
  ASSERT_EQ(differences.size(), 3u);
  EXPECT_EQ(differences[0].table(), "cluster/app");
  EXPECT_EQ(differences[1].kind(), "table");
  EXPECT_EQ(differences[2].table(), "postgres/operator");
  EXPECT_TRUE(SetAsideRoles({}, &differences).empty());
  EXPECT_EQ(differences.size(), 3u);
}

}  // namespace
}  // namespace pghaul::controller
