// gRPC glue for the AgentLink service: one reactor per agent stream. The logic lives in
// AgentRegistry; this file only turns stream events into registry calls and queues writes.
#pragma once

#include <string>

#include "common/clock.h"
#include "controller/agent_registry.h"
#include "controller/reconnect_limiter.h"
#include "controller/task_tracker.h"
#include "pghaul/v1/agent_link.grpc.pb.h"

namespace pghaul::controller {

class AgentLinkService final : public v1::AgentLink::CallbackService {
 public:
  // With `require_certificates` (a mutual TLS server), a stream is admitted only when the
  // agent's client certificate names the agent id its Hello claims; otherwise it ends with
  // PERMISSION_DENIED and a log line naming both. Without it (insecure: true) ids are taken on
  // trust.
  //
  // Streams are rate-limited per peer host (when they open) and per agent id (at Hello) by
  // `reconnect_limits` (controller/reconnect_limiter.h); one beyond a limit ends at once with
  // RESOURCE_EXHAUSTED and a message saying when to retry, and the refusals of one host or agent
  // id are logged once per window, not once per attempt. `clock` (for the limiter) must outlive
  // the service.
  AgentLinkService(AgentRegistry* registry, TaskTracker* tasks, std::string controller_id,
                   absl::Duration heartbeat_interval, bool require_certificates = false,
                   ReconnectLimits reconnect_limits = {}, Clock* clock = Clock::Real());

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
  const bool require_certificates_;
  ReconnectLimiter limiter_;
  uint64_t heartbeat_seq_ = 0;  // only touched by the ticker thread
};

}  // namespace pghaul::controller
