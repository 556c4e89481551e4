// The controller's view of every agent that ever said Hello since it started.
//
// Lifecycle of one agent's entry:
//
//   (unknown) --Connect--> ONLINE --Disconnect(current stream)--> OFFLINE
//                            ^  |                                   |
//                            |  +--Sweep: no message for            |
//                            |     heartbeat_interval x missed ---->+
//                            +------------Connect (new stream)------+
//
// Each stream gets a generation number. A newer stream for the same agent id replaces the older
// one: the registry hands the older session back so the caller can close it, and events from the
// older generation are ignored from then on. A Hello with the incarnation already known is a
// reconnect; a new incarnation is a restart of the agent process.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "controller/agent_session.h"
#include "pghaul/v1/migrations.pb.h"

namespace pghaul::controller {

class AgentRegistry {
 public:
  AgentRegistry(Clock* clock, absl::Duration heartbeat_interval, int missed_heartbeats);

  struct Registration {
    uint64_t generation = 0;
    // The stream this one replaced, still open: the caller closes it. Null if none.
    std::shared_ptr<AgentSession> superseded;
  };
  // Records a new stream for hello.agent_id(); the agent is online from now on.
  Registration Connect(const v1::Hello& hello, absl::string_view peer,
                       std::shared_ptr<AgentSession> session);

  // Any message on the stream proves the agent alive. Returns false if `generation` is no longer
  // the agent's current stream (the caller should end that stream).
  bool Touch(absl::string_view agent_id, uint64_t generation);
  bool UpdateFacts(absl::string_view agent_id, uint64_t generation, const v1::HostFacts& facts);

  // The stream ended. Ignored unless `generation` is still the agent's current stream.
  void Disconnect(absl::string_view agent_id, uint64_t generation, absl::string_view reason);

  // Marks offline every online agent not heard from for heartbeat_interval x missed_heartbeats,
  // and returns their sessions so the caller can close them.
  std::vector<std::shared_ptr<AgentSession>> Sweep();

  // The current session of every online agent (to send heartbeats to).
  std::vector<std::shared_ptr<AgentSession>> OnlineSessions() const;

  // The agent's live stream, or null when it is offline or unknown.
  std::shared_ptr<AgentSession> Session(absl::string_view agent_id) const;

  // Sorted by agent id.
  std::vector<v1::AgentInfo> List() const;
  // NotFound if the agent never connected since the controller started.
  absl::StatusOr<v1::AgentInfo> Get(absl::string_view agent_id) const;

  absl::Duration offline_after() const { return heartbeat_interval_ * missed_heartbeats_; }

 private:
  struct Entry {
    v1::AgentInfo info;
    uint64_t generation = 0;
    absl::Time last_message;
    std::shared_ptr<AgentSession> session;  // null when offline
  };
  // Returns the entry if `generation` is its current, live stream.
  Entry* CurrentEntry(absl::string_view agent_id, uint64_t generation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkSeen(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock* const clock_;
  const absl::Duration heartbeat_interval_;
  const int missed_heartbeats_;

  mutable absl::Mutex mu_;
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<std::string, Entry> agents_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pghaul::controller
