#include "agent/query_canceller.h"

#include "common/logging.h"

namespace pghaul::agent {

QueryCanceller::~QueryCanceller() { Detach(); }

void QueryCanceller::Attach(PGconn* conn) {
  absl::MutexLock lock(&mu_);
  if (cancel_ != nullptr) PQfreeCancel(cancel_);
  cancel_ = conn != nullptr ? PQgetCancel(conn) : nullptr;
  if (cancelled_) SendCancelLocked();
}

void QueryCanceller::Detach() {
  absl::MutexLock lock(&mu_);
  if (cancel_ != nullptr) PQfreeCancel(cancel_);
  cancel_ = nullptr;
}

void QueryCanceller::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  SendCancelLocked();
}

bool QueryCanceller::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

void QueryCanceller::SendCancelLocked() {
  if (cancel_ == nullptr) return;
  char error[256] = {};
  if (PQcancel(cancel_, error, sizeof(error)) == 0) {
    PGH_LOG_WARN("could not send a cancel request to PostgreSQL: {}", error);
  }
}

}  // namespace pghaul::agent
