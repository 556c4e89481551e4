#include "controller/agent_registry.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace pghaul::controller {
namespace {

class FakeSession : public AgentSession {
 public:
  void Send(const v1::ControllerMessage& message) override { ++sent; }
  void Close(absl::string_view reason) override { closed_reason = std::string(reason); }
  int sent = 0;
  std::string closed_reason;
};

v1::Hello MakeHello(const std::string& id, const std::string& incarnation) {
  v1::Hello hello;
  hello.set_agent_id(id);
  hello.set_incarnation(incarnation);
  hello.mutable_facts()->set_hostname(id + "-host");
  hello.mutable_facts()->mutable_postgres()->set_reachable(true);
  return hello;
}

class AgentRegistryTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  AgentRegistry registry_{&clock_, absl::Seconds(2), 3};
};

TEST_F(AgentRegistryTest, UnknownAgentIsNotFound) {
  EXPECT_EQ(registry_.Get("nobody").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(AgentRegistryTest, HelloMakesTheAgentOnlineWithItsFacts) {
  auto session = std::make_shared<FakeSession>();
  registry_.Connect(MakeHello("legacy", "inc-1"), "ipv4:198.18.0.11:5000", session);
  absl::StatusOr<v1::AgentInfo> info = registry_.Get("legacy");
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->online());
  EXPECT_EQ(info->facts().hostname(), "legacy-host");
  EXPECT_EQ(info->peer(), "ipv4:198.18.0.11:5000");
  EXPECT_EQ(info->reconnects(), 0u);
  EXPECT_EQ(info->restarts(), 0u);
}

TEST_F(AgentRegistryTest, GoesOfflineOnlyAfterTheConfiguredMissedHeartbeats) {
  auto session = std::make_shared<FakeSession>();
  auto reg = registry_.Connect(MakeHello("legacy", "inc-1"), "peer", session);
  clock_.Advance(absl::Seconds(5));
  EXPECT_TRUE(registry_.Sweep().empty());
  EXPECT_TRUE(registry_.Touch("legacy", reg.generation));
  clock_.Advance(absl::Seconds(5.9));
  EXPECT_TRUE(registry_.Sweep().empty());
  EXPECT_TRUE(registry_.Get("legacy")->online());
  clock_.Advance(absl::Seconds(0.2));
  auto stale = registry_.Sweep();
  ASSERT_EQ(stale.size(), 1u);
  EXPECT_EQ(stale[0], session);
  v1::AgentInfo info = *registry_.Get("legacy");
  EXPECT_FALSE(info.online());
  EXPECT_NE(info.offline_reason().find("3 heartbeats"), std::string::npos) << info.offline_reason();
  EXPECT_TRUE(registry_.OnlineSessions().empty());
}

TEST_F(AgentRegistryTest, SameIncarnationIsAReconnectAndNewOneARestart) {
  auto first = std::make_shared<FakeSession>();
  auto r1 = registry_.Connect(MakeHello("target", "inc-1"), "peer", first);
  registry_.Disconnect("target", r1.generation, "network");
  EXPECT_FALSE(registry_.Get("target")->online());
  EXPECT_EQ(registry_.Get("target")->offline_reason(), "network");

  registry_.Connect(MakeHello("target", "inc-1"), "peer", std::make_shared<FakeSession>());
  EXPECT_EQ(registry_.Get("target")->reconnects(), 1u);
  EXPECT_EQ(registry_.Get("target")->restarts(), 0u);

  registry_.Connect(MakeHello("target", "inc-2"), "peer", std::make_shared<FakeSession>());
  EXPECT_EQ(registry_.Get("target")->reconnects(), 1u);
  EXPECT_EQ(registry_.Get("target")->restarts(), 1u);
  EXPECT_EQ(registry_.Get("target")->incarnation(), "inc-2");
}

TEST_F(AgentRegistryTest, NewerStreamReplacesTheOlderOne) {
  auto old_session = std::make_shared<FakeSession>();
  auto new_session = std::make_shared<FakeSession>();
  auto r1 = registry_.Connect(MakeHello("legacy", "inc-1"), "peer", old_session);
  auto r2 = registry_.Connect(MakeHello("legacy", "inc-1"), "peer", new_session);
  EXPECT_EQ(r2.superseded, old_session);
  EXPECT_NE(r1.generation, r2.generation);

  // Late events of the old stream neither keep the agent alive nor take it offline.
  EXPECT_FALSE(registry_.Touch("legacy", r1.generation));
  registry_.Disconnect("legacy", r1.generation, "old stream ended");
  EXPECT_TRUE(registry_.Get("legacy")->online());
  ASSERT_EQ(registry_.OnlineSessions().size(), 1u);
  EXPECT_EQ(registry_.OnlineSessions()[0], new_session);
}

TEST_F(AgentRegistryTest, FactsUpdateReplacesFactsOfTheCurrentStream) {
  auto reg =
      registry_.Connect(MakeHello("legacy", "inc-1"), "peer", std::make_shared<FakeSession>());
  v1::HostFacts facts;
  facts.mutable_postgres()->set_reachable(false);
  facts.mutable_postgres()->set_error("connection refused");
  EXPECT_TRUE(registry_.UpdateFacts("legacy", reg.generation, facts));
  EXPECT_FALSE(registry_.Get("legacy")->facts().postgres().reachable());
  EXPECT_FALSE(registry_.UpdateFacts("legacy", reg.generation + 100, facts));
}

TEST_F(AgentRegistryTest, ListIsSortedById) {
  registry_.Connect(MakeHello("zeta", "a"), "p", std::make_shared<FakeSession>());
  registry_.Connect(MakeHello("alpha", "b"), "p", std::make_shared<FakeSession>());
  registry_.Connect(MakeHello("mid", "c"), "p", std::make_shared<FakeSession>());
  std::vector<v1::AgentInfo> agents = registry_.List();
  ASSERT_EQ(agents.size(), 3u);
  EXPECT_EQ(agents[0].agent_id(), "alpha");
  EXPECT_EQ(agents[1].agent_id(), "mid");
  EXPECT_EQ(agents[2].agent_id(), "zeta");
}

TEST_F(AgentRegistryTest, HeartbeatAfterSweepDoesNotReviveAClosedStream) {
  auto reg =
      registry_.Connect(MakeHello("legacy", "inc-1"), "peer", std::make_shared<FakeSession>());
  clock_.Advance(absl::Seconds(7));
  ASSERT_EQ(registry_.Sweep().size(), 1u);
  EXPECT_FALSE(registry_.Touch("legacy", reg.generation));
  EXPECT_FALSE(registry_.Get("legacy")->online());
}

}  // namespace
}  // namespace pghaul::controller
