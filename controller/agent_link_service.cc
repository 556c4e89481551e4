#include "controller/agent_link_service.h"

#include <deque>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/identifiers.h"
#include "common/logging.h"
#include "common/task_names.h"
#include "common/time_proto.h"
#include "common/tls_credentials.h"
#include "common/version.h"

namespace pghaul::controller {
namespace {

// At most this many messages wait for an agent that reads too slowly; past it the stream is
// closed (the agent reconnects) rather than letting the controller's memory grow.
constexpr size_t kMaxQueuedWrites = 4096;

// What a stream refused by the reconnect limiter is told: the limit and when to retry. (pghaul's
// agent does not parse it: its exponential backoff soon waits longer than any retry_after.)
grpc::Status RateLimited(absl::string_view who, int burst, absl::Duration interval,
                         absl::Duration retry_after) {
  return grpc::Status(
      grpc::StatusCode::RESOURCE_EXHAUSTED,
      absl::StrCat("rate-limited: ", who, " connected more than ", burst,
                   " times in a burst (then at most once per ", absl::FormatDuration(interval),
                   "); retry in ",
                   absl::FormatDuration(absl::Ceil(retry_after, absl::Milliseconds(1)))));
}

// One agent stream. Lifetime: owned by gRPC between Connect() and OnDone(); the registry may hold
// a shared_ptr to it as an AgentSession for longer, so the reactor keeps a reference to itself
// (`self_`) until OnDone, and every method is a no-op after that.
//
// Threading: gRPC calls the On* methods on its threads, the ticker calls Send/Close. All state is
// under mu_; no method blocks.
class AgentStream final : public grpc::ServerBidiReactor<v1::AgentMessage, v1::ControllerMessage>,
                          public AgentSession {
 public:
  AgentStream(AgentRegistry* registry, TaskTracker* tasks, ReconnectLimiter* limiter,
              const std::string& controller_id, absl::Duration heartbeat_interval, std::string peer,
              std::optional<CertificateNames> certificate)
      : registry_(registry),
        tasks_(tasks),
        limiter_(limiter),
        controller_id_(controller_id),
        heartbeat_interval_(heartbeat_interval),
        peer_(std::move(peer)),
        certificate_(std::move(certificate)) {}

  // With `refusal`, the stream ends at once with it, nothing read.
  void Begin(std::shared_ptr<AgentStream> self, std::optional<grpc::Status> refusal) {
    absl::MutexLock lock(&mu_);
    self_ = std::move(self);
    if (refusal.has_value()) {
      FinishLocked(*std::move(refusal));
      return;
    }
    StartRead(&incoming_);
  }

  void Send(const v1::ControllerMessage& message) override {
    absl::MutexLock lock(&mu_);
    if (done_ || finishing_) return;
    if (queue_.size() >= kMaxQueuedWrites) {
      FinishLocked(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                "agent does not read its messages; closing the stream"));
      return;
    }
    queue_.push_back(message);
    if (!writing_) WriteNextLocked();
  }

  void Close(absl::string_view reason) override {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(reason)));
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The agent closed its side or the stream broke.
      Disconnect("stream closed by the agent or the network");
      absl::MutexLock lock(&mu_);
      FinishLocked(grpc::Status::OK);
      return;
    }
    if (!Handle(incoming_)) return;
    StartRead(&incoming_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      queue_.clear();
      if (!finishing_) {
        finishing_ = true;
        finish_status_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "write to agent failed");
      }
    } else {
      queue_.pop_front();
    }
    if (finishing_) {
      // Finish waited for this write; once finishing, nothing more is written.
      Finish(finish_status_);
      return;
    }
    if (!queue_.empty()) WriteNextLocked();
  }

  void OnCancel() override { Disconnect("stream cancelled (agent gone or network broken)"); }

  void OnDone() override {
    Disconnect("stream ended");
    std::shared_ptr<AgentStream> keep;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      queue_.clear();
      keep = std::move(self_);
    }
    // `keep` may hold the last reference: this object is destroyed on return.
  }

 private:
  // Returns false when the stream is being ended and no further read must start.
  bool Handle(const v1::AgentMessage& message) {
    if (agent_id_.empty()) return HandleHello(message);
    switch (message.msg_case()) {
      case v1::AgentMessage::kHeartbeat:
        return TouchOrEnd(registry_->Touch(agent_id_, generation_));
      case v1::AgentMessage::kFacts:
        return TouchOrEnd(registry_->UpdateFacts(agent_id_, generation_, message.facts().facts()));
      case v1::AgentMessage::kTaskEvent: {
        if (!registry_->Touch(agent_id_, generation_)) return TouchOrEnd(false);
        // An agent only ever reports under ids it accepted; anything else is not worth a
        // journal lookup (or a log line as long as the id).
        if (absl::Status id = ValidateTaskId(message.task_event().task_id()); !id.ok()) {
          return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("a task event under a malformed task id: ", id.message()));
        }
        // Journaled first, acknowledged after: a crash in between makes the agent resend it,
        // and the journal ignores the copy.
        absl::StatusOr<v1::Ack> ack = tasks_->Record(agent_id_, message.task_event());
        if (!ack.ok()) {
          PGH_LOG_ERROR("cannot journal an event of task {}: {}", message.task_event().task_id(),
                        ack.status().message());
          return Reject(grpc::StatusCode::UNAVAILABLE,
                        "the controller cannot journal task events; the agent will resend them");
        }
        v1::ControllerMessage reply;
        *reply.mutable_ack() = *std::move(ack);
        Send(reply);
        return true;
      }
      case v1::AgentMessage::kHello:
        return Reject(grpc::StatusCode::FAILED_PRECONDITION,
                      "a second Hello on one stream; open a new stream to reconnect");
      case v1::AgentMessage::MSG_NOT_SET:
        return Reject(grpc::StatusCode::INVALID_ARGUMENT, "empty message from agent");
    }
    return Reject(grpc::StatusCode::INVALID_ARGUMENT, "unknown message from agent");
  }

  bool HandleHello(const v1::AgentMessage& message) {
    if (message.msg_case() != v1::AgentMessage::kHello) {
      return Reject(grpc::StatusCode::FAILED_PRECONDITION,
                    "the first message on a stream must be Hello");
    }
    const v1::Hello& hello = message.hello();
    if (absl::Status valid = ValidateAgentId(hello.agent_id()); !valid.ok()) {
      return Reject(grpc::StatusCode::INVALID_ARGUMENT, std::string(valid.message()));
    }
    if (certificate_.has_value()) {
      if (absl::Status named = CheckAgentCertificate(*certificate_, hello.agent_id());
          !named.ok()) {
        PGH_LOG_WARN("refusing agent '{}' from {}: its certificate names {}, not the id it claims",
                     hello.agent_id(), peer_, DescribeCertificateNames(*certificate_));
        return Reject(grpc::StatusCode::PERMISSION_DENIED, std::string(named.message()));
      }
    }
    if (hello.versions().protocol() != kProtocolVersion) {
      return Reject(grpc::StatusCode::FAILED_PRECONDITION,
                    absl::StrCat("agent speaks protocol ", hello.versions().protocol(),
                                 ", this controller speaks ", kProtocolVersion,
                                 ": install the same pghaul release on agent and controller"));
    }
    if (hello.incarnation().empty() || hello.incarnation().size() > 64) {
      return Reject(grpc::StatusCode::INVALID_ARGUMENT, "Hello needs an incarnation id");
    }
    // Last, so that only well-formed ids take room in the limiter (the peer's own limit already
    // bounds how fast malformed Hellos arrive).
    if (ReconnectLimiter::Decision admitted = limiter_->AdmitAgent(hello.agent_id());
        !admitted.allowed) {
      const ReconnectLimits& limits = limiter_->limits();
      if (admitted.log) {
        PGH_LOG_WARN(
            "refusing streams of agent '{}' (now from {}): it reconnects too often ({} refused "
            "since the last such line; limit {} at once, then one per {}); admitted again in {}",
            hello.agent_id(), peer_, admitted.refusals, limits.agent_burst,
            absl::FormatDuration(limits.agent_interval),
            absl::FormatDuration(absl::Ceil(admitted.retry_after, absl::Milliseconds(1))));
      }
      absl::MutexLock lock(&mu_);
      FinishLocked(RateLimited(absl::StrCat("agent '", hello.agent_id(), "'"), limits.agent_burst,
                               limits.agent_interval, admitted.retry_after));
      return false;
    }
    std::shared_ptr<AgentSession> self;
    {
      absl::MutexLock lock(&mu_);
      self = self_;
    }
    AgentRegistry::Registration registration = registry_->Connect(hello, peer_, std::move(self));
    if (registration.superseded != nullptr) {
      registration.superseded->Close("replaced by a newer stream from the same agent");
    }
    agent_id_ = hello.agent_id();
    generation_ = registration.generation;

    v1::ControllerMessage welcome;
    welcome.mutable_welcome()->set_controller_id(controller_id_);
    welcome.mutable_welcome()->set_heartbeat_interval_ms(
        static_cast<uint32_t>(absl::ToInt64Milliseconds(heartbeat_interval_)));
    welcome.mutable_welcome()->mutable_versions()->set_pghaul(kPghaulVersion);
    welcome.mutable_welcome()->mutable_versions()->set_protocol(kProtocolVersion);
    Send(welcome);
    // Unfinished tasks are sent again: the agent re-attaches to those it knows and replays
    // their unacknowledged events.
    for (const v1::Task& task : tasks_->Unfinished(agent_id_)) {
      v1::ControllerMessage resend;
      *resend.mutable_task() = task;
      Send(resend);
    }
    return true;
  }

  bool TouchOrEnd(bool current) {
    if (current) return true;
    return Reject(grpc::StatusCode::ABORTED, "this stream was replaced by a newer one");
  }

  bool Reject(grpc::StatusCode code, const std::string& why) {
    PGH_LOG_WARN("closing stream from {} ({}): {}", peer_,
                 agent_id_.empty() ? std::string("before Hello") : "agent " + agent_id_, why);
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status(code, why));
    return false;
  }

  void Disconnect(absl::string_view reason) {
    if (!agent_id_.empty()) registry_->Disconnect(agent_id_, generation_, reason);
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    writing_ = true;
    StartWrite(&queue_.front());
  }

  // Finish may not overlap a write in flight: it waits for the write to complete.
  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (done_ || finishing_) return;
    finishing_ = true;
    finish_status_ = std::move(status);
    if (!writing_) Finish(finish_status_);
  }

  AgentRegistry* const registry_;
  TaskTracker* const tasks_;
  ReconnectLimiter* const limiter_;
  const std::string& controller_id_;
  const absl::Duration heartbeat_interval_;
  const std::string peer_;
  // The names in the agent's client certificate, when certificates are required.
  const std::optional<CertificateNames> certificate_;

  // Set once by the first read (Hello); only read by gRPC's read callbacks after that, which
  // never run concurrently with each other.
  std::string agent_id_;
  uint64_t generation_ = 0;
  v1::AgentMessage incoming_;

  absl::Mutex mu_;
  std::shared_ptr<AgentStream> self_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::ControllerMessage> queue_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

AgentLinkService::AgentLinkService(AgentRegistry* registry, TaskTracker* tasks,
                                   std::string controller_id, absl::Duration heartbeat_interval,
                                   bool require_certificates, ReconnectLimits reconnect_limits,
                                   Clock* clock)
    : registry_(registry),
      tasks_(tasks),
      controller_id_(std::move(controller_id)),
      heartbeat_interval_(heartbeat_interval),
      require_certificates_(require_certificates),
      limiter_(std::move(reconnect_limits), clock) {}

grpc::ServerBidiReactor<v1::AgentMessage, v1::ControllerMessage>* AgentLinkService::Connect(
    grpc::CallbackServerContext* context) {
  std::string peer = context->peer();
  // Checked before anything else of the stream is looked at, so a host that floods the
  // controller with streams costs it as little as possible.
  std::optional<grpc::Status> refusal;
  if (ReconnectLimiter::Decision admitted = limiter_.AdmitPeer(peer); !admitted.allowed) {
    const ReconnectLimits& limits = limiter_.limits();
    const std::string host = ReconnectLimiter::PeerHost(peer);
    if (admitted.log) {
      PGH_LOG_WARN(
          "refusing agent streams from {}: it opens them too often ({} refused since the last "
          "such line; limit {} at once, then one per {}); admitted again in {}",
          host, admitted.refusals, limits.peer_burst, absl::FormatDuration(limits.peer_interval),
          absl::FormatDuration(absl::Ceil(admitted.retry_after, absl::Milliseconds(1))));
    }
    refusal = RateLimited(absl::StrCat("host ", host), limits.peer_burst, limits.peer_interval,
                          admitted.retry_after);
  }
  std::optional<CertificateNames> certificate;
  if (require_certificates_ && !refusal.has_value()) {
    certificate = PeerCertificateNames(*context->auth_context());
  }
  auto stream =
      std::make_shared<AgentStream>(registry_, tasks_, &limiter_, controller_id_,
                                    heartbeat_interval_, std::move(peer), std::move(certificate));
  stream->Begin(stream, std::move(refusal));
  return stream.get();
}

void AgentLinkService::Tick() {
  for (const std::shared_ptr<AgentSession>& stale : registry_->Sweep()) {
    stale->Close("no heartbeat from the agent in time");
  }
  v1::ControllerMessage heartbeat;
  heartbeat.mutable_heartbeat()->set_seq(++heartbeat_seq_);
  *heartbeat.mutable_heartbeat()->mutable_sent_at() = ToProto(absl::Now());
  for (const std::shared_ptr<AgentSession>& session : registry_->OnlineSessions()) {
    session->Send(heartbeat);
  }
}

}  // namespace pghaul::controller
