#include "agent/md5.h"

#include <string>

#include "gtest/gtest.h"

namespace pghaul::agent {
namespace {

TEST(Md5Test, MatchesTheRfc1321TestSuite) {
  EXPECT_EQ(Md5::Hex(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(Md5::Hex("a"), "0cc175b9c0f1b6a831c399e269772661");
  EXPECT_EQ(Md5::Hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(Md5::Hex("message digest"), "f96b697d7cb7938d525a2f31aaf161d0");
  EXPECT_EQ(Md5::Hex("abcdefghijklmnopqrstuvwxyz"), "c3fcd3d76192e4007dfb496cca67e13b");
  EXPECT_EQ(Md5::Hex("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"),
            "d174ab98d277d9f5a5611c2c9f419d9f");
  EXPECT_EQ(Md5::Hex("1234567890123456789012345678901234567890123456789012345678901234567890"
                     "1234567890"),
            "57edf4a22be3c955ac49da2e2107b67a");
}

TEST(Md5Test, StreamingInAnyPiecesGivesTheOneShotDigest) {
  // Lengths around the 55/56/64-byte padding boundaries, and a long message.
  for (size_t length : {55u, 56u, 63u, 64u, 65u, 119u, 120u, 128u, 1000u, 100000u}) {
    std::string message;
    for (size_t i = 0; i < length; ++i) message.push_back(static_cast<char>('a' + i * 7 % 26));
    const std::string whole = Md5::Hex(message);
    for (size_t piece : {1u, 3u, 32u, 64u, 65u, 4096u}) {
      Md5 md5;
      for (size_t at = 0; at < message.size(); at += piece) md5.Update(message.substr(at, piece));
      EXPECT_EQ(md5.HexDigest(), whole) << "length " << length << " piece " << piece;
    }
  }
}

TEST(Md5Test, ResetStartsANewMessage) {
  Md5 md5;
  md5.Update("something else");
  md5.HexDigest();
  md5.Reset();
  md5.Update("abc");
  EXPECT_EQ(md5.HexDigest(), "900150983cd24fb0d6963f7d28e17f72");
}

}  // namespace
}  // namespace pghaul::agent
