#include "controller/migrations_service.h"

#include "common/grpc_status.h"
#include "common/identifiers.h"

namespace pghaul::controller {

grpc::ServerUnaryReactor* MigrationsService::ListAgents(grpc::CallbackServerContext* context,
                                                        const v1::ListAgentsRequest* request,
                                                        v1::ListAgentsResponse* response) {
  for (v1::AgentInfo& info : registry_->List()) *response->add_agents() = std::move(info);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* MigrationsService::GetAgent(grpc::CallbackServerContext* context,
                                                      const v1::GetAgentRequest* request,
                                                      v1::AgentInfo* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status valid = ValidateAgentId(request->agent_id()); !valid.ok()) {
    reactor->Finish(ToGrpcStatus(valid));
    return reactor;
  }
  absl::StatusOr<v1::AgentInfo> info = registry_->Get(request->agent_id());
  if (!info.ok()) {
    reactor->Finish(ToGrpcStatus(info.status()));
    return reactor;
  }
  *response = *std::move(info);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace pghaul::controller
