#include "controller/reconnect_limiter.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "common/logging.h"

namespace pghaul::controller {
namespace {

// Refilled buckets are forgotten at most this often (an O(keys) walk).
constexpr absl::Duration kSweepInterval = absl::Seconds(1);
// How often the limiter says that its table is full.
constexpr absl::Duration kFullTableLogInterval = absl::Minutes(1);

ReconnectLimits Normalized(ReconnectLimits limits) {
  limits.agent_burst = std::max(limits.agent_burst, 1);
  limits.agent_interval = std::max(limits.agent_interval, absl::ZeroDuration());
  limits.peer_burst = std::max(limits.peer_burst, 1);
  limits.peer_interval = std::max(limits.peer_interval, absl::ZeroDuration());
  return limits;
}

}  // namespace

ReconnectLimiter::ReconnectLimiter(ReconnectLimits limits, Clock* clock)
    : limits_(Normalized(std::move(limits))), clock_(clock) {
  agents_.burst = limits_.agent_burst;
  agents_.interval = limits_.agent_interval;
  peers_.burst = limits_.peer_burst;
  peers_.interval = limits_.peer_interval;
}

std::string ReconnectLimiter::PeerHost(absl::string_view peer) {
  if (!absl::StartsWith(peer, "ipv4:") && !absl::StartsWith(peer, "ipv6:")) {
    return std::string(peer);
  }
  peer.remove_prefix(5);
  size_t colon = peer.rfind(':');
  // A port follows the last colon, after "]" (or its escape "%5D") for IPv6.
  if (colon != absl::string_view::npos && colon > 0) peer = peer.substr(0, colon);
  return std::string(peer);
}

ReconnectLimiter::Decision ReconnectLimiter::AdmitPeer(absl::string_view peer) {
  std::string host = PeerHost(peer);
  absl::MutexLock lock(&mu_);
  return Admit(peers_, host);
}

ReconnectLimiter::Decision ReconnectLimiter::AdmitAgent(absl::string_view agent_id) {
  absl::MutexLock lock(&mu_);
  return Admit(agents_, agent_id);
}

size_t ReconnectLimiter::tracked_keys() const {
  absl::MutexLock lock(&mu_);
  return agents_.entries.size() + peers_.entries.size();
}

ReconnectLimiter::Decision ReconnectLimiter::Admit(Table& table, absl::string_view key) {
  const absl::Time now = clock_->Now();
  if (now >= table.next_sweep) {
    Sweep(table, now);
    table.next_sweep = now + kSweepInterval;
  }
  const absl::Duration tolerance = table.interval * (table.burst - 1);
  auto it = table.entries.find(key);
  if (it == table.entries.end()) {
    // Unknown: a full bucket. A burst of 1 with no interval would never refuse; neither needs
    // an entry then.
    if (table.burst == 1 && table.interval == absl::ZeroDuration()) return Decision{};
    if (table.entries.size() >= limits_.max_tracked_keys) {
      if (now >= next_full_table_log_) {
        next_full_table_log_ = now + kFullTableLogInterval;
        PGH_LOG_WARN(
            "the reconnect limiter tracks {} keys, its limit, none of them idle: new agent ids and "
            "hosts connect unlimited until some go quiet (many hosts or agent ids reconnecting "
            "at once?)",
            table.entries.size());
      }
      return Decision{};
    }
    table.entries.emplace(std::string(key), Entry{.full_at = now + table.interval});
    return Decision{};
  }
  Entry& entry = it->second;
  const absl::Time arrival = std::max(entry.full_at, now);
  if (arrival - now <= tolerance) {
    entry.full_at = arrival + table.interval;
    return Decision{};
  }
  Decision refused;
  refused.allowed = false;
  refused.retry_after = arrival - now - tolerance;
  ++entry.unlogged_refusals;
  if (now >= entry.next_log) {
    refused.log = true;
    refused.refusals = entry.unlogged_refusals;
    entry.unlogged_refusals = 0;
    entry.next_log = now + limits_.refusal_log_interval;
  }
  return refused;
}

void ReconnectLimiter::Sweep(Table& table, absl::Time now) {
  absl::erase_if(table.entries,
                 [now](const auto& key_and_entry) { return key_and_entry.second.full_at <= now; });
}

}  // namespace pghaul::controller
