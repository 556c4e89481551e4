// gRPC glue for the Migrations service that the `pghaul` CLI talks to.
#pragma once

#include "controller/agent_registry.h"
#include "controller/task_tracker.h"
#include "pghaul/v1/migrations.grpc.pb.h"

namespace pghaul::controller {

class MigrationsService final : public v1::Migrations::CallbackService {
 public:
  MigrationsService(const AgentRegistry* registry, TaskTracker* tasks)
      : registry_(registry), tasks_(tasks) {}

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

 private:
  const AgentRegistry* const registry_;
  TaskTracker* const tasks_;
};

}  // namespace pghaul::controller
