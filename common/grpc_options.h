// Channel arguments shared by both ends of the agent link: keepalive pings under the stream's own
// heartbeats (they find a dead TCP connection even when no message is due), and bounded message
// sizes.
#pragma once

#include "grpcpp/server_builder.h"
#include "grpcpp/support/channel_arguments.h"

namespace pghaul {

inline constexpr int kMaxMessageBytes = 16 << 20;

void ApplyServerOptions(grpc::ServerBuilder& builder);
grpc::ChannelArguments ClientChannelArguments();

}  // namespace pghaul
