// gRPC glue for the Migrations service that the `pghaul` CLI talks to.
#pragma once

#include <functional>

#include "controller/access_policy.h"
#include "controller/agent_registry.h"
#include "controller/migration_manager.h"
#include "controller/task_tracker.h"
#include "pghaul/v1/migrations.grpc.pb.h"

namespace pghaul::controller {

class MigrationsService final : public v1::Migrations::CallbackService {
 public:
  // `migrations` may be null (tests of the agent and task calls only): the migration calls then
  // answer UNIMPLEMENTED. `access` names each caller and decides what it may do
  // (controller/access_policy.h): on a mutual TLS server every call must come with a CLI
  // certificate ("cli:<name>"); an agent's or the controller's gets PERMISSION_DENIED, and so
  // does a caller whose role is too low. Mutating calls are logged with their caller.
  MigrationsService(const AgentRegistry* registry, TaskTracker* tasks,
                    MigrationManager* migrations, const AccessPolicy* access)
      : registry_(registry), tasks_(tasks), migrations_(migrations), access_(access) {}

  grpc::ServerUnaryReactor* ListAgents(grpc::CallbackServerContext* context,
                                       const v1::ListAgentsRequest* request,
                                       v1::ListAgentsResponse* response) override;
  // NOT_FOUND for an agent that never connected; INVALID_ARGUMENT for a malformed id.
  grpc::ServerUnaryReactor* GetAgent(grpc::CallbackServerContext* context,
                                     const v1::GetAgentRequest* request,
                                     v1::AgentInfo* response) override;

  // NOT_FOUND for an agent that never connected; INVALID_ARGUMENT for a malformed task. The task
  // is journaled, then sent at once if the agent is online, else when it connects.
  grpc::ServerUnaryReactor* SubmitTask(grpc::CallbackServerContext* context,
                                       const v1::SubmitTaskRequest* request,
                                       v1::TaskInfo* response) override;
  grpc::ServerUnaryReactor* GetTask(grpc::CallbackServerContext* context,
                                    const v1::GetTaskRequest* request,
                                    v1::TaskInfo* response) override;
  grpc::ServerUnaryReactor* ListTasks(grpc::CallbackServerContext* context,
                                      const v1::ListTasksRequest* request,
                                      v1::ListTasksResponse* response) override;
  // Asks the agent to cancel; the task's result says when it has ended. UNAVAILABLE when the
  // agent is offline.
  grpc::ServerUnaryReactor* CancelTask(grpc::CallbackServerContext* context,
                                       const v1::CancelTaskRequest* request,
                                       v1::TaskInfo* response) override;

  // Migrations: see MigrationManager for the errors.
  grpc::ServerUnaryReactor* ApplyPlan(grpc::CallbackServerContext* context,
                                      const v1::ApplyPlanRequest* request,
                                      v1::MigrationInfo* response) override;
  grpc::ServerUnaryReactor* ListMigrations(grpc::CallbackServerContext* context,
                                           const v1::ListMigrationsRequest* request,
                                           v1::ListMigrationsResponse* response) override;
  grpc::ServerUnaryReactor* GetMigration(grpc::CallbackServerContext* context,
                                         const v1::GetMigrationRequest* request,
                                         v1::MigrationInfo* response) override;
  grpc::ServerUnaryReactor* StartPhase(grpc::CallbackServerContext* context,
                                       const v1::StartPhaseRequest* request,
                                       v1::StartPhaseResponse* response) override;
  grpc::ServerUnaryReactor* AbortMigration(grpc::CallbackServerContext* context,
                                           const v1::AbortMigrationRequest* request,
                                           v1::MigrationInfo* response) override;
  grpc::ServerUnaryReactor* WhoAmI(grpc::CallbackServerContext* context,
                                   const v1::WhoAmIRequest* request,
                                   v1::WhoAmIResponse* response) override;

 private:
  // Names the caller and checks it may do `what` (which needs `needed`), then runs `body` and
  // finishes the call with its status. A `what` that changes something is logged with the
  // caller and the outcome (`body` gets the caller for its own log lines).
  grpc::ServerUnaryReactor* Respond(grpc::CallbackServerContext* context, Role needed,
                                    absl::string_view what,
                                    const std::function<absl::Status(const Caller&)>& body) const;

  const AgentRegistry* const registry_;
  TaskTracker* const tasks_;
  MigrationManager* const migrations_;
  const AccessPolicy* const access_;
};

}  // namespace pghaul::controller
