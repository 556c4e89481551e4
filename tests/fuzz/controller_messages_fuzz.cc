// Fuzzes what the controller does with the messages of agents: the logic that
// controller/agent_link_service.cc (AgentStream::Handle, HandleHello, Tick) drives in the
// AgentRegistry and the TaskTracker for each AgentMessage, without a network. Input: a stream of
// length-delimited AgentMessages (fuzz_support.h), read as what arrives on successive streams:
// the first message of a stream must be a valid Hello, and any message the stream handler
// rejects ends that stream (the next message opens a new one).
//
// AgentStream lives in an anonymous namespace of agent_link_service.cc, so its checks (the
// ReconnectLimiter per peer when a stream opens and per agent id at Hello, agent id, protocol
// version, incarnation, task ids of events) and its dispatch are mirrored here, step for step;
// keep them in sync when that file changes. The limiter gets small limits and the fake clock, so
// that inputs reach its refusals and its memory bound.
//
// Each input starts from a fresh in-memory state database that holds three journaled tasks
// (one with secrets), so task events can hit known tasks; at the end the journal is loaded again
// by a second TaskTracker, as after a controller restart, and must match.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/clock.h"
#include "common/identifiers.h"
#include "common/task_names.h"
#include "common/version.h"
#include "controller/agent_registry.h"
#include "controller/agent_session.h"
#include "controller/reconnect_limiter.h"
#include "controller/sqlite_db.h"
#include "controller/task_tracker.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "pghaul/v1/agent_link.pb.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

namespace v1 = pghaul::v1;
using pghaul::controller::AgentRegistry;
using pghaul::controller::AgentSession;
using pghaul::controller::ReconnectLimiter;
using pghaul::controller::ReconnectLimits;
using pghaul::controller::TaskTracker;

constexpr absl::Duration kHeartbeatInterval = absl::Seconds(5);

// The stream as the registry sees it: it only records what the controller did to it.
class RecordingSession : public AgentSession {
 public:
  void Send(const v1::ControllerMessage& message) override {
    if (!closed_) ++sent_;
  }
  void Close(absl::string_view reason) override { closed_ = true; }
  bool closed() const { return closed_; }

 private:
  bool closed_ = false;
  int sent_ = 0;
};

struct Stream {
  std::shared_ptr<RecordingSession> session = std::make_shared<RecordingSession>();
  std::string agent_id;  // "" until its Hello was accepted
  uint64_t generation = 0;
};

// The message's bytes with map entries sorted, so equal messages give equal bytes (NaN included,
// which a field-by-field comparison would call different).
std::string Canonical(const google::protobuf::Message& message) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream output(&bytes);
    google::protobuf::io::CodedOutputStream coded(&output);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return bytes;
}

v1::Task SqlTask(const std::string& id) {
  v1::Task task;
  task.set_task_id(id);
  task.mutable_sql()->set_query(v1::SqlQuery::SWITCH_WAL);
  return task;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  pghaul::fuzz::QuietLogging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pghaul::FakeClock clock;
  absl::StatusOr<std::unique_ptr<pghaul::controller::SqliteDb>> db =
      pghaul::controller::SqliteDb::Open(":memory:");
  if (!db.ok()) std::abort();
  absl::StatusOr<std::unique_ptr<TaskTracker>> tasks = TaskTracker::Open(db->get(), &clock);
  if (!tasks.ok()) std::abort();
  AgentRegistry registry(&clock, kHeartbeatInterval, /*missed_heartbeats=*/3);
  ReconnectLimits limits;
  limits.agent_burst = 3;
  limits.agent_interval = absl::Seconds(1);
  limits.peer_burst = 6;
  limits.peer_interval = absl::Milliseconds(500);
  limits.max_tracked_keys = 4;
  ReconnectLimiter limiter(limits, &clock);

  v1::Task configure;
  configure.set_task_id("t-configure");
  configure.mutable_configure_pgbackrest()->set_migration_id("m1");
  configure.mutable_configure_pgbackrest()->mutable_secrets()->set_cipher_pass("secret");
  v1::Task backup;
  backup.set_task_id("t-backup");
  backup.mutable_pgbackrest()->set_migration_id("m1");
  backup.mutable_pgbackrest()->mutable_backup()->set_type("full");
  if (!(*tasks)->Register("db1", SqlTask("t-sql")).ok() ||
      !(*tasks)->Register("db1", configure).ok() || !(*tasks)->Register("db2", backup).ok()) {
    std::abort();
  }

  std::unique_ptr<Stream> stream;
  int streams_opened = 0;
  std::vector<std::shared_ptr<RecordingSession>> sessions;  // kept alive, as gRPC would
  // The stream's end as OnReadDone/OnDone see it.
  auto end_stream = [&](absl::string_view reason) {
    if (stream != nullptr && !stream->agent_id.empty()) {
      registry.Disconnect(stream->agent_id, stream->generation, reason);
    }
    stream.reset();
  };

  // AgentStream::HandleHello.
  auto handle_hello = [&](const v1::AgentMessage& message) -> bool {
    if (message.msg_case() != v1::AgentMessage::kHello) return false;
    const v1::Hello& hello = message.hello();
    if (!pghaul::ValidateAgentId(hello.agent_id()).ok()) return false;
    if (hello.versions().protocol() != pghaul::kProtocolVersion) return false;
    if (hello.incarnation().empty() || hello.incarnation().size() > 64) return false;
    if (!limiter.AdmitAgent(hello.agent_id()).allowed) return false;
    AgentRegistry::Registration registration =
        registry.Connect(hello, "ipv4:127.0.0.1:40000", stream->session);
    if (registration.superseded != nullptr) {
      registration.superseded->Close("replaced by a newer stream from the same agent");
    }
    stream->agent_id = hello.agent_id();
    stream->generation = registration.generation;
    for (const v1::Task& task : (*tasks)->Unfinished(stream->agent_id)) {
      if (task.task_id().empty()) std::abort();
      v1::ControllerMessage resend;
      *resend.mutable_task() = task;
      stream->session->Send(resend);
    }
    return true;
  };

  // AgentStream::Handle.
  auto handle = [&](const v1::AgentMessage& message) -> bool {
    if (stream->agent_id.empty()) return handle_hello(message);
    switch (message.msg_case()) {
      case v1::AgentMessage::kHeartbeat:
        return registry.Touch(stream->agent_id, stream->generation);
      case v1::AgentMessage::kFacts:
        return registry.UpdateFacts(stream->agent_id, stream->generation, message.facts().facts());
      case v1::AgentMessage::kTaskEvent: {
        if (!registry.Touch(stream->agent_id, stream->generation)) return false;
        const v1::TaskEvent& event = message.task_event();
        if (!pghaul::ValidateTaskId(event.task_id()).ok()) return false;
        absl::StatusOr<v1::Ack> ack = (*tasks)->Record(stream->agent_id, event);
        if (!ack.ok()) return false;
        // Documented: the acknowledgement names the event's task and covers it.
        if (ack->task_id() != event.task_id() || ack->seq() < event.seq()) std::abort();
        v1::ControllerMessage reply;
        *reply.mutable_ack() = *ack;
        stream->session->Send(reply);
        return true;
      }
      default:
        return false;
    }
  };

  pghaul::fuzz::ForEachDelimited<v1::AgentMessage>(
      data, size, /*max_messages=*/64, [&](const v1::AgentMessage& message) {
        if (stream == nullptr) {
          // AgentLinkService::Connect: a few peers take turns; one over its limit is refused
          // before anything is read (this message is lost with it).
          const std::string peer = "ipv4:10.0.0." + std::to_string(streams_opened++ % 3) + ":40000";
          if (!limiter.AdmitPeer(peer).allowed) return;
          stream = std::make_unique<Stream>();
          sessions.push_back(stream->session);
        }
        if (!handle(message)) {
          end_stream("rejected");
          return;
        }
        if (message.has_heartbeat()) {
          // AgentLinkService::Tick, with time moved by an amount the input chooses.
          clock.Advance(absl::Seconds(static_cast<int64_t>(message.heartbeat().seq() % 32)));
          for (const std::shared_ptr<AgentSession>& stale : registry.Sweep()) {
            stale->Close("no heartbeat from the agent in time");
          }
          for (const std::shared_ptr<AgentSession>& live : registry.OnlineSessions()) {
            live->Send(v1::ControllerMessage());
          }
        }
        // A closed session (replaced, or swept) ends its stream, as gRPC's OnDone does.
        if (stream != nullptr && stream->session->closed()) end_stream("closed");
      });
  end_stream("input ended");

  // What the CLI reads, and a restarted controller's view of the journal.
  for (const v1::AgentInfo& info : registry.List()) {
    if (info.online()) std::abort();  // every stream has ended
    if (!registry.Get(info.agent_id()).ok()) std::abort();
  }
  std::vector<v1::TaskInfo> before = (*tasks)->List("", /*limit=*/100);
  for (const v1::TaskInfo& info : before) {
    if (!(*tasks)->Get(info.task_id(), /*recent_events=*/5).ok()) std::abort();
  }
  absl::StatusOr<std::unique_ptr<TaskTracker>> reloaded = TaskTracker::Open(db->get(), &clock);
  if (!reloaded.ok()) std::abort();
  std::vector<v1::TaskInfo> after = (*reloaded)->List("", /*limit=*/100);
  if (before.size() != after.size()) std::abort();
  for (size_t i = 0; i < before.size(); ++i) {
    if (Canonical(before[i]) != Canonical(after[i])) std::abort();
  }
  // Documented: secrets are never journaled, so a restarted controller re-sends a task that had
  // them only to re-attach.
  for (const v1::Task& task : (*reloaded)->Unfinished("db1")) {
    if (task.has_configure_pgbackrest() &&
        (task.configure_pgbackrest().has_secrets() || !task.reattach_only())) {
      std::abort();
    }
  }
  return 0;
}
