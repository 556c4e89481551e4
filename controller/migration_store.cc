#include "controller/migration_store.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace pghaul::controller {
namespace {

constexpr absl::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS migrations (
  migration_id TEXT PRIMARY KEY,
  created      INTEGER NOT NULL,  -- insertion order
  record       BLOB NOT NULL      -- v1.MigrationRecord
);
CREATE TABLE IF NOT EXISTS migration_events (
  migration_id TEXT NOT NULL,
  seq          INTEGER NOT NULL,
  event        BLOB NOT NULL,     -- v1.MigrationEvent
  PRIMARY KEY (migration_id, seq)
);
)sql";

}  // namespace

absl::StatusOr<std::unique_ptr<MigrationStore>> MigrationStore::Open(const std::string& path) {
  PGH_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(path));
  PGH_RETURN_IF_ERROR(db->Exec(kSchema));
  return std::unique_ptr<MigrationStore>(new MigrationStore(std::move(db)));
}

absl::StatusOr<std::vector<v1::MigrationRecord>> MigrationStore::LoadAll() {
  absl::MutexLock lock(&mu_);
  PGH_ASSIGN_OR_RETURN(auto stmt, db_->Prepare("SELECT migration_id, record FROM migrations "
                                               "ORDER BY created"));
  std::vector<v1::MigrationRecord> records;
  while (true) {
    PGH_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (!row) break;
    v1::MigrationRecord record;
    if (!record.ParseFromString(stmt->ColumnBlob(1))) {
      return absl::DataLossError(
          absl::StrCat("state database: migration ", stmt->ColumnText(0), " is unreadable"));
    }
    records.push_back(std::move(record));
  }
  return records;
}

absl::Status MigrationStore::Save(const v1::MigrationRecord& record) {
  absl::MutexLock lock(&mu_);
  PGH_ASSIGN_OR_RETURN(
      auto stmt,
      db_->Prepare("INSERT INTO migrations (migration_id, created, record) VALUES "
                   "(?1, (SELECT COALESCE(MAX(created), 0) + 1 FROM migrations), ?2) "
                   "ON CONFLICT(migration_id) DO UPDATE SET record = excluded.record"));
  v1::MigrationRecord stored = record;
  stored.mutable_info()->clear_events();
  stmt->Bind(1, record.info().migration_id()).BindBlob(2, stored.SerializeAsString());
  return stmt->Run();
}

absl::Status MigrationStore::Delete(const std::string& migration_id) {
  absl::MutexLock lock(&mu_);
  PGH_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
  auto body = [&]() -> absl::Status {
    for (const char* sql : {"DELETE FROM migration_events WHERE migration_id = ?1",
                            "DELETE FROM migrations WHERE migration_id = ?1"}) {
      PGH_ASSIGN_OR_RETURN(auto stmt, db_->Prepare(sql));
      stmt->Bind(1, migration_id);
      PGH_RETURN_IF_ERROR(stmt->Run());
    }
    return absl::OkStatus();
  };
  absl::Status status = body();
  PGH_RETURN_IF_ERROR(db_->Exec(status.ok() ? "COMMIT" : "ROLLBACK"));
  return status;
}

absl::StatusOr<uint64_t> MigrationStore::AppendEvent(const std::string& migration_id,
                                                     v1::MigrationEvent event) {
  absl::MutexLock lock(&mu_);
  PGH_ASSIGN_OR_RETURN(auto last, db_->Prepare("SELECT COALESCE(MAX(seq), 0) FROM "
                                               "migration_events WHERE migration_id = ?1"));
  last->Bind(1, migration_id);
  PGH_RETURN_IF_ERROR(last->Step().status());
  uint64_t seq = static_cast<uint64_t>(last->ColumnInt(0)) + 1;
  event.set_seq(seq);
  PGH_ASSIGN_OR_RETURN(auto insert, db_->Prepare("INSERT INTO migration_events (migration_id, "
                                                 "seq, event) VALUES (?1, ?2, ?3)"));
  insert->Bind(1, migration_id)
      .Bind(2, static_cast<int64_t>(seq))
      .BindBlob(3, event.SerializeAsString());
  PGH_RETURN_IF_ERROR(insert->Run());
  return seq;
}

absl::StatusOr<std::vector<v1::MigrationEvent>> MigrationStore::Events(
    const std::string& migration_id, uint64_t after, int max) {
  absl::MutexLock lock(&mu_);
  PGH_ASSIGN_OR_RETURN(auto stmt,
                       db_->Prepare("SELECT event FROM (SELECT seq, event FROM migration_events "
                                    "WHERE migration_id = ?1 AND seq > ?2 ORDER BY seq DESC "
                                    "LIMIT ?3) ORDER BY seq"));
  stmt->Bind(1, migration_id).Bind(2, static_cast<int64_t>(after)).Bind(3, int64_t{max});
  std::vector<v1::MigrationEvent> events;
  while (true) {
    PGH_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (!row) break;
    v1::MigrationEvent event;
    if (!event.ParseFromString(stmt->ColumnBlob(0))) {
      return absl::DataLossError(
          absl::StrCat("state database: an event of migration ", migration_id, " is unreadable"));
    }
    events.push_back(std::move(event));
  }
  return events;
}

absl::StatusOr<uint64_t> MigrationStore::LastSeq(const std::string& migration_id) {
  absl::MutexLock lock(&mu_);
  PGH_ASSIGN_OR_RETURN(auto stmt, db_->Prepare("SELECT COALESCE(MAX(seq), 0) FROM "
                                               "migration_events WHERE migration_id = ?1"));
  stmt->Bind(1, migration_id);
  PGH_RETURN_IF_ERROR(stmt->Step().status());
  return static_cast<uint64_t>(stmt->ColumnInt(0));
}

}  // namespace pghaul::controller
