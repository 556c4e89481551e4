// The CLI against a real gRPC server in this process (a fake Migrations service with canned
// data), and against a port where nothing listens.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cli/app.h"
#include "cli/commands_agents.h"
#include "cli/controller_client.h"
#include "cli/exit_codes.h"
#include "common/clock.h"
#include "common/time_proto.h"
#include "gmock/gmock.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "pghaul/v1/agent_link.grpc.pb.h"
#include "pghaul/v1/migrations.grpc.pb.h"

namespace pghaul::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

// A call that stays unanswered until the client gives up (its deadline passes).
class FinishWhenCancelled final : public grpc::ServerUnaryReactor {
 public:
  void OnCancel() override { Finish(grpc::Status::CANCELLED); }
  void OnDone() override { delete this; }
};

// A Migrations service answering from canned data. The test sets the data before it calls.
class FakeMigrations final : public v1::Migrations::CallbackService {
 public:
  grpc::ServerUnaryReactor* ListAgents(grpc::CallbackServerContext* context,
                                       const v1::ListAgentsRequest* request,
                                       v1::ListAgentsResponse* response) override {
    absl::MutexLock lock(&mu_);
    if (never_answer_list_agents_) return new FinishWhenCancelled();
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    if (list_status_.ok()) *response = agents_;
    reactor->Finish(list_status_);
    return reactor;
  }

  grpc::ServerUnaryReactor* GetAgent(grpc::CallbackServerContext* context,
                                     const v1::GetAgentRequest* request,
                                     v1::AgentInfo* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    absl::MutexLock lock(&mu_);
    for (const v1::AgentInfo& agent : agents_.agents()) {
      if (agent.agent_id() == request->agent_id()) {
        *response = agent;
        reactor->Finish(grpc::Status::OK);
        return reactor;
      }
    }
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 absl::StrCat("agent '", request->agent_id(), "' not found")));
    return reactor;
  }

  void AddAgent(v1::AgentInfo agent) {
    absl::MutexLock lock(&mu_);
    *agents_.add_agents() = std::move(agent);
  }
  void FailListAgents(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    list_status_ = std::move(status);
  }
  void NeverAnswerListAgents() {
    absl::MutexLock lock(&mu_);
    never_answer_list_agents_ = true;
  }

 private:
  absl::Mutex mu_;
  v1::ListAgentsResponse agents_ ABSL_GUARDED_BY(mu_);
  grpc::Status list_status_ ABSL_GUARDED_BY(mu_);
  bool never_answer_list_agents_ ABSL_GUARDED_BY(mu_) = false;
};

// A gRPC server on 127.0.0.1 with a port the kernel picked, offering `service`.
class TestServer {
 public:
  explicit TestServer(grpc::Service* service) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service);
    server_ = builder.BuildAndStart();
  }
  ~TestServer() { server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5))); }

  bool started() const { return server_ != nullptr && port_ > 0; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// An address on which nothing listens: a port the kernel handed out, then closed again.
std::string UnusedLoopbackAddress() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t length = sizeof(address);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  close(fd);
  return absl::StrCat("127.0.0.1:", ntohs(address.sin_port));
}

v1::AgentInfo Agent(absl::string_view id, bool online, bool postgres_up) {
  v1::AgentInfo agent;
  agent.set_agent_id(std::string(id));
  agent.set_online(online);
  *agent.mutable_last_seen() = ToProto(kNow - absl::Seconds(3));
  agent.mutable_facts()->set_hostname(absl::StrCat(id, ".example.internal"));
  agent.mutable_facts()->set_pgbackrest_version("2.45");
  agent.mutable_facts()->set_data_dir_total_bytes(uint64_t{100} << 30);
  agent.mutable_facts()->set_data_dir_free_bytes(uint64_t{40} << 30);
  v1::PostgresFacts* postgres = agent.mutable_facts()->mutable_postgres();
  postgres->set_reachable(postgres_up);
  if (postgres_up) {
    postgres->set_server_version("15.18 (Debian 15.18-0+deb12u1)");
    postgres->set_system_identifier(7301234567890123456u);
  }
  return agent;
}

class ControllerClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service_.AddAgent(Agent("new-db2", /*online=*/false, /*postgres_up=*/false));
    service_.AddAgent(Agent("legacy-db1", /*online=*/true, /*postgres_up=*/true));
    ASSERT_TRUE(server_.started());
  }

  // Runs the whole CLI, as `pghaul --controller <server> args...`.
  int Run(std::vector<std::string> args) {
    std::vector<std::string> argv = {"pghaul", "--insecure", "--controller", server_.address()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<const char*> pointers;
    for (const std::string& arg : argv) pointers.push_back(arg.c_str());
    out_.str("");
    err_.str("");
    return RunPghaul(static_cast<int>(pointers.size()), pointers.data(), out_, err_, clock_);
  }

  FakeMigrations service_;
  TestServer server_{&service_};
  FakeClock clock_{kNow};
  std::ostringstream out_;
  std::ostringstream err_;
};

// Runs `pghaul args...` with PGHAUL_CONTROLLER set to `environment`, then unsets it again.
int RunWithEnvironment(const std::string& environment, std::vector<std::string> args,
                       std::ostream& out, std::ostream& err) {
  setenv("PGHAUL_CONTROLLER", environment.c_str(), /*overwrite=*/1);
  args.insert(args.begin(), {"pghaul", "--insecure"});
  std::vector<const char*> argv;
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  FakeClock clock(kNow);
  int exit_code = RunPghaul(static_cast<int>(argv.size()), argv.data(), out, err, clock);
  unsetenv("PGHAUL_CONTROLLER");
  return exit_code;
}

TEST_F(ControllerClientTest, ControllerAddressComesFromTheEnvironment) {
  EXPECT_EQ(RunWithEnvironment(server_.address(), {"agents"}, out_, err_), 0);
  EXPECT_THAT(out_.str(), HasSubstr("legacy-db1"));
  EXPECT_EQ(err_.str(), "");
}

TEST_F(ControllerClientTest, ControllerFlagOverridesTheEnvironment) {
  std::string unused = UnusedLoopbackAddress();
  EXPECT_EQ(RunWithEnvironment(unused, {"agents", "--controller", server_.address()}, out_, err_),
            0);
  EXPECT_THAT(out_.str(), HasSubstr("legacy-db1"));
  EXPECT_EQ(err_.str(), "");
}

TEST_F(ControllerClientTest, ListAgentsReturnsWhatTheControllerHas) {
  ControllerClient client(server_.address(), absl::Seconds(10));
  absl::StatusOr<v1::ListAgentsResponse> response = client.ListAgents();
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->agents_size(), 2);
  EXPECT_EQ(response->agents(0).agent_id(), "new-db2");
}

TEST_F(ControllerClientTest, AgentsCommandPrintsTheTableSortedById) {
  EXPECT_EQ(Run({"agents"}), 0);
  EXPECT_EQ(err_.str(), "");
  std::string table = out_.str();
  EXPECT_THAT(table, StartsWith("ID           HOST                          STATE     LAST SEEN"));
  EXPECT_THAT(table, HasSubstr("\nlegacy-db1   legacy-db1.example.internal   online    3s ago      "
                               "15.18        7301234567890123456   2.45         40.0 GiB\n"));
  EXPECT_THAT(table, HasSubstr("\nnew-db2      new-db2.example.internal      offline   3s ago      "
                               "down         -                     2.45         40.0 GiB\n"));
  EXPECT_LT(table.find("legacy-db1"), table.find("new-db2"));
}

TEST_F(ControllerClientTest, AgentsCommandPrintsJsonForScripts) {
  EXPECT_EQ(Run({"agents", "--output", "json"}), 0);
  std::string json = out_.str();
  EXPECT_THAT(json, StartsWith("{\"agents\":[{\"agent_id\":\"legacy-db1\",\"online\":true,"));
  EXPECT_THAT(json, HasSubstr("\"system_identifier\":\"7301234567890123456\""));
  EXPECT_EQ(std::count(json.begin(), json.end(), '\n'), 1);
}

TEST_F(ControllerClientTest, AgentsShowPrintsOneAgentsFacts) {
  EXPECT_EQ(Run({"agents", "show", "legacy-db1"}), 0);
  EXPECT_EQ(err_.str(), "");
  EXPECT_THAT(out_.str(), StartsWith("Agent\n  ID:"));
  EXPECT_THAT(out_.str(), HasSubstr("legacy-db1.example.internal"));
  EXPECT_THAT(out_.str(), HasSubstr("15.18 (Debian 15.18-0+deb12u1)"));
}

TEST_F(ControllerClientTest, AgentsShowJsonIsTheAgentInfoObject) {
  EXPECT_EQ(Run({"-o", "json", "agents", "show", "new-db2"}), 0);
  EXPECT_THAT(out_.str(), StartsWith("{\"agent_id\":\"new-db2\",\"online\":false,"));
  EXPECT_THAT(out_.str(), HasSubstr("\"reachable\":false"));
}

TEST_F(ControllerClientTest, AgentsShowOfAnUnknownIdIsADataErrorThatSaysWhatToRun) {
  EXPECT_EQ(Run({"agents", "show", "nope"}), 65);
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(err_.str(),
            "pghaul: no agent 'nope' is registered; `pghaul agents` lists the known ones\n");
}

TEST_F(ControllerClientTest, GetAgentPassesNotFoundThroughTheClient) {
  ControllerClient client(server_.address(), absl::Seconds(10));
  EXPECT_TRUE(absl::IsNotFound(client.GetAgent("nope").status()));
  absl::StatusOr<std::string> shown = RunShowAgent(client, "nope", OutputFormat::kTable, kNow);
  EXPECT_TRUE(absl::IsNotFound(shown.status()));
  EXPECT_EQ(ExitCodeForStatus(shown.status()), 65);
}

TEST_F(ControllerClientTest, UnavailableFromAConnectedControllerIsNotReportedAsUnreachable) {
  service_.FailListAgents(grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down"));
  EXPECT_EQ(Run({"agents"}), 69);
  EXPECT_THAT(err_.str(), HasSubstr("is unavailable (shutting down)"));
  EXPECT_THAT(err_.str(), Not(HasSubstr("cannot reach")));
}

TEST_F(ControllerClientTest, ControllerErrorsKeepTheirCodeAndMessage) {
  service_.FailListAgents(grpc::Status(grpc::StatusCode::INTERNAL, "registry corrupted"));
  EXPECT_EQ(Run({"agents"}), 70);
  EXPECT_EQ(err_.str(), "pghaul: registry corrupted\n");
}

TEST_F(ControllerClientTest, SlowControllerHitsTheTimeoutFlag) {
  service_.NeverAnswerListAgents();
  absl::Time start = absl::Now();
  EXPECT_EQ(Run({"--timeout", "1s", "agents"}), 69);
  EXPECT_LT(absl::Now() - start, absl::Seconds(9)) << "the 10s default was used";
  EXPECT_EQ(err_.str(),
            absl::StrCat("pghaul: the controller at ", server_.address(),
                         " did not answer ListAgents within 1s; retry, or allow more time with "
                         "--timeout\n"));
}

TEST(ControllerClientUnreachableTest, NamesTheAddressAndWhatToCheck) {
  std::string address = UnusedLoopbackAddress();
  ControllerClient client(address, absl::Seconds(10));
  absl::StatusOr<v1::ListAgentsResponse> response = client.ListAgents();
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(ExitCodeForStatus(response.status()), 69);
  EXPECT_EQ(response.status().message(),
            absl::StrCat("cannot reach the controller at ", address,
                         " (connection refused): is pghaul-controller running and listening "
                         "there? Set --controller or PGHAUL_CONTROLLER."));
}

TEST(ControllerClientUnreachableTest, CliPrintsOneLineOnStderrAndExits69) {
  std::string address = UnusedLoopbackAddress();
  std::vector<const char*> argv = {"pghaul", "--insecure", "--controller", address.c_str(),
                                   "agents", "show",       "legacy-db1"};
  std::ostringstream out;
  std::ostringstream err;
  FakeClock clock(kNow);
  EXPECT_EQ(RunPghaul(static_cast<int>(argv.size()), argv.data(), out, err, clock), 69);
  EXPECT_EQ(out.str(), "");
  EXPECT_THAT(err.str(), StartsWith(absl::StrCat("pghaul: cannot reach the controller at ", address,
                                                 " (connection refused)")));
  std::string error = err.str();
  EXPECT_EQ(std::count(error.begin(), error.end(), '\n'), 1);
}

TEST(ConnectFailureReasonTest, ShortensGrpcConnectionErrors) {
  auto reason = [](grpc::StatusCode code, const std::string& message) {
    return ConnectFailureReason(grpc::Status(code, message), absl::Seconds(10));
  };
  EXPECT_EQ(reason(grpc::StatusCode::UNAVAILABLE,
                   "failed to connect to all addresses; last error: UNKNOWN: "
                   "ipv4:127.0.0.1:7400: Failed to connect to remote host: Connection refused"),
            "connection refused");
  EXPECT_EQ(reason(grpc::StatusCode::UNAVAILABLE,
                   "DNS resolution failed for db.invalid:7400: C-ares status is not ARES_SUCCESS"),
            "the host name does not resolve");
  EXPECT_EQ(reason(grpc::StatusCode::UNAVAILABLE,
                   "failed to connect to all addresses; last error: UNAVAILABLE: "
                   "ipv4:127.0.0.1:8080: Failed parsing HTTP/2"),
            "something answers there, but not gRPC");
  EXPECT_EQ(reason(grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded"),
            "no answer within 10s");
  EXPECT_EQ(reason(grpc::StatusCode::UNAVAILABLE, " something new \n"), "something new");
}

TEST(ControllerClientWrongServerTest, ServerWithoutMigrationsIsAProtocolError) {
  v1::AgentLink::CallbackService agent_link_only;
  TestServer server(&agent_link_only);
  ASSERT_TRUE(server.started());
  ControllerClient client(server.address(), absl::Seconds(10));
  absl::Status status = client.ListAgents().status();
  EXPECT_TRUE(absl::IsUnimplemented(status)) << status;
  EXPECT_EQ(ExitCodeForStatus(status), 76);
  EXPECT_THAT(status.message(), HasSubstr("does not implement pghaul.v1.Migrations/ListAgents"));
}

}  // namespace
}  // namespace pghaul::cli
