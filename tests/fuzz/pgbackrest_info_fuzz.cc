// Fuzzes the parser of `pgbackrest info --output=json` (agent/pgbackrest_info.h): pgBackRest's
// output is trusted no more than any other process's, and a damaged repository makes it print
// odd things. Parsing must end in a value or InvalidArgument/NotFound, never a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "agent/pgbackrest_info.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using pghaul::agent::BackupSetInfo;
using pghaul::agent::DescribeStanzaStatusCode;
using pghaul::agent::ParsePgBackRestInfo;
using pghaul::agent::ParseStanzaInfo;
using pghaul::agent::StanzaInfo;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  pghaul::fuzz::QuietLogging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view json(reinterpret_cast<const char*>(data), size);

  absl::StatusOr<std::vector<StanzaInfo>> stanzas = ParsePgBackRestInfo(json);
  if (!stanzas.ok()) {
    if (!absl::IsInvalidArgument(stanzas.status())) std::abort();
    return 0;
  }
  for (const StanzaInfo& stanza : *stanzas) {
    int valid = stanza.ValidBackupCount();
    const BackupSetInfo* latest = stanza.LatestValidBackup();
    // Documented: the newest backup without the error flag, null when there is none.
    if ((latest == nullptr) != (valid == 0)) std::abort();
    if (latest != nullptr && latest->error) std::abort();
    (void)stanza.DescribeStatus();
    (void)DescribeStanzaStatusCode(stanza.status_code);
  }
  const std::string name = stanzas->empty() ? std::string("main") : (*stanzas)[0].name;
  absl::StatusOr<StanzaInfo> one = ParseStanzaInfo(json, name);
  if (stanzas->empty()) {
    if (!absl::IsNotFound(one.status())) std::abort();
  } else if (!one.ok() || one->name != name) {
    std::abort();
  }
  return 0;
}
