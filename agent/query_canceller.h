// Lets another thread stop the statement a PgConnection is running, for tasks that may run for a
// long time (TABLE_CHECKSUMS over a large database) and must end when the controller cancels
// them.
//
// Lifecycle: the worker Attach()es each connection it opens and Detach()es it before closing it;
// Cancel() (from any thread, any number of times) marks the canceller cancelled and sends a
// cancel request (PQcancel, which is safe from another thread) to the attached connection, if
// any. Attaching after Cancel() sends the request at once, so a cancel never falls between two
// connections. The worker checks cancelled() between statements.
#pragma once

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "libpq-fe.h"

namespace pghaul::agent {

class QueryCanceller {
 public:
  QueryCanceller() = default;
  QueryCanceller(const QueryCanceller&) = delete;
  QueryCanceller& operator=(const QueryCanceller&) = delete;
  ~QueryCanceller();

  // `conn` must stay open until Detach().
  void Attach(PGconn* conn);
  void Detach();
  void Cancel();
  bool cancelled() const;

 private:
  void SendCancelLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  PGcancel* cancel_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

// Attaches a connection for the lifetime of the scope (a null canceller does nothing).
class ScopedCancelAttachment {
 public:
  ScopedCancelAttachment(QueryCanceller* canceller, PGconn* conn) : canceller_(canceller) {
    if (canceller_ != nullptr) canceller_->Attach(conn);
  }
  ~ScopedCancelAttachment() {
    if (canceller_ != nullptr) canceller_->Detach();
  }
  ScopedCancelAttachment(const ScopedCancelAttachment&) = delete;
  ScopedCancelAttachment& operator=(const ScopedCancelAttachment&) = delete;

 private:
  QueryCanceller* canceller_;
};

}  // namespace pghaul::agent
