#include "agent/task_executors.h"

#include "absl/strings/str_cat.h"
#include "agent/host_facts.h"
#include "common/task_names.h"

namespace pghaul::agent {
namespace {

class GatherFactsExecutor : public TaskExecutor {
 public:
  explicit GatherFactsExecutor(const AgentConfig* config) : config_(config) {}
  v1::TaskResult Run(TaskContext& context) override {
    v1::TaskResult result;
    *result.mutable_facts() = GatherHostFacts(*config_);
    result.set_state(v1::TaskResult::SUCCEEDED);
    return result;
  }

 private:
  const AgentConfig* config_;
};

}  // namespace

ExecutorFactory MakeExecutorFactory(const AgentConfig* config) {
  return [config](const v1::Task& task) -> absl::StatusOr<std::unique_ptr<TaskExecutor>> {
    switch (task.op_case()) {
      case v1::Task::kGatherFacts:
        return std::make_unique<GatherFactsExecutor>(config);
      default:
        break;
    }
    return absl::UnimplementedError(
        absl::StrCat("this agent does not offer the operation '", DescribeOperation(task),
                     "'; nothing ran (agent and controller releases may differ)"));
  };
}

}  // namespace pghaul::agent
