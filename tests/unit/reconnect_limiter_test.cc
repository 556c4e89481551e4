#include "controller/reconnect_limiter.h"

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/version.h"
#include "controller/agent_link_service.h"
#include "controller/agent_registry.h"
#include "controller/sqlite_db.h"
#include "controller/task_tracker.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"

namespace pghaul::controller {
namespace {

ReconnectLimits SmallLimits() {
  ReconnectLimits limits;
  limits.agent_burst = 3;
  limits.agent_interval = absl::Seconds(1);
  limits.peer_burst = 5;
  limits.peer_interval = absl::Milliseconds(100);
  limits.max_tracked_keys = 4;
  limits.refusal_log_interval = absl::Seconds(30);
  return limits;
}

// Connects of `agent_id` admitted out of `attempts` made at the current instant.
int AdmittedAgents(ReconnectLimiter& limiter, const std::string& agent_id, int attempts) {
  int admitted = 0;
  for (int i = 0; i < attempts; ++i) admitted += limiter.AdmitAgent(agent_id).allowed ? 1 : 0;
  return admitted;
}

TEST(ReconnectLimiterTest, AdmitsABurstThenOnePerIntervalPerAgentId) {
  FakeClock clock;
  ReconnectLimiter limiter(SmallLimits(), &clock);
  EXPECT_EQ(AdmittedAgents(limiter, "db1", 10), 3);
  clock.Advance(absl::Milliseconds(999));
  EXPECT_FALSE(limiter.AdmitAgent("db1").allowed);
  clock.Advance(absl::Milliseconds(1));
  EXPECT_TRUE(limiter.AdmitAgent("db1").allowed);
  EXPECT_FALSE(limiter.AdmitAgent("db1").allowed);
  // A long quiet period refills the whole burst, not more.
  clock.Advance(absl::Hours(1));
  EXPECT_EQ(AdmittedAgents(limiter, "db1", 10), 3);
}

TEST(ReconnectLimiterTest, OneAgentIdBeingLimitedLeavesOthersAlone) {
  FakeClock clock;
  ReconnectLimiter limiter(SmallLimits(), &clock);
  EXPECT_EQ(AdmittedAgents(limiter, "flapping", 50), 3);
  EXPECT_TRUE(limiter.AdmitAgent("db2").allowed);
}

TEST(ReconnectLimiterTest, RefusalSaysWhenTheNextConnectIsAdmitted) {
  FakeClock clock;
  ReconnectLimiter limiter(SmallLimits(), &clock);
  ASSERT_EQ(AdmittedAgents(limiter, "db1", 3), 3);
  clock.Advance(absl::Milliseconds(250));
  ReconnectLimiter::Decision refused = limiter.AdmitAgent("db1");
  ASSERT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, absl::Milliseconds(750));
  clock.Advance(refused.retry_after - absl::Milliseconds(1));
  EXPECT_FALSE(limiter.AdmitAgent("db1").allowed);
  clock.Advance(absl::Milliseconds(1));
  EXPECT_TRUE(limiter.AdmitAgent("db1").allowed);
}

TEST(ReconnectLimiterTest, RefusalsAreLoggedOncePerWindowWithTheirCount) {
  FakeClock clock;
  ReconnectLimiter limiter(SmallLimits(), &clock);
  ASSERT_EQ(AdmittedAgents(limiter, "db1", 3), 3);
  ReconnectLimiter::Decision first = limiter.AdmitAgent("db1");
  ASSERT_FALSE(first.allowed);
  EXPECT_TRUE(first.log);
  EXPECT_EQ(first.refusals, 1u);
  // A client hammering for 29 s: refused again and again, one admitted per second, never logged.
  int logged = 0;
  for (int tick = 0; tick < 290; ++tick) {
    clock.Advance(absl::Milliseconds(100));
    for (int attempt = 0; attempt < 5; ++attempt) {
      ReconnectLimiter::Decision d = limiter.AdmitAgent("db1");
      logged += d.log ? 1 : 0;
    }
  }
  EXPECT_EQ(logged, 0);
  clock.Advance(absl::Seconds(1));
  ReconnectLimiter::Decision next_window;
  for (int attempt = 0; attempt < 5 && !next_window.log; ++attempt) {
    next_window = limiter.AdmitAgent("db1");
  }
  ASSERT_TRUE(next_window.log);
  // Every refusal since the first line is accounted for: 290 ticks x 5 attempts, less the ~29
  // admitted (one per second), plus this one.
  EXPECT_GT(next_window.refusals, 1400u);
  EXPECT_LT(next_window.refusals, 1452u);
}

TEST(ReconnectLimiterTest, AHostCyclingAgentIdsIsLimitedByItsAddress) {
  FakeClock clock;
  ReconnectLimiter limiter(SmallLimits(), &clock);
  int admitted = 0;
  for (int i = 0; i < 20; ++i) {
    // Every connect from another source port with a fresh made-up id.
    if (!limiter.AdmitPeer(absl::StrCat("ipv4:10.0.0.7:", 40000 + i)).allowed) continue;
    if (limiter.AdmitAgent(absl::StrCat("fake-", i)).allowed) ++admitted;
  }
  EXPECT_EQ(admitted, 5);
  // Another host is not affected.
  EXPECT_TRUE(limiter.AdmitPeer("ipv4:10.0.0.8:40000").allowed);
  clock.Advance(absl::Milliseconds(100));
  EXPECT_TRUE(limiter.AdmitPeer("ipv4:10.0.0.7:41000").allowed);
  EXPECT_FALSE(limiter.AdmitPeer("ipv4:10.0.0.7:41001").allowed);
}

TEST(ReconnectLimiterTest, PeerHostDropsThePort) {
  EXPECT_EQ(ReconnectLimiter::PeerHost("ipv4:127.0.0.1:53114"), "127.0.0.1");
  EXPECT_EQ(ReconnectLimiter::PeerHost("ipv6:[::1]:7400"), "[::1]");
  EXPECT_EQ(ReconnectLimiter::PeerHost("ipv6:%5B::1%5D:7400"), "%5B::1%5D");
  EXPECT_EQ(ReconnectLimiter::PeerHost("unix:/run/pghaul.sock"), "unix:/run/pghaul.sock");
}

TEST(ReconnectLimiterTest, IdleKeysAreForgotten) {
  FakeClock clock;
  ReconnectLimiter limiter(SmallLimits(), &clock);
  for (int i = 0; i < 4; ++i) limiter.AdmitAgent(absl::StrCat("db", i));
  EXPECT_EQ(limiter.tracked_keys(), 4u);
  // Each bucket is full again one interval after its single connect.
  clock.Advance(absl::Seconds(2));
  limiter.AdmitAgent("db9");
  EXPECT_EQ(limiter.tracked_keys(), 1u);
}

TEST(ReconnectLimiterTest, TrackedKeysAreCappedAndNewKeysAreNotLockedOut) {
  FakeClock clock;
  ReconnectLimiter limiter(SmallLimits(), &clock);
  // Fill the table with ids that are all still limited.
  for (int i = 0; i < 4; ++i) ASSERT_EQ(AdmittedAgents(limiter, absl::StrCat("busy", i), 5), 3);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(limiter.AdmitAgent(absl::StrCat("new", i)).allowed) << i;
  }
  EXPECT_EQ(limiter.tracked_keys(), 4u);
  // The keys already tracked stay limited.
  EXPECT_FALSE(limiter.AdmitAgent("busy0").allowed);
  // Once they have refilled, room is made for new ones.
  clock.Advance(absl::Seconds(5));
  ASSERT_EQ(AdmittedAgents(limiter, "late", 5), 3);
  EXPECT_EQ(limiter.tracked_keys(), 1u);
}

TEST(ReconnectLimiterTest, DefaultsAdmitTenAgentConnectsThenOnePerSecond) {
  FakeClock clock;
  ReconnectLimiter limiter(ReconnectLimits{}, &clock);
  EXPECT_EQ(AdmittedAgents(limiter, "db1", 200), kDefaultAgentBurst);
  clock.Advance(kDefaultAgentInterval);
  EXPECT_EQ(AdmittedAgents(limiter, "db1", 200), 1);
  int peers = 0;
  for (int i = 0; i < 1000; ++i) peers += limiter.AdmitPeer("ipv4:192.0.2.1:1").allowed ? 1 : 0;
  EXPECT_EQ(peers, kDefaultPeerBurst);
}

// The limiter wired into the real AgentLinkService, over gRPC on loopback, with time stepped by
// hand.
class AgentLinkRateLimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = *SqliteDb::Open(":memory:");
    tasks_ = *TaskTracker::Open(db_.get(), &clock_);
    registry_ = std::make_unique<AgentRegistry>(&clock_, absl::Seconds(10), 3);
    service_ = std::make_unique<AgentLinkService>(registry_.get(), tasks_.get(), "ctl",
                                                  absl::Seconds(10), false, SmallLimits(), &clock_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(port, 0);
    stub_ = v1::AgentLink::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }

  // Says Hello as `agent_id`; OK when welcomed, else the status the stream ended with.
  grpc::Status Connect(const std::string& agent_id) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto stream = stub_->Connect(&context);
    v1::AgentMessage hello;
    hello.mutable_hello()->set_agent_id(agent_id);
    hello.mutable_hello()->set_incarnation("i1");
    hello.mutable_hello()->mutable_versions()->set_protocol(kProtocolVersion);
    stream->Write(hello);
    v1::ControllerMessage reply;
    bool welcomed = stream->Read(&reply) && reply.has_welcome();
    stream->WritesDone();
    while (stream->Read(&reply)) {
    }
    grpc::Status status = stream->Finish();
    return welcomed ? grpc::Status::OK : status;
  }

  FakeClock clock_;
  std::unique_ptr<SqliteDb> db_;
  std::unique_ptr<TaskTracker> tasks_;
  std::unique_ptr<AgentRegistry> registry_;
  std::unique_ptr<AgentLinkService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::AgentLink::Stub> stub_;
};

TEST_F(AgentLinkRateLimitTest, AStreamBeyondTheAgentLimitEndsWithResourceExhausted) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Connect("db1").ok()) << i;
  grpc::Status refused = Connect("db1");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(refused.error_message(),
            "rate-limited: agent 'db1' connected more than 3 times in a burst (then at most once "
            "per 1s); retry in 1s");
  // Another agent id is not affected, and db1 gets in once its time has come.
  EXPECT_TRUE(Connect("db2").ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(Connect("db1").ok());
}

TEST_F(AgentLinkRateLimitTest, AHostCyclingAgentIdsIsRefusedBeforeItsHello) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Connect(absl::StrCat("fake-", i)).ok()) << i;
  grpc::Status refused = Connect("fake-5");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StartsWith(refused.error_message(), "rate-limited: host 127.0.0.1 "))
      << refused.error_message();
  EXPECT_TRUE(absl::EndsWith(refused.error_message(), "retry in 100ms")) << refused.error_message();
  // Refused before its Hello was read: the id never reached the registry.
  EXPECT_FALSE(registry_->Get("fake-5").ok());
  clock_.Advance(absl::Milliseconds(100));
  EXPECT_TRUE(Connect("fake-5").ok());
}

}  // namespace
}  // namespace pghaul::controller
