// Mutual TLS between in-process gRPC servers and clients with certificates from `pghaul certs`'
// own code: the file checks at start-up, and who the controller admits on each service.
#include "common/tls_credentials.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/access_tokens.h"
#include "common/clock.h"
#include "common/files.h"
#include "common/grpc_status.h"
#include "common/version.h"
#include "controller/agent_link_service.h"
#include "controller/agent_registry.h"
#include "controller/migrations_service.h"
#include "controller/sqlite_db.h"
#include "controller/task_tracker.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "pghaul/v1/agent_link.grpc.pb.h"
#include "pghaul/v1/migrations.grpc.pb.h"

namespace pghaul {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string MakeTempDir() {
  char pattern[] = "/tmp/pghaul-tls-test-XXXXXX";
  return mkdtemp(pattern);
}

// A CA in a temporary directory and certificates issued by it, removed at the end.
class Pki {
 public:
  Pki() : dir_(MakeTempDir()) { EXPECT_TRUE(CreateCertificateAuthority(dir_, 30, false).ok()); }
  ~Pki() { std::filesystem::remove_all(dir_); }

  TlsFilePaths Issue(CertificateKind kind, const std::string& name,
                     std::vector<std::string> hosts = {}) {
    CertificateRequest request;
    request.kind = kind;
    request.name = name;
    request.hosts = std::move(hosts);
    absl::StatusOr<WrittenFiles> written = IssueCertificate(dir_, request, /*force=*/true);
    EXPECT_TRUE(written.ok()) << written.status();
    return {written->ca_certificate, written->certificate, written->key};
  }
  TlsMaterial Load(const TlsFilePaths& paths) {
    absl::StatusOr<TlsMaterial> material = LoadTlsFiles(paths);
    EXPECT_TRUE(material.ok()) << material.status();
    return material.ok() ? *material : TlsMaterial{};
  }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

TEST(TlsFilesTest, LoadsIssuedFilesAndReportsTheirNames) {
  Pki pki;
  absl::StatusOr<TlsMaterial> agent =
      LoadTlsFiles(pki.Issue(CertificateKind::kAgent, "legacy-db1"));
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_EQ(agent->certificate.names.common_name, "legacy-db1");
  EXPECT_GT(agent->certificate.not_after, absl::Now() + absl::Hours(24 * 800));

  absl::StatusOr<TlsMaterial> controller =
      LoadTlsFiles(pki.Issue(CertificateKind::kController, "", {"ctl.example.com", "127.0.0.1"}));
  ASSERT_TRUE(controller.ok()) << controller.status();
  EXPECT_EQ(controller->certificate.names.common_name, "controller:ctl.example.com");
  EXPECT_THAT(controller->certificate.names.alternative_names,
              testing::ElementsAre("ctl.example.com", "127.0.0.1"));
  EXPECT_EQ(pki.Load(pki.Issue(CertificateKind::kCli, "alice")).certificate.names.common_name,
            "cli:alice");
}

TEST(TlsFilesTest, NamesTheSettingAndPathOfAMissingFile) {
  Pki pki;
  TlsFilePaths paths = pki.Issue(CertificateKind::kAgent, "db1");
  paths.key = pki.dir() + "/nope.key";
  absl::Status status = LoadTlsFiles(paths, {"--tls-ca", "--tls-cert", "--tls-key"}).status();
  EXPECT_TRUE(absl::IsNotFound(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("--tls-key"));
  EXPECT_THAT(status.message(), HasSubstr(paths.key));
}

TEST(TlsFilesTest, RefusesAKeyThatIsNotTheCertificatesOwn) {
  Pki pki;
  TlsFilePaths db1 = pki.Issue(CertificateKind::kAgent, "db1");
  TlsFilePaths db2 = pki.Issue(CertificateKind::kAgent, "db2");
  db1.key = db2.key;
  absl::Status status = LoadTlsFiles(db1).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("tls.key (" + db2.key +
                                          ") is not the private key of the certificate in "
                                          "tls.cert"));
}

TEST(TlsFilesTest, RefusesACertificateFromAnotherCaAndFilesThatAreNotPem) {
  Pki ours;
  Pki theirs;
  TlsFilePaths paths = theirs.Issue(CertificateKind::kAgent, "db1");
  paths.ca = ours.dir() + "/ca.crt";
  absl::Status status = LoadTlsFiles(paths).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("does not check out against tls.ca"));

  TlsFilePaths garbage = ours.Issue(CertificateKind::kAgent, "db1");
  ASSERT_TRUE(WriteFileAtomically(garbage.cert, "not a certificate\n").ok());
  EXPECT_THAT(LoadTlsFiles(garbage).status().message(), HasSubstr("holds no PEM certificate"));
}

TEST(TlsFilesTest, RefusesAnExpiredCertificate) {
  Pki pki;
  TlsFilePaths paths = pki.Issue(CertificateKind::kAgent, "db1");
  absl::Status status = LoadTlsFiles(paths, {}, absl::Now() + absl::Hours(24 * 900)).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("expired"));
}

TEST(CertificateNamesTest, AnAgentCertificateMustNameTheClaimedId) {
  CertificateNames db1{"db1", {}};
  EXPECT_TRUE(CheckAgentCertificate(db1, "db1").ok());
  absl::Status status = CheckAgentCertificate(db1, "db2");
  EXPECT_TRUE(absl::IsPermissionDenied(status));
  EXPECT_THAT(status.message(), HasSubstr("(CN=db1) does not name agent 'db2'"));
  EXPECT_TRUE(CheckAgentCertificate(CertificateNames{"x", {"db2"}}, "db2").ok());
  EXPECT_FALSE(CheckAgentCertificate(CertificateNames{}, "db2").ok());
  EXPECT_FALSE(CheckAgentCertificate(CertificateNames{"cli:db2", {}}, "db2").ok());
}

TEST(CertificateNamesTest, OnlyACliNameMakesACliCaller) {
  EXPECT_EQ(*CliUserOf(CertificateNames{"cli:alice", {}}), "alice");
  EXPECT_EQ(*CliUserOf(CertificateNames{"ops", {"cli:bob"}}), "bob");
  for (const CertificateNames& names :
       {CertificateNames{"db1", {}}, CertificateNames{"controller:ctl", {"ctl"}},
        CertificateNames{"cli:", {}}, CertificateNames{"cli:Bad Name", {}}, CertificateNames{}}) {
    absl::StatusOr<std::string> user = CliUserOf(names);
    EXPECT_TRUE(absl::IsPermissionDenied(user.status())) << names.common_name;
  }
}

// A controller's two services on 127.0.0.1 over mutual TLS, requiring certificates.
class MutualTlsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RequireTls13ForProcess().ok());
    TlsMaterial server = pki_.Load(pki_.Issue(CertificateKind::kController, "", {"127.0.0.1"}));
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", MutualTlsServerCredentials(server), &port_);
    builder.RegisterService(&link_);
    builder.RegisterService(&migrations_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override { server_->Shutdown(std::chrono::system_clock::now()); }

  std::shared_ptr<grpc::Channel> Channel(std::shared_ptr<grpc::ChannelCredentials> credentials) {
    return grpc::CreateChannel("127.0.0.1:" + std::to_string(port_), credentials);
  }
  std::shared_ptr<grpc::Channel> Channel(const TlsFilePaths& paths) {
    return Channel(MutualTlsChannelCredentials(pki_.Load(paths)));
  }

  // Opens AgentLink.Connect, says Hello as `agent_id`, and returns the first message's kind or
  // the status the stream ended with.
  grpc::Status Hello(std::shared_ptr<grpc::Channel> channel, const std::string& agent_id,
                     v1::ControllerMessage* first) {
    auto stub = v1::AgentLink::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto stream = stub->Connect(&context);
    v1::AgentMessage hello;
    hello.mutable_hello()->set_agent_id(agent_id);
    hello.mutable_hello()->set_incarnation("i1");
    hello.mutable_hello()->mutable_versions()->set_protocol(kProtocolVersion);
    stream->Write(hello);
    if (stream->Read(first)) {
      context.TryCancel();
      stream->Finish().ok();
      return grpc::Status::OK;
    }
    return stream->Finish();
  }

  static constexpr absl::string_view kCiToken = "pghaul_test-token-of-the-ci-user";

  // Asks who the caller is; `token` "" sends none.
  absl::StatusOr<v1::WhoAmIResponse> WhoAmI(std::shared_ptr<grpc::Channel> channel,
                                            absl::string_view token = "") {
    auto stub = v1::Migrations::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token.empty()) context.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    v1::WhoAmIResponse response;
    grpc::Status status = stub->WhoAmI(&context, v1::WhoAmIRequest(), &response);
    if (!status.ok()) return FromGrpcStatus(status);
    return response;
  }

  // Starts `command` of a migration; the controller has no migrations, so a caller allowed to
  // gets UNIMPLEMENTED, one that is not PERMISSION_DENIED.
  grpc::Status StartPhase(std::shared_ptr<grpc::Channel> channel, const std::string& command,
                          bool dry_run = false) {
    auto stub = v1::Migrations::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::StartPhaseRequest request;
    request.set_migration_id("m1");
    request.set_command(command);
    request.set_dry_run(dry_run);
    v1::StartPhaseResponse response;
    return stub->StartPhase(&context, request, &response);
  }

  grpc::Status ListAgents(std::shared_ptr<grpc::Channel> channel) {
    auto stub = v1::Migrations::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListAgentsResponse response;
    return stub->ListAgents(&context, v1::ListAgentsRequest(), &response);
  }

  Pki pki_;
  std::unique_ptr<controller::SqliteDb> db_ = *controller::SqliteDb::Open(":memory:");
  std::unique_ptr<controller::TaskTracker> tasks_ = *controller::TaskTracker::Open(db_.get());
  controller::AgentRegistry registry_{Clock::Real(), absl::Seconds(1), 3};
  controller::AgentLinkService link_{&registry_, tasks_.get(), "ctl", absl::Seconds(1),
                                     /*require_certificates=*/true};
  // alice is admin, bob read-only, others operator; the token "ci" is admin.
  controller::AccessPolicy access_{
      {.configured = true,
       .default_role = controller::Role::kOperator,
       .users = {{"alice", controller::Role::kAdmin}, {"bob", controller::Role::kReadOnly}},
       .tokens = {{"ci", controller::Role::kAdmin, AccessTokenDigest(kCiToken)}}},
      /*require_cli_certificates=*/true};
  controller::MigrationsService migrations_{&registry_, tasks_.get(), nullptr, &access_};
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(MutualTlsServerTest, AdmitsAnAgentWhoseCertificateNamesItsId) {
  v1::ControllerMessage first;
  grpc::Status status = Hello(Channel(pki_.Issue(CertificateKind::kAgent, "db1")), "db1", &first);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(first.has_welcome());
  EXPECT_TRUE(registry_.Get("db1").ok());
}

TEST_F(MutualTlsServerTest, RefusesAnAgentClaimingAnotherId) {
  v1::ControllerMessage first;
  grpc::Status status = Hello(Channel(pki_.Issue(CertificateKind::kAgent, "db1")), "db2", &first);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("(CN=db1) does not name agent 'db2'"));
  EXPECT_FALSE(registry_.Get("db2").ok());
}

TEST_F(MutualTlsServerTest, RefusesACliCertificateOnTheAgentLink) {
  v1::ControllerMessage first;
  grpc::Status status = Hello(Channel(pki_.Issue(CertificateKind::kCli, "alice")), "alice", &first);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(MutualTlsServerTest, ServesACliCertificateAndRefusesAnAgentOne) {
  grpc::Status cli = ListAgents(Channel(pki_.Issue(CertificateKind::kCli, "alice")));
  EXPECT_TRUE(cli.ok()) << cli.error_message();
  grpc::Status agent = ListAgents(Channel(pki_.Issue(CertificateKind::kAgent, "db1")));
  EXPECT_EQ(agent.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(agent.error_message(), HasSubstr("this call needs a CLI certificate"));
}

TEST_F(MutualTlsServerTest, EachCliCertificateGetsItsRoleAndNoMore) {
  auto bob = Channel(pki_.Issue(CertificateKind::kCli, "bob"));
  absl::StatusOr<v1::WhoAmIResponse> who = WhoAmI(bob);
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->caller(), "cli:bob");
  EXPECT_EQ(who->role(), "read-only");
  EXPECT_TRUE(ListAgents(bob).ok());
  EXPECT_EQ(StartPhase(bob, "verify", /*dry_run=*/true).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);  // a dry run is read-only
  grpc::Status refused = StartPhase(bob, "verify");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(refused.error_message(),
              HasSubstr("cli:bob (read-only) may not start verify of migration m1: it needs the "
                        "operator role; an admin can list bob under access.operator"));

  auto carol = Channel(pki_.Issue(CertificateKind::kCli, "carol"));  // the default role
  EXPECT_EQ(StartPhase(carol, "verify").error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(StartPhase(carol, "cutover").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(StartPhase(carol, "run").error_code(), grpc::StatusCode::PERMISSION_DENIED);

  auto alice = Channel(pki_.Issue(CertificateKind::kCli, "alice"));
  EXPECT_EQ(StartPhase(alice, "cutover").error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(MutualTlsServerTest, ATokenNamesTheCallerAndAnUnknownOneIsRefused) {
  auto bob = Channel(pki_.Issue(CertificateKind::kCli, "bob"));
  absl::StatusOr<v1::WhoAmIResponse> who = WhoAmI(bob, kCiToken);
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->caller(), "token:ci");
  EXPECT_EQ(who->role(), "admin");

  absl::StatusOr<v1::WhoAmIResponse> unknown = WhoAmI(bob, "pghaul_a-token-nobody-made-here");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(unknown.status().message(), Not(HasSubstr("nobody-made")));
  // A token does not replace the certificate: an agent's certificate is refused even with one.
  auto agent = Channel(pki_.Issue(CertificateKind::kAgent, "db1"));
  EXPECT_EQ(WhoAmI(agent, kCiToken).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(MutualTlsServerTest, RefusesClientsWithoutACertificateOrFromAnotherCaOrInPlaintext) {
  grpc::SslCredentialsOptions no_certificate;
  no_certificate.pem_root_certs = pki_.Load(pki_.Issue(CertificateKind::kCli, "alice")).ca_pem;
  EXPECT_EQ(ListAgents(Channel(grpc::SslCredentials(no_certificate))).error_code(),
            grpc::StatusCode::UNAVAILABLE);

  Pki other;
  TlsMaterial foreign = other.Load(other.Issue(CertificateKind::kCli, "alice"));
  foreign.ca_pem = no_certificate.pem_root_certs;  // trusts our CA, presents theirs
  EXPECT_EQ(ListAgents(Channel(MutualTlsChannelCredentials(foreign))).error_code(),
            grpc::StatusCode::UNAVAILABLE);

  EXPECT_EQ(ListAgents(Channel(grpc::InsecureChannelCredentials())).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(MutualTlsServerTest, AControllerCertificateCannotServeAsAClientOne) {
  // Its extended key usage is serverAuth only: OpenSSL refuses it in the handshake, before any
  // name is looked at.
  grpc::Status status =
      ListAgents(Channel(pki_.Issue(CertificateKind::kController, "", {"127.0.0.1"})));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

TEST_F(MutualTlsServerTest, ClientRefusesAServerCertificateForAnotherName) {
  TlsFilePaths cli = pki_.Issue(CertificateKind::kCli, "alice");
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("elsewhere.example.com");
  auto channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port_),
                                           MutualTlsChannelCredentials(pki_.Load(cli)), args);
  EXPECT_EQ(ListAgents(channel).error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace pghaul
