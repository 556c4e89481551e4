// gRPC glue for the Migrations service that the `pghaul` CLI talks to.
#pragma once

#include <functional>

#include "controller/agent_registry.h"
#include "controller/migration_manager.h"
#include "controller/task_tracker.h"
#include "pghaul/v1/migrations.grpc.pb.h"

namespace pghaul::controller {

class MigrationsService final : public v1::Migrations::CallbackService {
 public:
  // `migrations` may be null (tests of the agent and task calls only): the migration calls then
  // answer UNIMPLEMENTED. With `require_cli_certificates` (a mutual TLS server), every call must
  // come with a CLI certificate ("cli:<name>", common/tls_credentials.h): an agent's or the
  // controller's certificate gets PERMISSION_DENIED.
  MigrationsService(const AgentRegistry* registry, TaskTracker* tasks,
                    MigrationManager* migrations = nullptr, bool require_cli_certificates = false)
      : registry_(registry),
        tasks_(tasks),
        migrations_(migrations),
        require_cli_certificates_(require_cli_certificates) {}

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

 private:
  // Checks the caller, then runs `body` and finishes the call with its status.
  grpc::ServerUnaryReactor* Respond(grpc::CallbackServerContext* context,
                                    const std::function<absl::Status()>& body) const;

  const AgentRegistry* const registry_;
  TaskTracker* const tasks_;
  MigrationManager* const migrations_;
  const bool require_cli_certificates_;
};

}  // namespace pghaul::controller
