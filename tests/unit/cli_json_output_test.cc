#include <algorithm>
#include <string>

#include "absl/time/time.h"
#include "cli/json_output.h"
#include "common/time_proto.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "pghaul/v1/migrations.pb.h"

namespace pghaul::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(JsonOutputTest, EmptyAgentListIsAnEmptyArrayNotAnEmptyObject) {
  absl::StatusOr<std::string> json = MessageToJson(v1::ListAgentsResponse());
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json, "{\"agents\":[]}\n");
}

TEST(JsonOutputTest, PrintsDefaultValuedFieldsUnderProtoFieldNames) {
  v1::ListAgentsResponse response;
  v1::AgentInfo* agent = response.add_agents();
  agent->set_agent_id("new-db2");
  agent->mutable_facts()->mutable_postgres()->set_reachable(false);
  absl::StatusOr<std::string> json = MessageToJson(response);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json, HasSubstr("{\"agents\":[{\"agent_id\":\"new-db2\",\"online\":false,"));
  EXPECT_THAT(*json, HasSubstr("\"reconnects\":0"));
  EXPECT_THAT(*json, HasSubstr("\"reachable\":false"));
  EXPECT_THAT(*json, HasSubstr("\"extensions\":[]"));
  EXPECT_THAT(*json, HasSubstr("\"data_dir_free_bytes\":\"0\""));
  // Unset sub-messages are left out rather than printed as {}.
  EXPECT_THAT(*json, Not(HasSubstr("\"versions\"")));
}

TEST(JsonOutputTest, Uint64AndTimestampsAreStringsAndTheOutputRoundTrips) {
  v1::AgentInfo agent;
  agent.set_agent_id("legacy-db1");
  agent.set_online(true);
  *agent.mutable_last_seen() = ToProto(absl::FromUnixSeconds(1'700'000'000));
  agent.mutable_facts()->mutable_postgres()->set_system_identifier(7301234567890123456u);
  agent.mutable_facts()->set_data_dir_free_bytes(44'237'228'851u);
  absl::StatusOr<std::string> json = MessageToJson(agent);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json, HasSubstr("\"system_identifier\":\"7301234567890123456\""));
  EXPECT_THAT(*json, HasSubstr("\"last_seen\":\"2023-11-14T22:13:20Z\""));
  EXPECT_EQ(json->back(), '\n');
  EXPECT_EQ(std::count(json->begin(), json->end(), '\n'), 1);

  v1::AgentInfo parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(*json, &parsed).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, agent));
}

TEST(OutputFormatTest, AcceptsTableAndJsonOnly) {
  EXPECT_EQ(ParseOutputFormat("table").value(), OutputFormat::kTable);
  EXPECT_EQ(ParseOutputFormat("json").value(), OutputFormat::kJson);
  EXPECT_TRUE(absl::IsInvalidArgument(ParseOutputFormat("yaml").status()));
}

}  // namespace
}  // namespace pghaul::cli
