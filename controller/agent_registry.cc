#include "controller/agent_registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/time_proto.h"

namespace pghaul::controller {

AgentRegistry::AgentRegistry(Clock* clock, absl::Duration heartbeat_interval, int missed_heartbeats)
    : clock_(clock),
      heartbeat_interval_(heartbeat_interval),
      missed_heartbeats_(missed_heartbeats) {}

AgentRegistry::Registration AgentRegistry::Connect(const v1::Hello& hello, absl::string_view peer,
                                                   std::shared_ptr<AgentSession> session) {
  absl::MutexLock lock(&mu_);
  absl::Time now = clock_->Now();
  auto [it, inserted] = agents_.try_emplace(hello.agent_id());
  Entry& entry = it->second;
  v1::AgentInfo& info = entry.info;
  Registration registration;
  if (inserted) {
    info.set_agent_id(hello.agent_id());
    *info.mutable_first_seen() = ToProto(now);
    PGH_LOG_INFO("agent {} connected from {} (incarnation {})", hello.agent_id(), peer,
                 hello.incarnation());
  } else if (info.incarnation() == hello.incarnation()) {
    info.set_reconnects(info.reconnects() + 1);
    PGH_LOG_INFO("agent {} reconnected from {} (reconnect #{})", hello.agent_id(), peer,
                 info.reconnects());
  } else {
    info.set_restarts(info.restarts() + 1);
    PGH_LOG_INFO("agent {} restarted: new incarnation {} from {} (was {})", hello.agent_id(),
                 hello.incarnation(), peer, info.incarnation());
  }
  registration.superseded = std::move(entry.session);
  registration.generation = next_generation_++;
  entry.generation = registration.generation;
  entry.session = std::move(session);
  info.set_incarnation(hello.incarnation());
  info.set_peer(std::string(peer));
  info.set_online(true);
  info.clear_offline_reason();
  *info.mutable_versions() = hello.versions();
  *info.mutable_facts() = hello.facts();
  *info.mutable_connected_since() = ToProto(now);
  MarkSeen(entry);
  return registration;
}

AgentRegistry::Entry* AgentRegistry::CurrentEntry(absl::string_view agent_id, uint64_t generation) {
  auto it = agents_.find(agent_id);
  if (it == agents_.end() || it->second.generation != generation) return nullptr;
  return &it->second;
}

void AgentRegistry::MarkSeen(Entry& entry) {
  entry.last_message = clock_->Now();
  *entry.info.mutable_last_seen() = ToProto(entry.last_message);
}

bool AgentRegistry::Touch(absl::string_view agent_id, uint64_t generation) {
  absl::MutexLock lock(&mu_);
  Entry* entry = CurrentEntry(agent_id, generation);
  if (entry == nullptr || entry->session == nullptr) return false;
  if (!entry->info.online()) {
    PGH_LOG_INFO("agent {} is heard from again", agent_id);
    entry->info.set_online(true);
    entry->info.clear_offline_reason();
  }
  MarkSeen(*entry);
  return true;
}

bool AgentRegistry::UpdateFacts(absl::string_view agent_id, uint64_t generation,
                                const v1::HostFacts& facts) {
  absl::MutexLock lock(&mu_);
  Entry* entry = CurrentEntry(agent_id, generation);
  if (entry == nullptr || entry->session == nullptr) return false;
  if (entry->info.facts().postgres().reachable() != facts.postgres().reachable()) {
    PGH_LOG_INFO("agent {}: local PostgreSQL is now {}", agent_id,
                 facts.postgres().reachable() ? "reachable"
                                              : "unreachable (" + facts.postgres().error() + ")");
  }
  *entry->info.mutable_facts() = facts;
  MarkSeen(*entry);
  return true;
}

void AgentRegistry::Disconnect(absl::string_view agent_id, uint64_t generation,
                               absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  Entry* entry = CurrentEntry(agent_id, generation);
  if (entry == nullptr || entry->session == nullptr) return;
  entry->session = nullptr;
  if (entry->info.online()) {
    entry->info.set_online(false);
    entry->info.set_offline_reason(std::string(reason));
    PGH_LOG_WARN("agent {} is offline: {}", agent_id, reason);
  }
}

std::vector<std::shared_ptr<AgentSession>> AgentRegistry::Sweep() {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<AgentSession>> stale;
  absl::Time now = clock_->Now();
  for (auto& [id, entry] : agents_) {
    if (!entry.info.online() || now - entry.last_message < offline_after()) continue;
    std::string reason =
        absl::StrCat("no message for ", absl::FormatDuration(now - entry.last_message),
                     " (limit: ", missed_heartbeats_, " heartbeats of ",
                     absl::FormatDuration(heartbeat_interval_), ")");
    PGH_LOG_WARN("agent {} is offline: {}", id, reason);
    entry.info.set_online(false);
    entry.info.set_offline_reason(reason);
    if (entry.session != nullptr) stale.push_back(std::move(entry.session));
    entry.session = nullptr;
  }
  return stale;
}

std::vector<std::shared_ptr<AgentSession>> AgentRegistry::OnlineSessions() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<AgentSession>> sessions;
  for (const auto& [id, entry] : agents_) {
    if (entry.session != nullptr) sessions.push_back(entry.session);
  }
  return sessions;
}

std::shared_ptr<AgentSession> AgentRegistry::Session(absl::string_view agent_id) const {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(agent_id);
  return it == agents_.end() ? nullptr : it->second.session;
}

std::vector<v1::AgentInfo> AgentRegistry::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::AgentInfo> out;
  out.reserve(agents_.size());
  for (const auto& [id, entry] : agents_) out.push_back(entry.info);
  std::sort(out.begin(), out.end(), [](const v1::AgentInfo& a, const v1::AgentInfo& b) {
    return a.agent_id() < b.agent_id();
  });
  return out;
}

absl::StatusOr<v1::AgentInfo> AgentRegistry::Get(absl::string_view agent_id) const {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(agent_id);
  if (it == agents_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no agent '", agent_id, "' has connected to this controller"));
  }
  return it->second.info;
}

}  // namespace pghaul::controller
