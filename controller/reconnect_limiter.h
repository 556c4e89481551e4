// Bounds how fast agents may open AgentLink streams, so that a broken or hostile agent that
// reconnects in a tight loop (or a host cycling made-up agent ids) cannot keep the controller busy
// with Hellos, registry churn and log lines.
//
// Two limits apply to every stream: one per peer host (the address without its port), checked
// when the stream opens, and one per agent id, checked at its Hello. Each is a token bucket, kept
// as the "theoretical arrival time" of the next connect (GCRA): a key may connect `burst` times at
// once, then once per `interval`. A refused connect takes no token, so a client that keeps
// hammering gets in again as soon as it waits `retry_after`.
//
// Memory is bounded: a key whose bucket has refilled is the same as an unknown key and is
// forgotten, and at most `max_tracked_keys` keys are kept. When the table is full of keys that
// are all still limited, a new key is admitted untracked (and that logged once a minute) rather
// than refused: refusing would let whoever filled the table lock every other agent out.
//
// Thread-safe: gRPC threads call Admit* concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace pghaul::controller {

// Defaults. An agent backs off exponentially (1 s, 2 s, ... 30 s) after a failed attempt and
// reconnects within a second after a stream that was welcomed ends, so a healthy agent stays far
// below 1 connect per second; 10 at once covers a few quick restarts.
inline constexpr int kDefaultAgentBurst = 10;
inline constexpr absl::Duration kDefaultAgentInterval = absl::Seconds(1);
// A host may run several agents (tests do; so do hosts with several clusters) and sits behind a
// NAT with many others, so its limit is larger; it still stops one host from cycling through
// made-up agent ids faster than 20 a second.
inline constexpr int kDefaultPeerBurst = 100;
inline constexpr absl::Duration kDefaultPeerInterval = absl::Milliseconds(50);
inline constexpr size_t kDefaultMaxTrackedKeys = 10000;
// Refusals of one key are logged at most once per this interval, with the count since.
inline constexpr absl::Duration kDefaultRefusalLogInterval = absl::Seconds(30);

struct ReconnectLimits {
  int agent_burst = kDefaultAgentBurst;
  absl::Duration agent_interval = kDefaultAgentInterval;
  int peer_burst = kDefaultPeerBurst;
  absl::Duration peer_interval = kDefaultPeerInterval;
  // Per kind of key (agent ids and peers each).
  size_t max_tracked_keys = kDefaultMaxTrackedKeys;
  absl::Duration refusal_log_interval = kDefaultRefusalLogInterval;
};

class ReconnectLimiter {
 public:
  // `clock` must outlive the limiter. A burst below 1 or a negative interval is raised to that;
  // limits() returns the limits in force.
  explicit ReconnectLimiter(ReconnectLimits limits = {}, Clock* clock = Clock::Real());

  struct Decision {
    bool allowed = true;
    // When refused: how long until one more connect of this key would be admitted.
    absl::Duration retry_after = absl::ZeroDuration();
    // When refused: whether the caller should log this refusal (the first one in this key's log
    // window), and how many refusals of the key that line stands for (this one included).
    bool log = false;
    uint64_t refusals = 0;
  };

  // A new stream from `peer` (as grpc::ServerContext::peer() gives it, e.g.
  // "ipv4:127.0.0.1:53114"; the port is ignored).
  Decision AdmitPeer(absl::string_view peer);
  // A Hello naming `agent_id`.
  Decision AdmitAgent(absl::string_view agent_id);

  // The host part of a gRPC peer string: "ipv4:10.0.0.1:5000" -> "10.0.0.1",
  // "ipv6:[::1]:5000" -> "[::1]"; anything else as given.
  static std::string PeerHost(absl::string_view peer);

  // Keys currently tracked, of both kinds (for tests of the memory bound).
  size_t tracked_keys() const;

  const ReconnectLimits& limits() const { return limits_; }

 private:
  struct Entry {
    // When the bucket is full again: a connect at `now` is admitted while
    // full_at - now <= interval * (burst - 1).
    absl::Time full_at;
    absl::Time next_log = absl::InfinitePast();
    uint64_t unlogged_refusals = 0;
  };
  struct Table {
    int burst;
    absl::Duration interval;
    absl::flat_hash_map<std::string, Entry> entries;
    absl::Time next_sweep = absl::InfinitePast();
  };

  Decision Admit(Table& table, absl::string_view key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets the keys whose bucket is full again.
  void Sweep(Table& table, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ReconnectLimits limits_;
  Clock* const clock_;

  mutable absl::Mutex mu_;
  Table agents_ ABSL_GUARDED_BY(mu_);
  Table peers_ ABSL_GUARDED_BY(mu_);
  absl::Time next_full_table_log_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace pghaul::controller
