#include "tests/faults/acked_writer.h"

#include <libpq-fe.h>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"

namespace pghaul::faults {
namespace {

constexpr char kWriteSql[] =
    "WITH c AS (UPDATE counter SET n = n + 1 RETURNING n) INSERT INTO acked SELECT n FROM c "
    "RETURNING n";

}  // namespace

void AckedWriter::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void AckedWriter::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::vector<int64_t> AckedWriter::Acked() {
  std::lock_guard<std::mutex> lock(mu_);
  return acked_;
}

size_t AckedWriter::AckedCount() {
  std::lock_guard<std::mutex> lock(mu_);
  return acked_.size();
}

std::string AckedWriter::LastError() {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

void AckedWriter::Fail(const char* message) {
  std::lock_guard<std::mutex> lock(mu_);
  last_error_ = message;
}

bool AckedWriter::Pause() {
  paused_ = true;
  const absl::Time deadline = absl::Now() + absl::Minutes(1);
  while (!idle_) {
    if (!thread_.joinable() || absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

void AckedWriter::Resume() {
  idle_ = false;  // first: a Pause after this waits for the loop to see it again
  paused_ = false;
}

void AckedWriter::Loop() {
  const absl::Time until = absl::Now() + kMaxRun;
  PGconn* conn = nullptr;
  while (!stop_ && absl::Now() < until) {
    if (paused_) {
      idle_ = true;
      absl::SleepFor(kPause);
      continue;
    }
    if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
      if (conn != nullptr) PQfinish(conn);
      conn = PQconnectdb(conninfo_.c_str());
      if (PQstatus(conn) != CONNECTION_OK) {
        Fail(PQerrorMessage(conn));
        absl::SleepFor(absl::Milliseconds(100));
        continue;
      }
    }
    PGresult* result = PQexec(conn, kWriteSql);
    if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1) {
      int64_t n = 0;
      if (absl::SimpleAtoi(PQgetvalue(result, 0, 0), &n)) {
        std::lock_guard<std::mutex> lock(mu_);
        acked_.push_back(n);
      }
    } else {
      Fail(PQerrorMessage(conn));
    }
    PQclear(result);
    absl::SleepFor(kPause);
  }
  if (conn != nullptr) PQfinish(conn);
}

}  // namespace pghaul::faults
