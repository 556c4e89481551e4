#include "cli/controller_client.h"

#include "common/access_tokens.h"

#include <chrono>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/version.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace pghaul::cli {
namespace {

grpc::ChannelArguments TargetNameArguments(const std::string& tls_server_name) {
  grpc::ChannelArguments args;
  if (!tls_server_name.empty()) args.SetSslTargetNameOverride(tls_server_name);
  return args;
}

}  // namespace

ControllerClient::ControllerClient(std::string address, absl::Duration timeout)
    : ControllerClient(std::move(address), timeout, nullptr) {}

ControllerClient::ControllerClient(std::string address, absl::Duration timeout,
                                   std::shared_ptr<grpc::ChannelCredentials> credentials,
                                   const std::string& tls_server_name)
    : address_(std::move(address)),
      timeout_(timeout),
      tls_(credentials != nullptr),
      channel_(grpc::CreateCustomChannel(address_,
                                         tls_ ? credentials : grpc::InsecureChannelCredentials(),
                                         TargetNameArguments(tls_server_name))),
      stub_(v1::Migrations::NewStub(channel_)) {}

absl::StatusOr<v1::ListAgentsResponse> ControllerClient::ListAgents() {
  grpc::ClientContext context;
  PrepareContext(&context);
  v1::ListAgentsResponse response;
  grpc::Status status = stub_->ListAgents(&context, v1::ListAgentsRequest(), &response);
  if (!status.ok()) return CallError(status, "ListAgents");
  return response;
}

absl::StatusOr<v1::AgentInfo> ControllerClient::GetAgent(absl::string_view agent_id) {
  grpc::ClientContext context;
  PrepareContext(&context);
  v1::GetAgentRequest request;
  request.set_agent_id(std::string(agent_id));
  v1::AgentInfo response;
  grpc::Status status = stub_->GetAgent(&context, request, &response);
  if (!status.ok()) return CallError(status, "GetAgent");
  return response;
}

absl::StatusOr<v1::TaskInfo> ControllerClient::SubmitTask(absl::string_view agent_id,
                                                          const v1::Task& task) {
  grpc::ClientContext context;
  PrepareContext(&context);
  v1::SubmitTaskRequest request;
  request.set_agent_id(std::string(agent_id));
  *request.mutable_task() = task;
  v1::TaskInfo response;
  grpc::Status status = stub_->SubmitTask(&context, request, &response);
  if (status.ok()) return response;
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
      channel_->GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY &&
      !task.task_id().empty()) {
    // The request may have arrived and the answer been late: say how to find out, and that
    // trying again is safe (SubmitTask is idempotent on the task id).
    return absl::DeadlineExceededError(absl::StrCat(
        "the controller at ", address_, " did not answer SubmitTask within ",
        absl::FormatDuration(timeout_), "; task ", task.task_id(),
        " may have been submitted: `pghaul task show ", task.task_id(),
        "` tells, and submitting again with --id ", task.task_id(), " does not run it twice"));
  }
  return CallError(status, "SubmitTask");
}

absl::StatusOr<v1::TaskInfo> ControllerClient::GetTask(absl::string_view task_id,
                                                       uint32_t recent_events) {
  grpc::ClientContext context;
  PrepareContext(&context);
  v1::GetTaskRequest request;
  request.set_task_id(std::string(task_id));
  request.set_recent_events(recent_events);
  v1::TaskInfo response;
  grpc::Status status = stub_->GetTask(&context, request, &response);
  if (!status.ok()) return CallError(status, "GetTask");
  return response;
}

absl::StatusOr<v1::ListTasksResponse> ControllerClient::ListTasks(absl::string_view agent_id,
                                                                  uint32_t limit) {
  grpc::ClientContext context;
  PrepareContext(&context);
  v1::ListTasksRequest request;
  request.set_agent_id(std::string(agent_id));
  request.set_limit(limit);
  v1::ListTasksResponse response;
  grpc::Status status = stub_->ListTasks(&context, request, &response);
  if (!status.ok()) return CallError(status, "ListTasks");
  return response;
}

absl::StatusOr<v1::TaskInfo> ControllerClient::CancelTask(absl::string_view task_id) {
  grpc::ClientContext context;
  PrepareContext(&context);
  v1::CancelTaskRequest request;
  request.set_task_id(std::string(task_id));
  v1::TaskInfo response;
  grpc::Status status = stub_->CancelTask(&context, request, &response);
  if (status.ok()) return response;
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
      channel_->GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY) {
    // The controller answered: it is the agent that cannot be reached, and the controller's
    // message says so ("agent db1 is offline; cancel again when it is back").
    return absl::UnavailableError(
        absl::StrCat("the controller could not pass the cancel on: ", status.error_message()));
  }
  return CallError(status, "CancelTask");
}

absl::StatusOr<v1::MigrationInfo> ControllerClient::ApplyPlan(const v1::ApplyPlanRequest& request) {
  grpc::ClientContext context;
  PrepareContext(&context);
  v1::MigrationInfo response;
  grpc::Status status = stub_->ApplyPlan(&context, request, &response);
  if (!status.ok()) return CallError(status, "ApplyPlan");
  return response;
}

absl::StatusOr<v1::ListMigrationsResponse> ControllerClient::ListMigrations() {
  grpc::ClientContext context;
  PrepareContext(&context);
  v1::ListMigrationsResponse response;
  grpc::Status status = stub_->ListMigrations(&context, v1::ListMigrationsRequest(), &response);
  if (!status.ok()) return CallError(status, "ListMigrations");
  return response;
}

absl::StatusOr<v1::MigrationInfo> ControllerClient::GetMigration(absl::string_view migration_id,
                                                                 uint64_t events_after,
                                                                 uint32_t max_events) {
  grpc::ClientContext context;
  PrepareContext(&context);
  v1::GetMigrationRequest request;
  request.set_migration_id(std::string(migration_id));
  request.set_events_after(events_after);
  request.set_max_events(max_events);
  v1::MigrationInfo response;
  grpc::Status status = stub_->GetMigration(&context, request, &response);
  if (!status.ok()) return CallError(status, "GetMigration");
  return response;
}

absl::StatusOr<v1::StartPhaseResponse> ControllerClient::StartPhase(
    const v1::StartPhaseRequest& request) {
  grpc::ClientContext context;
  PrepareContext(&context);
  v1::StartPhaseResponse response;
  grpc::Status status = stub_->StartPhase(&context, request, &response);
  if (status.ok()) return response;
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
      channel_->GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY && !request.dry_run()) {
    // The request may have arrived and only the answer been late.
    return absl::DeadlineExceededError(absl::StrCat(
        "the controller at ", address_, " did not answer StartPhase within ",
        absl::FormatDuration(timeout_), "; the ", request.command(), " of ", request.migration_id(),
        " may have started: `pghaul status ", request.migration_id(), "` tells"));
  }
  return CallError(status, "StartPhase");
}

absl::StatusOr<v1::MigrationInfo> ControllerClient::AbortMigration(absl::string_view migration_id) {
  grpc::ClientContext context;
  PrepareContext(&context);
  v1::AbortMigrationRequest request;
  request.set_migration_id(std::string(migration_id));
  v1::MigrationInfo response;
  grpc::Status status = stub_->AbortMigration(&context, request, &response);
  if (!status.ok()) return CallError(status, "AbortMigration");
  return response;
}

void ControllerClient::PrepareContext(grpc::ClientContext* context) const {
  context->set_deadline(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(timeout_));
  if (!token_.empty()) {
    context->AddMetadata(std::string(kAuthorizationMetadataKey),
                         absl::StrCat(kBearerPrefix, token_));
  }
}

absl::StatusOr<v1::WhoAmIResponse> ControllerClient::WhoAmI() {
  grpc::ClientContext context;
  PrepareContext(&context);
  v1::WhoAmIResponse response;
  grpc::Status status = stub_->WhoAmI(&context, v1::WhoAmIRequest(), &response);
  if (!status.ok()) return CallError(status, "WhoAmI");
  return response;
}

absl::Status ControllerClient::CallError(const grpc::Status& status, absl::string_view method) {
  absl::StatusCode code = FromGrpcStatus(status).code();
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      // A channel that is READY reached the controller: the error then came from it (or it was
      // too slow), which calls for different advice than a connection that never came up.
      if (channel_->GetState(/*try_to_connect=*/false) != GRPC_CHANNEL_READY) {
        return absl::Status(code,
                            absl::StrCat("cannot reach the controller at ", address_, " (",
                                         ConnectFailureReason(status, timeout_),
                                         "): is pghaul-controller running and listening there? Set "
                                         "--controller or PGHAUL_CONTROLLER.",
                                         TlsHint(status, tls_)));
      }
      if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
        return absl::Status(code, absl::StrCat("the controller at ", address_, " did not answer ",
                                               method, " within ", absl::FormatDuration(timeout_),
                                               "; retry, or allow more time with --timeout"));
      }
      return absl::Status(code, absl::StrCat("the controller at ", address_, " is unavailable (",
                                             status.error_message(), "); retry later"));
    case grpc::StatusCode::UNIMPLEMENTED:
      return absl::Status(code,
                          absl::StrCat("the server at ", address_,
                                       " does not implement pghaul.v1.Migrations/", method,
                                       ": is it a pghaul-controller of a version compatible with "
                                       "this pghaul (",
                                       kPghaulVersion, ")?"));
    default:
      return absl::Status(code, status.error_message());
  }
}

std::string TlsHint(const grpc::Status& status, bool tls) {
  const std::string lowered = absl::AsciiStrToLower(status.error_message());
  if (tls && (absl::StrContains(lowered, "handshake") || absl::StrContains(lowered, "ssl") ||
              absl::StrContains(lowered, "tls") || absl::StrContains(lowered, "certificate"))) {
    return " The TLS handshake failed: the controller must use TLS with a certificate from the CA "
           "in --tls-ca that names the address dialled (or --tls-server-name), and accept the "
           "certificate in --tls-cert (same CA, a CLI certificate).";
  }
  if (!tls && (absl::StrContains(lowered, "socket closed") ||
               absl::StrContains(lowered, "connection reset") ||
               absl::StrContains(lowered, "failed parsing http/2"))) {
    return " A controller that uses TLS closes plaintext connections: pass --tls-ca, --tls-cert "
           "and --tls-key instead of --insecure.";
  }
  return "";
}

std::string ConnectFailureReason(const grpc::Status& status, absl::Duration timeout) {
  const std::string& message = status.error_message();
  const std::string lowered = absl::AsciiStrToLower(message);
  struct KnownReason {
    absl::string_view needle;
    absl::string_view reason;
  };
  static constexpr KnownReason kKnownReasons[] = {
      {"connection refused", "connection refused"},
      {"dns resolution failed", "the host name does not resolve"},
      {"name or service not known", "the host name does not resolve"},
      {"no route to host", "no route to host"},
      {"network is unreachable", "network unreachable"},
      {"failed parsing http/2", "something answers there, but not gRPC"},
      {"connection reset", "the connection was reset: is it a gRPC server?"},
      {"socket closed", "the connection was closed: is it a gRPC server?"},
  };
  for (const KnownReason& known : kKnownReasons) {
    if (absl::StrContains(lowered, known.needle)) return std::string(known.reason);
  }
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::StrCat("no answer within ", absl::FormatDuration(timeout));
  }
  std::string trimmed(absl::StripAsciiWhitespace(message));
  return trimmed.empty() ? "no reason given" : trimmed;
}

}  // namespace pghaul::cli
