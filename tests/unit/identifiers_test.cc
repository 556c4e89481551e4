#include "common/identifiers.h"

#include "gtest/gtest.h"

namespace pghaul {
namespace {

TEST(IdentifiersTest, AcceptsTypicalAgentIds) {
  EXPECT_TRUE(ValidateAgentId("legacy").ok());
  EXPECT_TRUE(ValidateAgentId("db-01.prod_eu").ok());
  EXPECT_TRUE(ValidateAgentId(std::string(63, 'a')).ok());
}

TEST(IdentifiersTest, RejectsIdsThatCouldInjectOrConfuse) {
  for (const char* bad : {"", "-leading-dash", ".hidden", "Upper", "a;rm -rf /", "a b", "a/b",
                          "../etc", "a\nb"}) {
    absl::Status status = ValidateAgentId(bad);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(status.message().find("1 to 63 characters"), absl::string_view::npos) << bad;
  }
  EXPECT_FALSE(ValidateAgentId(std::string(64, 'a')).ok());
}

TEST(IdentifiersTest, RandomIdsAre32HexDigitsAndDiffer) {
  std::string a = RandomHexId();
  std::string b = RandomHexId();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace pghaul
