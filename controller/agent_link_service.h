// gRPC glue for the AgentLink service: one reactor per agent stream. The logic lives in
// AgentRegistry; this file only turns stream events into registry calls and queues writes.
#pragma once

#include <string>

#include "common/clock.h"
#include "controller/agent_registry.h"
#include "controller/task_tracker.h"
#include "pghaul/v1/agent_link.grpc.pb.h"

namespace pghaul::controller {

class AgentLinkService final : public v1::AgentLink::CallbackService {
 public:
  AgentLinkService(AgentRegistry* registry, TaskTracker* tasks, std::string controller_id,
                   absl::Duration heartbeat_interval);

  grpc::ServerBidiReactor<v1::AgentMessage, v1::ControllerMessage>* Connect(
      grpc::CallbackServerContext* context) override;

  // Sends a heartbeat on every live stream and closes the streams of agents that missed theirs.
  // Called every heartbeat interval by the controller's ticker.
  void Tick();

 private:
  AgentRegistry* const registry_;
  TaskTracker* const tasks_;
  const std::string controller_id_;
  const absl::Duration heartbeat_interval_;
  uint64_t heartbeat_seq_ = 0;  // only touched by the ticker thread
};

}  // namespace pghaul::controller
