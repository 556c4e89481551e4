// How `pghaul status` shows a standby target's lag, and the cutover's --max-downtime flag.
#include <string>

#include "absl/time/time.h"
#include "cli/commands_migrations.h"
#include "cli/controller_client.h"
#include "cli/migration_table.h"
#include "common/time_proto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const absl::Time kNow = absl::FromUnixSeconds(1795730400);  // 2026-11-26 22:00:00 UTC

v1::ReplicationLag Behind() {
  v1::ReplicationLag lag;
  lag.set_source_lsn("0/9100000");
  lag.set_source_last_archived_wal("000000010000000000000008");
  *lag.mutable_source_last_archived_at() = ToProto(kNow - absl::Seconds(4));
  lag.set_target_replay_lsn("0/9000000");
  *lag.mutable_target_last_replay_at() = ToProto(kNow - absl::Seconds(12));
  lag.set_lag_bytes(1 << 20);
  lag.set_lag_seconds(12.0);
  *lag.mutable_measured_at() = ToProto(kNow - absl::Seconds(3));
  return lag;
}

TEST(ReplicationLagFormatTest, ShowsBothPositionsTheArchiveAndTheLagInBytesAndSeconds) {
  std::string text = FormatReplicationLag(Behind(), kNow, absl::UTCTimeZone());
  EXPECT_THAT(text, HasSubstr("0/9100000, last archived 000000010000000000000008 at 21:59:56"));
  EXPECT_THAT(text, HasSubstr("0/9000000, last replayed commit from 21:59:48"));
  EXPECT_THAT(text, HasSubstr("1.0 MiB, 12.0s"));
  EXPECT_THAT(text, HasSubstr("2026-11-26 21:59:57 UTC (3s ago)"));
}

TEST(ReplicationLagFormatTest, CaughtUpAndUnknownSecondsAreSaidPlainly) {
  v1::ReplicationLag lag = Behind();
  lag.set_lag_bytes(0);
  lag.set_lag_seconds(0);
  EXPECT_THAT(FormatReplicationLag(lag, kNow, absl::UTCTimeZone()), HasSubstr("caught up (0 B)"));
  lag = Behind();
  lag.clear_lag_seconds();
  lag.clear_target_last_replay_at();
  lag.set_target_replay_lsn("");
  std::string text = FormatReplicationLag(lag, kNow, absl::UTCTimeZone());
  EXPECT_THAT(text, HasSubstr("nothing replayed"));
  EXPECT_THAT(text, HasSubstr("seconds unknown"));
}

TEST(ReplicationLagFormatTest, StatusHasTheSectionOnlyOnceALagWasMeasured) {
  v1::MigrationInfo migration;
  migration.set_migration_id("m1");
  EXPECT_THAT(FormatMigrationStatus(migration, kNow, absl::UTCTimeZone()),
              Not(HasSubstr("Replication")));
  *migration.mutable_lag() = Behind();
  EXPECT_THAT(FormatMigrationStatus(migration, kNow, absl::UTCTimeZone()),
              HasSubstr("Replication (the standby target against the source)"));
}

TEST(CutoverMaxDowntimeTest, ABadDurationIsRefusedBeforeTheControllerIsAsked) {
  // Nothing listens there: a request would fail as Unavailable, not InvalidArgument.
  ControllerClient client("127.0.0.1:1", absl::Seconds(1));
  for (const char* bad : {"soon", "0s", "-5s", "25h"}) {
    PhaseCommand command;
    command.migration_id = "m1";
    command.command = "cutover";
    command.max_downtime = bad;
    command.detach = true;
    absl::StatusOr<CommandOutput> result =
        RunPhaseCommand(client, command, OutputFormat::kTable, FollowEnvironment{});
    EXPECT_TRUE(absl::IsInvalidArgument(result.status())) << bad << ": " << result.status();
    EXPECT_THAT(result.status().message(), HasSubstr("--max-downtime")) << bad;
  }
}

}  // namespace
}  // namespace pghaul::cli
