// Conversions between absl::Status and grpc::Status at the edges (the codes match one to one).
#pragma once

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace pghaul {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace pghaul
