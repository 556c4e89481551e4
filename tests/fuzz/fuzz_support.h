// Shared by the libFuzzer targets of this directory: quiet logging, a scratch directory, and a
// reader for a stream of length-delimited protobuf messages (the input format of the targets
// that replay a conversation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

#include "google/protobuf/io/coded_stream.h"
#include "spdlog/sinks/null_sink.h"
#include "spdlog/spdlog.h"

namespace pghaul::fuzz {

// Log statements stay in the code under test (so their arguments are still formatted), but their
// output goes nowhere: a fuzzer runs them millions of times.
inline void QuietLogging() {
  auto logger =
      std::make_shared<spdlog::logger>("fuzz", std::make_shared<spdlog::sinks::null_sink_mt>());
  logger->set_level(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

// A directory of this process, removed at exit. Made under $TMPDIR (scripts/fuzz.sh points it
// into the build directory), so a crashed run leaves nothing in /tmp.
class ScratchDirectory {
 public:
  ScratchDirectory() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/pghaul-fuzz-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    path_ = pattern;
  }
  ~ScratchDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;

  const std::string& path() const { return path_; }

  // Removes everything inside `sub` (a path below this directory) and creates it again, so one
  // input never sees files another input left.
  void Reset(const std::string& sub) const {
    std::error_code ignored;
    std::filesystem::remove_all(sub, ignored);
    std::filesystem::create_directories(sub, ignored);
  }

 private:
  std::string path_;
};

// Reads messages of type M, each preceded by its length as a varint (the framing of
// google::protobuf::util::SerializeDelimitedToOstream), and calls `handle` with each one that
// parses. Stops at the end, at a truncated frame, or after `max_messages`.
template <typename M, typename Handle>
void ForEachDelimited(const uint8_t* data, size_t size, int max_messages, Handle handle) {
  google::protobuf::io::CodedInputStream input(data, static_cast<int>(size));
  for (int i = 0; i < max_messages; ++i) {
    uint32_t length = 0;
    if (!input.ReadVarint32(&length)) return;
    if (length > size) return;
    google::protobuf::io::CodedInputStream::Limit limit = input.PushLimit(static_cast<int>(length));
    M message;
    bool parsed = message.ParseFromCodedStream(&input) && input.ConsumedEntireMessage();
    input.PopLimit(limit);
    if (parsed) handle(message);
  }
}

}  // namespace pghaul::fuzz
