// Mutual TLS end to end: certificates made by `pghaul certs`, a real pghaul-controller, a real
// pghaul-agent (as the postgres OS user) and the real CLI over loopback sockets; and the callers
// the controller must turn away.
#include <sys/wait.h>
#include <sysexits.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/version.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "pghaul/v1/agent_link.grpc.pb.h"
#include "pghaul/v1/migrations.grpc.pb.h"
#include "tests/integration/fixture/command.h"
#include "tests/integration/fixture/json_paths.h"
#include "tests/integration/fixture/pghaul_processes.h"
#include "tests/integration/fixture/temp_dir.h"
#include "tests/integration/fixture/test_support.h"
#include "tests/integration/fixture/wait_for.h"

namespace pghaul::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RequireRoot();
    if (HasFatalFailure()) return;
    PGH_ASSERT_OK_AND_ASSIGN(dir_, TempDir::Create("pghaul-tls-"));
    ca_dir_ = dir_->path() + "/ca";
    PGH_ASSERT_OK(Pghaul({"certs", "init", "--dir", ca_dir_}));
    PGH_ASSERT_OK(
        Pghaul({"certs", "issue", "--dir", ca_dir_, "--controller", "--name", "127.0.0.1"}));
    PGH_ASSERT_OK(Pghaul({"certs", "issue", "--dir", ca_dir_, "--cli", "alice"}));
    PGH_ASSERT_OK(Pghaul({"certs", "issue", "--dir", ca_dir_, "--agent", "db1"}));
  }

  void TearDown() override {
    if (!HasFailure()) return;
    std::vector<std::string> logs;
    if (controller_ != nullptr) logs.push_back(controller_->log_path());
    for (const auto& agent : agents_) logs.push_back(agent->log_path());
    PrintLogTails(logs);
  }

  // `pghaul args...` (no controller involved); OK on exit 0.
  absl::Status Pghaul(std::vector<std::string> args) {
    args.insert(args.begin(), PghaulBinary("cli/pghaul"));
    return RunChecked(args).status();
  }

  TlsFilePaths Files(const std::string& base) {
    return {ca_dir_ + "/ca.crt", ca_dir_ + "/" + base + ".crt", ca_dir_ + "/" + base + ".key"};
  }

  absl::Status StartController(bool tls, std::string extra_yaml = "") {
    ControllerOptions options;
    options.extra_yaml = std::move(extra_yaml);
    if (tls) options.tls = Files("controller");
    auto controller = PghaulController::Create(dir_->path() + "/controller", options);
    if (!controller.ok()) return controller.status();
    controller_ = *std::move(controller);
    return controller_->Start();
  }

  // An agent with id `agent_id` presenting the certificate of `cert_base` (copied into its own
  // directory, owned by postgres), or plaintext when `cert_base` is empty.
  absl::StatusOr<PghaulAgent*> StartAgent(const std::string& agent_id,
                                          const std::string& cert_base) {
    std::string agent_dir = dir_->path() + "/agent-" + agent_id;
    AgentOptions options;
    options.agent_id = agent_id;
    options.controller_address = controller_->address();
    options.pg_socket_dir = "/tmp";
    options.pg_port = 5499;  // nothing listens: facts say PostgreSQL is unreachable
    options.data_directory = agent_dir + "/data";
    if (!cert_base.empty()) {
      auto make = TempDir::Create("pghaul-tls-agent-");
      if (!make.ok()) return make.status();
      agent_tls_dirs_.push_back(*std::move(make));
      const std::string& tls_dir = agent_tls_dirs_.back()->path();
      TlsFilePaths source = Files(cert_base);
      options.tls = {tls_dir + "/ca.crt", tls_dir + "/agent.crt", tls_dir + "/agent.key"};
      for (auto [from, to] :
           {std::pair{source.ca, options.tls.ca}, std::pair{source.cert, options.tls.cert},
            std::pair{source.key, options.tls.key}}) {
        auto text = ReadFile(from);
        if (!text.ok()) return text.status();
        if (absl::Status s = WriteFile(to, *text); !s.ok()) return s;
        if (absl::Status s = ChownToUser(to, "postgres"); !s.ok()) return s;
      }
    }
    auto agent = PghaulAgent::Create(agent_dir, options);
    if (!agent.ok()) return agent.status();
    agents_.push_back(*std::move(agent));
    if (absl::Status s = agents_.back()->Start(); !s.ok()) return s;
    return agents_.back().get();
  }

  PghaulCli Cli(const std::string& cert_base, const std::string& ca = "") {
    PghaulCli cli(controller_->address());
    TlsFilePaths files = Files(cert_base);
    if (!ca.empty()) files.ca = ca;
    cli.UseTls(files);
    return cli;
  }

  std::shared_ptr<grpc::Channel> Channel(std::shared_ptr<grpc::ChannelCredentials> credentials) {
    return grpc::CreateChannel(controller_->address(), credentials);
  }

  grpc::SslCredentialsOptions SslOptions(const std::string& cert_base) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = ReadFile(ca_dir_ + "/ca.crt").value_or("");
    if (!cert_base.empty()) {
      options.pem_cert_chain = ReadFile(Files(cert_base).cert).value_or("");
      options.pem_private_key = ReadFile(Files(cert_base).key).value_or("");
    }
    return options;
  }

  std::unique_ptr<TempDir> dir_;
  std::string ca_dir_;
  std::unique_ptr<PghaulController> controller_;
  std::vector<std::unique_ptr<PghaulAgent>> agents_;
  std::vector<std::unique_ptr<TempDir>> agent_tls_dirs_;
};

TEST_F(TlsTest, ControllerAgentAndCliWorkOverMutualTls) {
  PGH_ASSERT_OK(StartController(/*tls=*/true));
  EXPECT_THAT(controller_->process()->ReadLog(), HasSubstr("TLS 1.3 with client certificates"));
  PGH_ASSERT_OK(ToStatus(StartAgent("db1", "agent-db1")));
  PghaulCli cli = Cli("cli-alice");
  PGH_EXPECT_OK(WaitFor("db1 online over TLS", absl::Seconds(20), [&]() -> absl::Status {
    auto agent = cli.FindAgent("db1");
    if (!agent.ok()) return agent.status();
    return At(*agent, "online") == true ? absl::OkStatus()
                                        : absl::UnavailableError("db1 is not online yet");
  }));
  EXPECT_THAT(agents_.back()->ReadLog(), HasSubstr("TLS 1.3 to the controller as CN=db1"));
  EXPECT_THAT(agents_.back()->ReadLog(), testing::Not(HasSubstr("TLS is off")));
}

TEST_F(TlsTest, AgentCertificateForAnotherIdIsRefused) {
  PGH_ASSERT_OK(StartController(/*tls=*/true));
  // The agent itself refuses to start with a certificate that does not name its id...
  PGH_ASSERT_OK_AND_ASSIGN(PghaulAgent * agent, StartAgent("db2", "agent-db1"));
  PGH_ASSERT_OK_AND_ASSIGN(int wait_status, agent->process()->WaitForExit(absl::Seconds(15)));
  EXPECT_TRUE(WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == EX_CONFIG) << wait_status;
  EXPECT_THAT(agent->ReadLog(), HasSubstr("(CN=db1) does not name agent 'db2'"));

  // ... and the controller refuses anyone who tries it on the wire.
  auto stub = v1::AgentLink::NewStub(Channel(grpc::SslCredentials(SslOptions("agent-db1"))));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
  auto stream = stub->Connect(&context);
  v1::AgentMessage hello;
  hello.mutable_hello()->set_agent_id("db2");
  hello.mutable_hello()->set_incarnation("i1");
  hello.mutable_hello()->mutable_versions()->set_protocol(kProtocolVersion);
  stream->Write(hello);
  v1::ControllerMessage reply;
  EXPECT_FALSE(stream->Read(&reply));
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  PGH_EXPECT_OK(WaitFor("the controller's refusal in its log", absl::Seconds(5), [&] {
    return absl::StrContains(controller_->process()->ReadLog(),
                             "refusing agent 'db2' from ipv4:127.0.0.1") &&
           absl::StrContains(controller_->process()->ReadLog(),
                             "its certificate names CN=db1, not the id it claims");
  }));
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult agents, Cli("cli-alice").Run({"agents"}));
  EXPECT_EQ(agents.exit_code, 0) << agents.stderr_text;
  EXPECT_THAT(agents.stdout_text, testing::Not(HasSubstr("db2")));
}

TEST_F(TlsTest, ClientsWithoutACliCertificateFromThisCaAreRefused) {
  PGH_ASSERT_OK(StartController(/*tls=*/true));

  // No certificate at all: the handshake fails.
  auto bare = v1::Migrations::NewStub(Channel(grpc::SslCredentials(SslOptions(""))));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ListAgentsResponse response;
  EXPECT_EQ(bare->ListAgents(&context, v1::ListAgentsRequest(), &response).error_code(),
            grpc::StatusCode::UNAVAILABLE);

  // A certificate from another CA (the client trusts both CAs, the controller only its own).
  std::string other_ca = dir_->path() + "/other-ca";
  PGH_ASSERT_OK(Pghaul({"certs", "init", "--dir", other_ca}));
  PGH_ASSERT_OK(Pghaul({"certs", "issue", "--dir", other_ca, "--cli", "mallory"}));
  std::string both = dir_->path() + "/both-cas.crt";
  PGH_ASSERT_OK(WriteFile(both, *ReadFile(ca_dir_ + "/ca.crt") + *ReadFile(other_ca + "/ca.crt")));
  PghaulCli foreign(controller_->address());
  foreign.UseTls({both, other_ca + "/cli-mallory.crt", other_ca + "/cli-mallory.key"});
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult refused, foreign.Run({"agents"}));
  EXPECT_EQ(refused.exit_code, 69) << refused.stderr_text;
  EXPECT_THAT(refused.stderr_text, HasSubstr("cannot reach the controller"));

  // An agent's certificate is not a CLI's.
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult agent_cert, Cli("agent-db1").Run({"agents"}));
  EXPECT_EQ(agent_cert.exit_code, 77) << agent_cert.stderr_text;
  EXPECT_THAT(agent_cert.stderr_text, HasSubstr("this call needs a CLI certificate"));

  // Plaintext.
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult plaintext,
                           PghaulCli(controller_->address()).Run({"agents"}));
  EXPECT_EQ(plaintext.exit_code, 69) << plaintext.stderr_text;
  EXPECT_THAT(plaintext.stderr_text, HasSubstr("pass --tls-ca, --tls-cert and --tls-key instead"));

  // The one that belongs.
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult alice, Cli("cli-alice").Run({"agents"}));
  EXPECT_EQ(alice.exit_code, 0) << alice.stderr_text;
}

TEST_F(TlsTest, RolesAndTokensDecideWhatEachCliUserMayDo) {
  PGH_ASSERT_OK(Pghaul({"certs", "issue", "--dir", ca_dir_, "--cli", "bob"}));
  const std::string token_file = dir_->path() + "/operator.token";
  PGH_ASSERT_OK_AND_ASSIGN(
      std::string made,
      RunChecked({PghaulBinary("cli/pghaul"), "token", "create", "--name", "release", "--role",
                  "operator", "--out", token_file, "-o", "json"}));
  const std::string config_line = nlohmann::json::parse(made)["config_line"];
  PGH_ASSERT_OK(StartController(
      /*tls=*/true, absl::StrCat("access:\n  admin: [alice]\n  read_only: [bob]\n  tokens:\n"
                                 "    - \"", config_line, "\"\n")));

  // Phase commands run --detach: they then call StartPhase (or AbortMigration) first, so that
  // the controller's answer about m1, which does not exist, shows whether the caller got past
  // its role check (NOT_FOUND, exit 65) or not (PERMISSION_DENIED, 77).

  // bob reads, and is refused anything that changes something, with the role it needs.
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult who, Cli("cli-bob").Run({"whoami"}));
  EXPECT_EQ(who.exit_code, 0) << who.stderr_text;
  EXPECT_EQ(who.stdout_text, "cli:bob (read-only)\n");
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult list, Cli("cli-bob").Run({"migrations"}));
  EXPECT_EQ(list.exit_code, 0) << list.stderr_text;
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult backup, Cli("cli-bob").Run({"backup", "m1", "--detach"}));
  EXPECT_EQ(backup.exit_code, 77) << backup.stderr_text;
  EXPECT_THAT(backup.stderr_text, HasSubstr("cli:bob (read-only) may not start backup of "
                                            "migration m1: it needs the operator role"));

  // bob's certificate with the operator token: the token names the caller.
  PGH_ASSERT_OK_AND_ASSIGN(who, Cli("cli-bob").Run({"--token-file", token_file, "whoami"}));
  EXPECT_EQ(who.stdout_text, "token:release (operator)\n") << who.stderr_text;
  // Allowed to start a backup: the controller gets as far as finding no such migration.
  PGH_ASSERT_OK_AND_ASSIGN(backup,
                           Cli("cli-bob").Run({"--token-file", token_file, "backup", "m1", "--detach"}));
  EXPECT_EQ(backup.exit_code, 65) << backup.stderr_text;
  EXPECT_THAT(backup.stderr_text, Not(HasSubstr("may not")));
  for (std::vector<std::string> command :
       {std::vector<std::string>{"cutover", "m1", "--detach"},
        {"abort", "m1", "--detach"},
        {"run", "m1", "--detach"}}) {
    command.insert(command.begin(), {"--token-file", token_file});
    PGH_ASSERT_OK_AND_ASSIGN(CommandResult refused, Cli("cli-bob").Run(command));
    EXPECT_EQ(refused.exit_code, 77) << command[2] << ": " << refused.stderr_text;
    EXPECT_THAT(refused.stderr_text, HasSubstr("it needs the admin role")) << command[2];
  }

  // alice is admin; a token the controller does not know is refused, whoever presents it.
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult cutover, Cli("cli-alice").Run({"cutover", "m1", "--detach"}));
  EXPECT_EQ(cutover.exit_code, 65) << cutover.stderr_text;
  const std::string stranger = dir_->path() + "/stranger.token";
  PGH_ASSERT_OK(Pghaul({"token", "create", "--name", "x", "--role", "admin", "--out", stranger}));
  PGH_ASSERT_OK_AND_ASSIGN(who, Cli("cli-alice").Run({"--token-file", stranger, "whoami"}));
  EXPECT_EQ(who.exit_code, 77) << who.stderr_text;
  EXPECT_THAT(who.stderr_text, HasSubstr("not one of this controller's access.tokens"));

  // The controller's log says who did what, and holds no token.
  PGH_ASSERT_OK_AND_ASSIGN(std::string log, ReadFile(controller_->log_path()));
  EXPECT_THAT(log, HasSubstr("start cutover of migration m1 by cli:alice (admin): NOT_FOUND"));
  EXPECT_THAT(log, HasSubstr("start backup of migration m1 by token:release (operator)"));
  EXPECT_THAT(log, HasSubstr("refusing a CLI call"));
  for (const std::string& file : {token_file, stranger}) {
    PGH_ASSERT_OK_AND_ASSIGN(std::string token, ReadFile(file));
    EXPECT_THAT(log, Not(HasSubstr(std::string(absl::StripAsciiWhitespace(token)))));
  }
}

TEST_F(TlsTest, ControllerSpeaksTls13Only) {
  PGH_ASSERT_OK(StartController(/*tls=*/true));
  TlsFilePaths alice = Files("cli-alice");
  CommandOptions options;
  options.timeout = absl::Seconds(20);
  auto handshake = [&](const std::string& version) {
    return RunCommand(
        {"/usr/bin/openssl", "s_client", "-connect", controller_->address(), version, "-CAfile",
         alice.ca, "-cert", alice.cert, "-key", alice.key, "-verify_return_error"},
        options);
  };
  // s_client's exit status also reflects how the server closed the connection afterwards, so the
  // handshake's outcome is read from what it printed.
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult tls13, handshake("-tls1_3"));
  EXPECT_THAT(tls13.stdout_text, HasSubstr("New, TLSv1.3, Cipher is"))
      << tls13.stdout_text << tls13.stderr_text;
  EXPECT_THAT(tls13.stdout_text, HasSubstr("Verify return code: 0 (ok)"));
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult tls12, handshake("-tls1_2"));
  EXPECT_NE(tls12.exit_code, 0) << tls12.stdout_text;
  EXPECT_THAT(tls12.stdout_text, HasSubstr("New, (NONE), Cipher is (NONE)"));
  // The controller itself refused the version (gRPC logs OpenSSL's reason).
  PGH_EXPECT_OK(WaitFor("the controller's handshake error", absl::Seconds(5), [&] {
    return absl::StrContains(controller_->process()->ReadLog(), "unsupported protocol");
  }));
}

TEST_F(TlsTest, InsecureIsWarnedAboutAtEveryStart) {
  PGH_ASSERT_OK(StartController(/*tls=*/false));
  PGH_ASSERT_OK_AND_ASSIGN(PghaulAgent * agent, StartAgent("db1", ""));
  PGH_EXPECT_OK(WaitFor("the agent's warning", absl::Seconds(15), [&] {
    return absl::StrContains(agent->ReadLog(), "TLS is off (controller.insecure: true)");
  }));
  EXPECT_THAT(controller_->process()->ReadLog(), HasSubstr("TLS is off (insecure: true)"));
  PGH_ASSERT_OK(controller_->process()->Stop());
  PGH_ASSERT_OK(controller_->Start());
  std::string log = controller_->process()->ReadLog();
  size_t first = log.find("TLS is off (insecure: true)");
  ASSERT_NE(first, std::string::npos);
  EXPECT_NE(log.find("TLS is off (insecure: true)", first + 1), std::string::npos)
      << "one warning per start";
  EXPECT_THAT(log, HasSubstr("warning controller: TLS is off (insecure: true)"));
}

}  // namespace
}  // namespace pghaul::integration
