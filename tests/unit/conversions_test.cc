#include "common/grpc_status.h"
#include "common/time_proto.h"
#include "gtest/gtest.h"

namespace pghaul {
namespace {

TEST(TimeProtoTest, RoundTripsWithNanosecondsAndBeforeTheEpoch) {
  for (absl::Time t : {absl::FromUnixNanos(1'700'000'000'123'456'789),
                       absl::FromUnixNanos(-1'500'000'001), absl::UnixEpoch()}) {
    google::protobuf::Timestamp proto = ToProto(t);
    EXPECT_GE(proto.nanos(), 0);
    EXPECT_LT(proto.nanos(), 1'000'000'000);
    EXPECT_EQ(FromProto(proto), t);
  }
  EXPECT_EQ(ToProto(absl::FromUnixNanos(-1'500'000'001)).seconds(), -2);
}

TEST(GrpcStatusTest, CodesAndMessagesMatchOneToOne) {
  absl::Status status = absl::NotFoundError("no agent 'x'");
  grpc::Status converted = ToGrpcStatus(status);
  EXPECT_EQ(converted.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(converted.error_message(), "no agent 'x'");
  EXPECT_EQ(FromGrpcStatus(converted), status);
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down")).code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace pghaul
