// Durable state of migrations: one record per migration and its event journal, in the
// controller's SQLite state database (WAL mode, synchronous=FULL). A record is written before
// what it describes takes effect (a phase starting, a host being changed), so that a restarted
// controller knows what it was doing.
//
// Thread-safe. Uses its own connection to the database file, so its transactions never mix with
// the task journal's.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "controller/sqlite_db.h"
#include "pghaul/v1/controller_state.pb.h"

namespace pghaul::controller {

class MigrationStore {
 public:
  // Opens `path` (":memory:" in tests) and creates the tables if needed.
  static absl::StatusOr<std::unique_ptr<MigrationStore>> Open(const std::string& path);

  // Every stored record, oldest first.
  absl::StatusOr<std::vector<v1::MigrationRecord>> LoadAll();

  // Inserts or replaces the record of record.info().migration_id() (events are not stored here).
  absl::Status Save(const v1::MigrationRecord& record);

  // Removes a record and its events (a plan replaced before anything ran).
  absl::Status Delete(const std::string& migration_id);

  // Journals an event and returns its seq (per migration, from 1).
  absl::StatusOr<uint64_t> AppendEvent(const std::string& migration_id, v1::MigrationEvent event);

  // Events with seq > `after`, at most `max` of the newest, in seq order.
  absl::StatusOr<std::vector<v1::MigrationEvent>> Events(const std::string& migration_id,
                                                         uint64_t after, int max);
  // The highest seq journaled (0 when none).
  absl::StatusOr<uint64_t> LastSeq(const std::string& migration_id);

 private:
  explicit MigrationStore(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}

  absl::Mutex mu_;
  std::unique_ptr<SqliteDb> db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pghaul::controller
