// The bounded write load of a fault run, and its record of what was acknowledged.
//
// A libpq client of role `app` that, in each transaction, increments a counter and inserts the
// new value into `acked` (as tests/integration/cutover_load_test.cc does), at most one
// transaction every kPause, for at most kMaxRun. It records every value whose commit it saw
// succeed; a commit whose answer was lost (the fence or a crash ended the session) is not
// recorded: it may or may not be on the target, and either is right.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"

namespace pghaul::faults {

// The writer's tables and role, for the source before the migration (psql script).
inline constexpr char kWriterSetupSql[] = R"sql(
CREATE ROLE app LOGIN;
CREATE TABLE counter (n bigint NOT NULL);
INSERT INTO counter VALUES (0);
CREATE TABLE acked (n bigint PRIMARY KEY);
CREATE TABLE fault_probe (at timestamptz DEFAULT now());
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app;
)sql";

class AckedWriter {
 public:
  static constexpr absl::Duration kPause = absl::Milliseconds(10);
  static constexpr absl::Duration kMaxRun = absl::Minutes(15);

  // `conninfo` reaches the source as `app`.
  explicit AckedWriter(std::string conninfo) : conninfo_(std::move(conninfo)) {}
  ~AckedWriter() { Stop(); }

  void Start();
  void Stop();
  // While paused the writer commits nothing (its session stays open): the verify phase
  // compares the source with a standby, which must have caught up with a source at rest.
  // Pause returns once no transaction of the writer is in flight (false if that took over a
  // minute, or the writer is not running).
  bool Pause();
  void Resume();
  std::vector<int64_t> Acked();
  size_t AckedCount();
  std::string LastError();

 private:
  void Loop();
  void Fail(const char* message);

  const std::string conninfo_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> paused_{false};
  std::atomic<bool> idle_{false};  // the loop saw paused_ and sent nothing since
  std::thread thread_;
  std::mutex mu_;
  std::vector<int64_t> acked_;
  std::string last_error_;
};

}  // namespace pghaul::faults
