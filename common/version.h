// Versions pghaul reports about itself.
#pragma once

#include <cstdint>

namespace pghaul {

// The release version, from the top-level CMakeLists.txt.
inline constexpr const char* kPghaulVersion = PGHAUL_VERSION;

// The version of the agent-controller protocol (proto/pghaul/v1). Both ends of a link must
// speak the same one; the controller refuses an agent that does not.
inline constexpr uint32_t kProtocolVersion = 1;

}  // namespace pghaul
