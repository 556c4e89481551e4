#include "controller/migrations_service.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "common/access_tokens.h"
#include "controller/migration_phases.h"
#include "common/task_names.h"
#include "common/grpc_status.h"
#include "common/identifiers.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tls_credentials.h"

namespace pghaul::controller {

grpc::ServerUnaryReactor* MigrationsService::Respond(
    grpc::CallbackServerContext* context, Role needed, absl::string_view what,
    const std::function<absl::Status(const Caller&)>& body) const {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::optional<CertificateNames> names;
  if (context->auth_context() != nullptr && context->auth_context()->IsPeerAuthenticated()) {
    names = PeerCertificateNames(*context->auth_context());
  }
  std::string authorization;
  const auto& metadata = context->client_metadata();
  if (auto it = metadata.find(std::string(kAuthorizationMetadataKey)); it != metadata.end()) {
    authorization.assign(it->second.data(), it->second.size());
  }
  absl::StatusOr<Caller> caller =
      access_->Identify(names.has_value() ? &*names : nullptr, authorization);
  absl::Status status = caller.status();
  if (status.ok()) status = AccessPolicy::Authorize(*caller, needed, what);
  if (!status.ok()) {
    // The message names the caller when it is known.
    PGH_LOG_WARN("refusing a CLI call from {}: {}", context->peer(), status.message());
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  status = body(*caller);
  if (needed > Role::kReadOnly) {
    if (status.ok()) {
      PGH_LOG_INFO("{} by {}: accepted", what, caller->Describe());
    } else {
      PGH_LOG_INFO("{} by {}: {}", what, caller->Describe(),
                   absl::StatusCodeToString(status.code()));
    }
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* MigrationsService::ListAgents(grpc::CallbackServerContext* context,
                                                        const v1::ListAgentsRequest* request,
                                                        v1::ListAgentsResponse* response) {
  return Respond(context, Role::kReadOnly, "list agents", [&](const Caller& caller) -> absl::Status {
    for (v1::AgentInfo& info : registry_->List()) *response->add_agents() = std::move(info);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* MigrationsService::GetAgent(grpc::CallbackServerContext* context,
                                                      const v1::GetAgentRequest* request,
                                                      v1::AgentInfo* response) {
  return Respond(context, Role::kReadOnly, "show an agent", [&](const Caller& caller) -> absl::Status {
    PGH_RETURN_IF_ERROR(ValidateAgentId(request->agent_id()));
    PGH_ASSIGN_OR_RETURN(*response, registry_->Get(request->agent_id()));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* MigrationsService::SubmitTask(grpc::CallbackServerContext* context,
                                                        const v1::SubmitTaskRequest* request,
                                                        v1::TaskInfo* response) {
  return Respond(context, Role::kAdmin, absl::StrCat("submit task \"", DescribeOperation(request->task()), "\" to agent ", request->agent_id()), [&](const Caller& caller) -> absl::Status {
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
  return Respond(context, Role::kReadOnly, "show a task", [&](const Caller& caller) -> absl::Status {
    int recent = request->recent_events() == 0 ? 20 : static_cast<int>(request->recent_events());
    PGH_ASSIGN_OR_RETURN(*response, tasks_->Get(request->task_id(), std::min(recent, 1000)));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* MigrationsService::ListTasks(grpc::CallbackServerContext* context,
                                                       const v1::ListTasksRequest* request,
                                                       v1::ListTasksResponse* response) {
  return Respond(context, Role::kReadOnly, "list tasks", [&](const Caller& caller) -> absl::Status {
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
  return Respond(context, Role::kOperator, absl::StrCat("cancel task ", request->task_id()), [&](const Caller& caller) -> absl::Status {
    if (const Role needed = AccessPolicy::RoleToCancel(request->task_id()); needed > caller.role) {
      return AccessPolicy::Authorize(
          caller, needed, absl::StrCat("cancel task ", request->task_id(), ", a cutover step"));
    }
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

std::string ApplyPlanWhat(const v1::ApplyPlanRequest& request) {
  return absl::StrCat(request.dry_run() ? "validate" : request.replace() ? "replace" : "apply",
                      " the plan ", request.source_name().empty() ? "(no file name)"
                                                                   : request.source_name());
}

// Cutover makes the target the primary and fences the source: admin only, and so is `run`
// when it goes as far. A dry run changes nothing.
Role RoleToStart(const v1::StartPhaseRequest& request) {
  if (request.dry_run()) return Role::kReadOnly;
  const bool reaches_cutover =
      request.command() == kPhaseCutover ||
      (request.command() == "run" &&
       (request.until().empty() || PhaseIndex(request.until()) >= PhaseIndex(kPhaseCutover)));
  return reaches_cutover ? Role::kAdmin : Role::kOperator;
}

std::string StartPhaseWhat(const v1::StartPhaseRequest& request) {
  std::string what = absl::StrCat(request.dry_run() ? "dry-run " : "start ", request.command());
  if (request.command() == "run") {
    absl::StrAppend(&what, " until ", request.until().empty() ? kPhaseFinish : request.until());
  }
  absl::StrAppend(&what, " of migration ", request.migration_id());
  return what;
}

absl::Status NeedMigrations(const MigrationManager* migrations) {
  if (migrations != nullptr) return absl::OkStatus();
  return absl::UnimplementedError("this controller does not run migrations");
}

}  // namespace

grpc::ServerUnaryReactor* MigrationsService::ApplyPlan(grpc::CallbackServerContext* context,
                                                       const v1::ApplyPlanRequest* request,
                                                       v1::MigrationInfo* response) {
  return Respond(context, request->dry_run() ? Role::kReadOnly : Role::kOperator, ApplyPlanWhat(*request), [&](const Caller& caller) -> absl::Status {
    PGH_RETURN_IF_ERROR(NeedMigrations(migrations_));
    PGH_ASSIGN_OR_RETURN(*response, migrations_->Apply(*request));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* MigrationsService::ListMigrations(
    grpc::CallbackServerContext* context, const v1::ListMigrationsRequest* request,
    v1::ListMigrationsResponse* response) {
  return Respond(context, Role::kReadOnly, "list migrations", [&](const Caller& caller) -> absl::Status {
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
  return Respond(context, Role::kReadOnly, "show a migration", [&](const Caller& caller) -> absl::Status {
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
  return Respond(context, RoleToStart(*request), StartPhaseWhat(*request), [&](const Caller& caller) -> absl::Status {
    PGH_RETURN_IF_ERROR(NeedMigrations(migrations_));
    PGH_ASSIGN_OR_RETURN(*response, migrations_->Start(*request));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* MigrationsService::AbortMigration(
    grpc::CallbackServerContext* context, const v1::AbortMigrationRequest* request,
    v1::MigrationInfo* response) {
  return Respond(context, Role::kAdmin, absl::StrCat("abort migration ", request->migration_id()), [&](const Caller& caller) -> absl::Status {
    PGH_RETURN_IF_ERROR(NeedMigrations(migrations_));
    PGH_ASSIGN_OR_RETURN(*response, migrations_->Abort(request->migration_id()));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* MigrationsService::WhoAmI(grpc::CallbackServerContext* context,
                                                    const v1::WhoAmIRequest* request,
                                                    v1::WhoAmIResponse* response) {
  return Respond(context, Role::kReadOnly, "ask who it is",
                 [&](const Caller& caller) -> absl::Status {
                   response->set_caller(caller.name);
                   response->set_role(std::string(RoleName(caller.role)));
                   response->set_roles_configured(access_->config().configured);
                   return absl::OkStatus();
                 });
}

}  // namespace pghaul::controller
