#include "tests/faults/writable_sampler.h"

#include <libpq-fe.h>

#include "absl/time/clock.h"

namespace pghaul::faults {
namespace {

// One side's probe session.
class Probe {
 public:
  explicit Probe(const std::string& conninfo) : conninfo_(conninfo) {}
  ~Probe() {
    if (conn_ != nullptr) PQfinish(conn_);
  }

  // Whether a write in a transaction of `app` is accepted right now.
  bool AcceptsWrite() {
    if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
      if (conn_ != nullptr) PQfinish(conn_);
      conn_ = PQconnectdb(conninfo_.c_str());
      if (PQstatus(conn_) != CONNECTION_OK) return false;
    }
    if (!Command("BEGIN")) return false;
    const bool wrote = Command("INSERT INTO fault_probe DEFAULT VALUES");
    (void)Command("ROLLBACK");
    return wrote;
  }

 private:
  bool Command(const char* sql) {
    PGresult* result = PQexec(conn_, sql);
    const bool ok = PQresultStatus(result) == PGRES_COMMAND_OK;
    PQclear(result);
    return ok;
  }

  const std::string conninfo_;
  PGconn* conn_ = nullptr;
};

}  // namespace

bool AcceptsWrite(const std::string& conninfo, std::string* error) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  bool wrote = false;
  if (PQstatus(conn) == CONNECTION_OK) {
    PGresult* begin = PQexec(conn, "BEGIN");
    PQclear(begin);
    PGresult* insert = PQexec(conn, "INSERT INTO fault_probe DEFAULT VALUES");
    wrote = PQresultStatus(insert) == PGRES_COMMAND_OK;
    PQclear(insert);
  }
  if (!wrote && error != nullptr) *error = PQerrorMessage(conn);
  PQfinish(conn);  // the open transaction is rolled back
  return wrote;
}

void WritableSampler::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void WritableSampler::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

WritableSampler::Counts WritableSampler::counts() {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_;
}

void WritableSampler::Loop() {
  Probe source(source_conninfo_);
  Probe target(target_conninfo_);
  while (!stop_) {
    const absl::Time at = absl::Now();
    const bool source_writable = source.AcceptsWrite();
    const bool target_writable = target.AcceptsWrite();
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++counts_.samples;
      if (source_writable) ++counts_.source_writable;
      if (target_writable) ++counts_.target_writable;
      if (source_writable && target_writable) {
        ++counts_.both_writable;
        if (counts_.both_writable_at.size() < 5) {
          counts_.both_writable_at.push_back(absl::FormatTime(at, absl::UTCTimeZone()));
        }
      }
    }
    absl::SleepFor(kInterval - (absl::Now() - at) > absl::ZeroDuration()
                       ? kInterval - (absl::Now() - at)
                       : absl::Milliseconds(5));
  }
}

}  // namespace pghaul::faults
