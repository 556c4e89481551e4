// Channel arguments shared by both ends of the agent link: keepalive pings under the stream's own
// heartbeats (they find a dead TCP connection even when no message is due), and bounded message
// sizes. (The credentials, TLS or not, are chosen by each process: common/tls_credentials.h.)
#pragma once

#include <string>

#include "grpcpp/server_builder.h"
#include "grpcpp/support/channel_arguments.h"

namespace pghaul {

inline constexpr int kMaxMessageBytes = 16 << 20;

void ApplyServerOptions(grpc::ServerBuilder& builder);
// `tls_server_name`, when not empty, is the name the server's certificate must hold instead of
// the host of the address dialled (a controller reached by IP address, or through a tunnel).
grpc::ChannelArguments ClientChannelArguments(const std::string& tls_server_name = "");

}  // namespace pghaul
