// Watches, every kInterval during a fault run, whether each side accepts a write from the
// application, and records every instant at which both did: two writable primaries.
//
// "Accepts a write" is tested, not inferred: over a session of role `app` (the one the fence
// shuts out), `BEGIN; INSERT INTO fault_probe DEFAULT VALUES; ROLLBACK`. It fails in recovery,
// under default_transaction_read_only, when the fence refuses the login or ended the session,
// and on a target that does not hold the source's data yet (no `app`, no table), so only a
// promoted copy and an unfenced source pass it. Nothing is left behind (rolled back). A session
// that breaks is opened again at the next sample.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"

namespace pghaul::faults {

// Whether a write in a transaction of the session `conninfo` opens is accepted now (the probe the
// sampler runs, in a session of its own). `error` gets the server's answer when it is not.
bool AcceptsWrite(const std::string& conninfo, std::string* error = nullptr);

class WritableSampler {
 public:
  static constexpr absl::Duration kInterval = absl::Milliseconds(50);

  struct Counts {
    int64_t samples = 0;
    int64_t source_writable = 0;
    int64_t target_writable = 0;
    int64_t both_writable = 0;
    std::vector<std::string> both_writable_at;  // the first few, as times
  };

  // Each conninfo reaches one side as `app`.
  WritableSampler(std::string source_conninfo, std::string target_conninfo)
      : source_conninfo_(std::move(source_conninfo)),
        target_conninfo_(std::move(target_conninfo)) {}
  ~WritableSampler() { Stop(); }

  void Start();
  void Stop();
  Counts counts();

 private:
  void Loop();

  const std::string source_conninfo_;
  const std::string target_conninfo_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  Counts counts_;
};

}  // namespace pghaul::faults
