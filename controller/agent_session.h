// The controller's handle on one live agent stream.
#pragma once

#include "absl/strings/string_view.h"
#include "pghaul/v1/agent_link.pb.h"

namespace pghaul::controller {

// Implemented by the gRPC stream (AgentLinkService) and by fakes in tests. Both methods are
// thread-safe, never block, and are no-ops once the stream has ended.
class AgentSession {
 public:
  virtual ~AgentSession() = default;
  // Queues a message for the agent.
  virtual void Send(const v1::ControllerMessage& message) = 0;
  // Ends the stream with UNAVAILABLE and `reason`; the agent will reconnect.
  virtual void Close(absl::string_view reason) = 0;
};

}  // namespace pghaul::controller
