#include "agent/controller_link.h"

#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/backoff.h"
#include "common/grpc_options.h"
#include "common/logging.h"
#include "common/time_proto.h"
#include "common/version.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "pghaul/v1/agent_link.grpc.pb.h"

namespace pghaul::agent {
namespace {

// Messages waiting to be written; past this the link is considered broken.
constexpr size_t kMaxQueuedWrites = 4096;

// Two facts are the same if they differ only in when they were gathered.
bool SameFacts(v1::HostFacts a, v1::HostFacts b) {
  a.clear_gathered_at();
  b.clear_gathered_at();
  return a.SerializeAsString() == b.SerializeAsString();
}

}  // namespace

// One call of AgentLink.Connect. gRPC invokes the On* methods on its threads; the link's loop
// thread calls Send/Cancel and waits on the state under mu_. A hold keeps the call open for
// writes from the loop thread until the read side has ended.
class ControllerLink::Stream final
    : public grpc::ClientBidiReactor<v1::AgentMessage, v1::ControllerMessage> {
 public:
  explicit Stream(v1::AgentLink::Stub* stub) : stub_(stub) {}

  void Start(const v1::AgentMessage& hello) {
    stub_->async()->Connect(&context_, this);
    AddHold();
    Send(hello);
    StartRead(&incoming_);
    StartCall();
  }

  void Send(const v1::AgentMessage& message) {
    absl::MutexLock lock(&mu_);
    if (read_ended_) return;
    if (queue_.size() >= kMaxQueuedWrites) {
      context_.TryCancel();
      return;
    }
    queue_.push_back(message);
    if (!writing_) {
      writing_ = true;
      StartWrite(&queue_.front());
    }
  }

  void Cancel() { context_.TryCancel(); }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) return;  // the read side sees the failure too and ends the stream
    queue_.pop_front();
    if (!queue_.empty() && !read_ended_) {
      writing_ = true;
      StartWrite(&queue_.front());
    }
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      {
        absl::MutexLock lock(&mu_);
        read_ended_ = true;
      }
      RemoveHold();
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      last_heard_ = absl::Now();
      switch (incoming_.msg_case()) {
        case v1::ControllerMessage::kWelcome:
          welcome_ = incoming_.welcome();
          welcomed_ = true;
          break;
        case v1::ControllerMessage::kTask:
        case v1::ControllerMessage::kAck:
        case v1::ControllerMessage::kCancel:
          inbox_.push_back(incoming_);
          break;
        default:
          break;  // heartbeats and acks only prove the controller alive
      }
    }
    StartRead(&incoming_);
  }

  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    status_ = status;
    done_ = true;
  }

  // Waits until the stream ends, a message arrives that changes what the loop must do, or
  // `deadline`. Returns true if the stream has ended.
  bool WaitUntil(absl::Time deadline, bool* welcomed, std::vector<v1::ControllerMessage>* inbox) {
    absl::MutexLock lock(&mu_);
    seen_welcomed_ = welcomed_;
    mu_.AwaitWithDeadline(absl::Condition(this, &Stream::ShouldWake), deadline);
    *welcomed = welcomed_;
    for (v1::ControllerMessage& message : inbox_) inbox->push_back(std::move(message));
    inbox_.clear();
    return done_;
  }

  bool ShouldWake() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return done_ || welcomed_ != seen_welcomed_ || !inbox_.empty();
  }

  void WaitDone() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&done_));
  }

  absl::Time last_heard() {
    absl::MutexLock lock(&mu_);
    return last_heard_;
  }
  v1::Welcome welcome() {
    absl::MutexLock lock(&mu_);
    return welcome_;
  }
  grpc::Status status() {
    absl::MutexLock lock(&mu_);
    return status_;
  }

 private:
  v1::AgentLink::Stub* const stub_;
  grpc::ClientContext context_;
  v1::ControllerMessage incoming_;  // only touched by the read callbacks

  absl::Mutex mu_;
  std::deque<v1::AgentMessage> queue_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool read_ended_ ABSL_GUARDED_BY(mu_) = false;
  bool welcomed_ ABSL_GUARDED_BY(mu_) = false;
  bool seen_welcomed_ ABSL_GUARDED_BY(mu_) = false;  // welcomed_ when the loop last looked
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  v1::Welcome welcome_ ABSL_GUARDED_BY(mu_);
  absl::Time last_heard_ ABSL_GUARDED_BY(mu_) = absl::Now();
  std::vector<v1::ControllerMessage> inbox_ ABSL_GUARDED_BY(mu_);  // tasks, acks, cancels
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

ControllerLink::ControllerLink(LinkOptions options, FactsProvider gather_facts, TaskManager* tasks)
    : options_(std::move(options)), gather_facts_(std::move(gather_facts)), tasks_(tasks) {}

void ControllerLink::Run() {
  Backoff backoff(options_.reconnect_initial, options_.reconnect_max);
  int attempt = 0;
  while (!stopping_.HasBeenNotified()) {
    ++attempt;
    v1::HostFacts facts = gather_facts_();
    auto channel = grpc::CreateCustomChannel(
        options_.controller_address,
        options_.credentials != nullptr ? options_.credentials : grpc::InsecureChannelCredentials(),
        ClientChannelArguments(options_.tls_server_name));
    std::unique_ptr<v1::AgentLink::Stub> stub = v1::AgentLink::NewStub(channel);
    Stream stream(stub.get());
    bool welcomed = Serve(stream, facts);
    grpc::Status status = stream.status();
    std::string why = status.error_message().empty() ? absl::StrCat("code ", status.error_code())
                                                     : status.error_message();
    if (stopping_.HasBeenNotified()) break;
    absl::Duration delay;
    if (welcomed) {
      backoff.Reset();
      attempt = 0;
      delay = backoff.Next();
      PGH_LOG_WARN("link to controller {} lost ({}); next attempt in {}",
                   options_.controller_address, why, absl::FormatDuration(delay));
    } else {
      delay = backoff.Next();
      PGH_LOG_WARN("attempt {} to reach controller {} failed ({}); next attempt in {}", attempt,
                   options_.controller_address, why, absl::FormatDuration(delay));
    }
    stopping_.WaitForNotificationWithTimeout(delay);
  }
  PGH_LOG_INFO("controller link stopped");
}

bool ControllerLink::Serve(Stream& stream, const v1::HostFacts& initial_facts) {
  v1::AgentMessage hello;
  hello.mutable_hello()->set_agent_id(options_.agent_id);
  hello.mutable_hello()->set_incarnation(options_.incarnation);
  hello.mutable_hello()->mutable_versions()->set_pghaul(kPghaulVersion);
  hello.mutable_hello()->mutable_versions()->set_protocol(kProtocolVersion);
  *hello.mutable_hello()->mutable_facts() = initial_facts;
  stream.Start(hello);

  v1::HostFacts last_facts = initial_facts;
  const absl::Time started = absl::Now();
  absl::Duration heartbeat_interval;
  absl::Time next_heartbeat = absl::InfiniteFuture();
  absl::Time next_facts = started + options_.facts_interval;
  uint64_t heartbeat_seq = 0;
  bool welcomed = false;
  bool cancelled = false;

  while (true) {
    absl::Time deadline = std::min({next_heartbeat, next_facts, absl::Now() + absl::Seconds(1)});
    if (!welcomed) deadline = std::min(deadline, started + options_.hello_timeout);
    std::vector<v1::ControllerMessage> inbox;
    bool was_welcomed = welcomed;
    if (stream.WaitUntil(deadline, &welcomed, &inbox)) break;
    if (stopping_.HasBeenNotified() && !cancelled) {
      stream.Cancel();
      cancelled = true;
    }
    absl::Time now = absl::Now();
    if (welcomed && !was_welcomed) {
      v1::Welcome welcome = stream.welcome();
      heartbeat_interval =
          absl::Milliseconds(std::max<uint32_t>(welcome.heartbeat_interval_ms(), 100));
      next_heartbeat = now + heartbeat_interval;
      PGH_LOG_INFO("linked to controller {} at {} (heartbeat every {})", welcome.controller_id(),
                   options_.controller_address, absl::FormatDuration(heartbeat_interval));
      // From now on task events go to this stream, starting with every unacknowledged one.
      tasks_->SetSink([&stream](const v1::TaskEvent& event) {
        v1::AgentMessage message;
        *message.mutable_task_event() = event;
        stream.Send(message);
      });
    }
    if (!welcomed && now >= started + options_.hello_timeout && !cancelled) {
      PGH_LOG_DEBUG("no Welcome within {}", absl::FormatDuration(options_.hello_timeout));
      stream.Cancel();
      cancelled = true;
    }
    if (welcomed && !cancelled &&
        now - stream.last_heard() > heartbeat_interval * options_.missed_heartbeats) {
      PGH_LOG_WARN("controller silent for {}; reopening the link",
                   absl::FormatDuration(now - stream.last_heard()));
      stream.Cancel();
      cancelled = true;
    }
    if (welcomed && now >= next_heartbeat) {
      v1::AgentMessage heartbeat;
      heartbeat.mutable_heartbeat()->set_seq(++heartbeat_seq);
      *heartbeat.mutable_heartbeat()->mutable_sent_at() = ToProto(now);
      stream.Send(heartbeat);
      next_heartbeat = now + heartbeat_interval;
    }
    if (now >= next_facts) {
      v1::HostFacts facts = gather_facts_();
      if (welcomed && !SameFacts(facts, last_facts)) {
        v1::AgentMessage update;
        *update.mutable_facts()->mutable_facts() = facts;
        stream.Send(update);
      }
      last_facts = std::move(facts);
      next_facts = absl::Now() + options_.facts_interval;
    }
    for (const v1::ControllerMessage& message : inbox) {
      switch (message.msg_case()) {
        case v1::ControllerMessage::kTask:
          tasks_->Submit(message.task());
          break;
        case v1::ControllerMessage::kAck:
          tasks_->Ack(message.ack().task_id(), message.ack().seq());
          break;
        case v1::ControllerMessage::kCancel:
          tasks_->Cancel(message.cancel().task_id());
          break;
        default:
          break;
      }
    }
  }
  tasks_->SetSink(nullptr);
  stream.WaitDone();
  return welcomed;
}

}  // namespace pghaul::agent
