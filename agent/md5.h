// MD5 (RFC 1321), streamed. Not for security: pghaul uses it only to compare table contents and
// query results between two servers, where it must match PostgreSQL's own md5() bit for bit (a
// table's checksum is the MD5 of the sorted md5() texts PostgreSQL returns for its rows, hashed
// here as they stream in so that no table is too large for it).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace pghaul::agent {

class Md5 {
 public:
  Md5();

  // Appends `data` to the message.
  void Update(absl::string_view data);
  // The digest of everything appended so far, as 32 lower-case hex digits (like PostgreSQL's
  // md5()). Ends the message: call Update again only after Reset.
  std::string HexDigest();
  void Reset();

  // One-shot helper.
  static std::string Hex(absl::string_view data);

 private:
  void ProcessBlock(const unsigned char* block);

  std::array<uint32_t, 4> state_;
  uint64_t length_bytes_ = 0;
  std::array<unsigned char, 64> buffer_;
  size_t buffered_ = 0;
};

}  // namespace pghaul::agent
