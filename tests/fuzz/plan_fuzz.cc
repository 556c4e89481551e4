// Fuzzes the plan parser (controller/plan.h): YAML text an operator wrote, possibly wrong in
// every way. ParsePlan must return a plan or InvalidArgument, never crash, hang or leak; a plan
// it accepts must be one the rest of the controller can use.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "controller/plan.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

namespace v1 = pghaul::v1;
using pghaul::controller::MakeConfigureTask;
using pghaul::controller::ParseByteSize;
using pghaul::controller::ParsePlan;
using pghaul::controller::Plan;
using pghaul::controller::WindowPlan;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  pghaul::fuzz::QuietLogging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);

  absl::StatusOr<Plan> plan = ParsePlan(text, "fuzz.yaml");
  if (!plan.ok()) {
    // The documented error: InvalidArgument, and nothing else.
    if (!absl::IsInvalidArgument(plan.status())) std::abort();
  } else {
    // What the controller does next with an accepted plan, short of reading secrets.
    v1::Secrets secrets;
    secrets.set_s3_key("k");
    secrets.set_s3_key_secret("s");
    secrets.set_cipher_pass("p");
    v1::ConfigurePgBackRest task = MakeConfigureTask(*plan, secrets);
    if (task.migration_id() != plan->name || task.stanza() != plan->stanza) std::abort();
    if (plan->window.has_value()) {
      // Documented: a window never has start == end and stays within the day.
      const WindowPlan& window = *plan->window;
      if (window.start_minute == window.end_minute || window.start_minute < 0 ||
          window.start_minute > 1439 || window.end_minute < 0 || window.end_minute > 1439) {
        std::abort();
      }
      (void)window.Contains(absl::FromUnixSeconds(1'700'000'000));
    }
  }

  // The byte sizes of cutover.max_lag take the same text; the result is irrelevant.
  if (size < 64) (void)ParseByteSize(text);
  return 0;
}
