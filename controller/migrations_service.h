// gRPC glue for the Migrations service that the `pghaul` CLI talks to.
#pragma once

#include "controller/agent_registry.h"
#include "pghaul/v1/migrations.grpc.pb.h"

namespace pghaul::controller {

class MigrationsService final : public v1::Migrations::CallbackService {
 public:
  explicit MigrationsService(const AgentRegistry* registry) : registry_(registry) {}

  grpc::ServerUnaryReactor* ListAgents(grpc::CallbackServerContext* context,
                                       const v1::ListAgentsRequest* request,
                                       v1::ListAgentsResponse* response) override;
  // NOT_FOUND for an agent that never connected; INVALID_ARGUMENT for a malformed id.
  grpc::ServerUnaryReactor* GetAgent(grpc::CallbackServerContext* context,
                                     const v1::GetAgentRequest* request,
                                     v1::AgentInfo* response) override;

 private:
  const AgentRegistry* const registry_;
};

}  // namespace pghaul::controller
