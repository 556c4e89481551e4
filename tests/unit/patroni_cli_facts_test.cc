// `pghaul agents show` of an agent configured for Patroni (cli/agent_table.h).
#include <string>

#include "absl/time/clock.h"
#include "cli/agent_table.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(PatroniCliFactsTest, ShowsPatronisStateOnlyForPatroniAgents) {
  v1::AgentInfo agent;
  agent.set_agent_id("target");
  EXPECT_THAT(FormatAgentDetails(agent, absl::Now()), Not(HasSubstr("Patroni")));

  v1::PatroniFacts* patroni = agent.mutable_facts()->mutable_patroni();
  patroni->set_rest_api("198.18.0.12:8008");
  patroni->set_dcs("etcd3");
  patroni->set_reachable(true);
  patroni->set_version("3.0.2");
  patroni->set_state("running");
  patroni->set_role("master");
  patroni->set_leader(true);
  patroni->set_timeline(2);
  patroni->set_system_identifier(7712462926390867333u);
  patroni->set_paused(true);
  const std::string shown = FormatAgentDetails(agent, absl::Now());
  EXPECT_THAT(shown, HasSubstr("Patroni"));
  EXPECT_THAT(shown, HasSubstr("198.18.0.12:8008"));
  EXPECT_THAT(shown, HasSubstr("master (holds the leader lock)"));
  EXPECT_THAT(shown, HasSubstr("7712462926390867333"));
  EXPECT_THAT(shown, HasSubstr("3.0.2"));

  patroni->set_reachable(false);
  patroni->set_error("connection refused");
  const std::string down = FormatAgentDetails(agent, absl::Now());
  EXPECT_THAT(down, HasSubstr("connection refused"));
  EXPECT_THAT(down, Not(HasSubstr("holds the leader lock")));
}

}  // namespace
}  // namespace pghaul::cli
