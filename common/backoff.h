// Jittered, capped exponential backoff for reconnect loops.
//
// The n-th delay is drawn uniformly from [base/2, base] where base = min(initial * 2^n, max)
// ("equal jitter"), so a fleet of agents that lost the controller together does not reconnect in
// lockstep, and no delay ever exceeds `max`. Reset() after the link proved healthy (the first
// message received), as Envoy does.
#pragma once

#include <cstdint>
#include <random>

#include "absl/time/time.h"

namespace pghaul {

class Backoff {
 public:
  Backoff(absl::Duration initial, absl::Duration max, uint64_t seed = std::random_device{}());

  // The delay to wait before the next attempt; each call doubles the base, up to max.
  absl::Duration Next();
  void Reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }

 private:
  absl::Duration initial_;
  absl::Duration max_;
  int attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace pghaul
