// Fuzzes what the agent does with the controller's messages (agent/controller_link.cc hands each
// ControllerMessage to the TaskManager: task -> Submit, ack -> Ack, cancel -> Cancel). Input: a
// stream of length-delimited ControllerMessages (fuzz_support.h). The TaskManager gets the real
// validating factory, but an accepted task's executor only logs a line, reports progress and
// succeeds (or ends cancelled), so nothing touches PostgreSQL or pgBackRest.
//
// Each input starts from an empty state directory; between messages the sink is sometimes
// dropped and set again (a reconnect), and the manager is destroyed at the end (joining every
// task thread).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/agent_config.h"
#include "agent/task_executors.h"
#include "agent/task_manager.h"
#include "common/clock.h"
#include "pghaul/v1/agent_link.pb.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using pghaul::agent::TaskContext;
using pghaul::agent::TaskExecutor;
namespace v1 = pghaul::v1;

// Stands in for every executor: a validated task "runs" at once.
class NoopExecutor : public TaskExecutor {
 public:
  v1::TaskResult Run(TaskContext& context) override {
    context.Log("agent", "fuzz: not running anything");
    v1::Progress progress;
    progress.set_percent(50);
    context.ReportProgress(progress);
    v1::TaskResult result;
    result.set_state(context.cancelled() ? v1::TaskResult::FAILED : v1::TaskResult::SUCCEEDED);
    return result;
  }
};

struct Fixture {
  pghaul::fuzz::ScratchDirectory scratch;
  pghaul::agent::AgentConfig config;
  pghaul::agent::ExecutorFactory validate;
  pghaul::FakeClock clock;

  Fixture() {
    config.agent_id = "fuzz-db1";
    config.controller_address = "127.0.0.1:7400";
    config.controller_insecure = true;
    config.data_directory = scratch.path() + "/data";
    config.state_dir = scratch.path() + "/validation-state";
    config.roots = {config.state_dir};
    config.service.data_directory = config.data_directory;
    validate = pghaul::agent::MakeExecutorFactory(&config);
  }
};

Fixture* fixture = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  pghaul::fuzz::QuietLogging();
  static Fixture instance;
  fixture = &instance;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string state_dir = fixture->scratch.path() + "/state";
  fixture->scratch.Reset(state_dir);

  pghaul::agent::ExecutorFactory factory =
      [](const v1::Task& task) -> absl::StatusOr<std::unique_ptr<TaskExecutor>> {
    absl::StatusOr<std::unique_ptr<TaskExecutor>> real = fixture->validate(task);
    if (!real.ok()) return real.status();
    return std::make_unique<NoopExecutor>();
  };

  // What the controller would have received: per task, the highest seq of a result.
  absl::Mutex mu;
  std::map<std::string, uint64_t> sent;
  pghaul::agent::TaskManager::Sink sink = [&](const v1::TaskEvent& event) {
    if (event.task_id().empty() || event.seq() == 0) std::abort();
    absl::MutexLock lock(&mu);
    sent[event.task_id()] = std::max(sent[event.task_id()], event.seq());
  };

  {
    pghaul::agent::TaskManager manager(state_dir, factory, &fixture->clock);
    if (!manager.LoadPersisted().ok()) std::abort();
    manager.SetSink(sink);
    int index = 0;
    pghaul::fuzz::ForEachDelimited<v1::ControllerMessage>(
        data, size, /*max_messages=*/64, [&](const v1::ControllerMessage& message) {
          switch (message.msg_case()) {
            case v1::ControllerMessage::kTask:
              manager.Submit(message.task());
              break;
            case v1::ControllerMessage::kAck:
              manager.Ack(message.ack().task_id(), message.ack().seq());
              break;
            case v1::ControllerMessage::kCancel:
              manager.Cancel(message.cancel().task_id());
              break;
            case v1::ControllerMessage::kWelcome:
              // Stands for a new stream: the link drops the sink and sets it again.
              manager.SetSink(nullptr);
              manager.SetSink(sink);
              break;
            default:
              break;
          }
          if (++index % 8 == 0) (void)manager.List();
        });
    for (const auto& summary : manager.List()) {
      if (!manager.WaitFinished(summary.task_id, absl::Seconds(5))) std::abort();
      if (summary.acked_seq > summary.last_seq) std::abort();
    }
    // A restarted agent must read back what this one persisted.
    pghaul::agent::TaskManager restarted(state_dir, factory, &fixture->clock);
    if (!restarted.LoadPersisted().ok()) std::abort();
  }
  return 0;
}
