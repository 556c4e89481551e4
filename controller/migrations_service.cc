#include "controller/migrations_service.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/identifiers.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tls_credentials.h"

namespace pghaul::controller {

grpc::ServerUnaryReactor* MigrationsService::Respond(
    grpc::CallbackServerContext* context, const std::function<absl::Status()>& body) const {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (require_cli_certificates_) {
    CertificateNames names = PeerCertificateNames(*context->auth_context());
    if (absl::StatusOr<std::string> user = CliUserOf(names); !user.ok()) {
      PGH_LOG_WARN("refusing a CLI call from {}: {}", context->peer(), user.status().message());
      reactor->Finish(ToGrpcStatus(user.status()));
      return reactor;
    }
  }
  reactor->Finish(ToGrpcStatus(body()));
  return reactor;
}

grpc::ServerUnaryReactor* MigrationsService::ListAgents(grpc::CallbackServerContext* context,
                                                        const v1::ListAgentsRequest* request,
                                                        v1::ListAgentsResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    for (v1::AgentInfo& info : registry_->List()) *response->add_agents() = std::move(info);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* MigrationsService::GetAgent(grpc::CallbackServerContext* context,
                                                      const v1::GetAgentRequest* request,
                                                      v1::AgentInfo* response) {
  return Respond(context, [&]() -> absl::Status {
    PGH_RETURN_IF_ERROR(ValidateAgentId(request->agent_id()));
    PGH_ASSIGN_OR_RETURN(*response, registry_->Get(request->agent_id()));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* MigrationsService::SubmitTask(grpc::CallbackServerContext* context,
                                                        const v1::SubmitTaskRequest* request,
                                                        v1::TaskInfo* response) {
  return Respond(context, [&]() -> absl::Status {
    PGH_RETURN_IF_ERROR(registry_->Get(request->agent_id()).status());
    PGH_ASSIGN_OR_RETURN(v1::Task task, tasks_->Register(request->agent_id(), request->task()));
    if (auto session = registry_->Session(request->agent_id()); session != nullptr) {
      v1::ControllerMessage message;
      *message.mutable_task() = task;
      session->Send(message);
    }
    PGH_ASSIGN_OR_RETURN(*response, tasks_->Get(task.task_id(), 0));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* MigrationsService::GetTask(grpc::CallbackServerContext* context,
                                                     const v1::GetTaskRequest* request,
                                                     v1::TaskInfo* response) {
  return Respond(context, [&]() -> absl::Status {
    int recent = request->recent_events() == 0 ? 20 : static_cast<int>(request->recent_events());
    PGH_ASSIGN_OR_RETURN(*response, tasks_->Get(request->task_id(), std::min(recent, 1000)));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* MigrationsService::ListTasks(grpc::CallbackServerContext* context,
                                                       const v1::ListTasksRequest* request,
                                                       v1::ListTasksResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    int limit = request->limit() == 0 ? 50 : static_cast<int>(std::min(request->limit(), 1000u));
    for (v1::TaskInfo& info : tasks_->List(request->agent_id(), limit)) {
      *response->add_tasks() = std::move(info);
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* MigrationsService::CancelTask(grpc::CallbackServerContext* context,
                                                        const v1::CancelTaskRequest* request,
                                                        v1::TaskInfo* response) {
  return Respond(context, [&]() -> absl::Status {
    PGH_ASSIGN_OR_RETURN(*response, tasks_->Get(request->task_id(), 0));
    if (response->has_result()) return absl::OkStatus();  // already finished
    auto session = registry_->Session(response->agent_id());
    if (session == nullptr) {
      return absl::UnavailableError(absl::StrCat("agent ", response->agent_id(),
                                                 " is offline; cancel again when it is back"));
    }
    v1::ControllerMessage message;
    message.mutable_cancel()->set_task_id(request->task_id());
    session->Send(message);
    return absl::OkStatus();
  });
}

namespace {

absl::Status NeedMigrations(const MigrationManager* migrations) {
  if (migrations != nullptr) return absl::OkStatus();
  return absl::UnimplementedError("this controller does not run migrations");
}

}  // namespace

grpc::ServerUnaryReactor* MigrationsService::ApplyPlan(grpc::CallbackServerContext* context,
                                                       const v1::ApplyPlanRequest* request,
                                                       v1::MigrationInfo* response) {
  return Respond(context, [&]() -> absl::Status {
    PGH_RETURN_IF_ERROR(NeedMigrations(migrations_));
    PGH_ASSIGN_OR_RETURN(*response, migrations_->Apply(*request));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* MigrationsService::ListMigrations(
    grpc::CallbackServerContext* context, const v1::ListMigrationsRequest* request,
    v1::ListMigrationsResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    PGH_RETURN_IF_ERROR(NeedMigrations(migrations_));
    for (v1::MigrationInfo& info : migrations_->List()) {
      *response->add_migrations() = std::move(info);
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* MigrationsService::GetMigration(grpc::CallbackServerContext* context,
                                                          const v1::GetMigrationRequest* request,
                                                          v1::MigrationInfo* response) {
  return Respond(context, [&]() -> absl::Status {
    PGH_RETURN_IF_ERROR(NeedMigrations(migrations_));
    int max = request->max_events() == 0 ? 50
                                         : static_cast<int>(std::min(request->max_events(), 1000u));
    PGH_ASSIGN_OR_RETURN(*response, migrations_->Get(request->migration_id(),
                                                     request->events_after(), max));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* MigrationsService::StartPhase(grpc::CallbackServerContext* context,
                                                        const v1::StartPhaseRequest* request,
                                                        v1::StartPhaseResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    PGH_RETURN_IF_ERROR(NeedMigrations(migrations_));
    PGH_ASSIGN_OR_RETURN(*response, migrations_->Start(*request));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* MigrationsService::AbortMigration(
    grpc::CallbackServerContext* context, const v1::AbortMigrationRequest* request,
    v1::MigrationInfo* response) {
  return Respond(context, [&]() -> absl::Status {
    PGH_RETURN_IF_ERROR(NeedMigrations(migrations_));
    PGH_ASSIGN_OR_RETURN(*response, migrations_->Abort(request->migration_id()));
    return absl::OkStatus();
  });
}

}  // namespace pghaul::controller
