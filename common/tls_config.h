// The `insecure` and `tls` keys shared by the agent's and the controller's configuration files:
//
//   tls:                          # mutual TLS (docs/security.md)
//     ca: /etc/pghaul/tls/ca.crt
//     cert: /etc/pghaul/tls/agent-db1.crt
//     key: /etc/pghaul/tls/agent-db1.key
//     server_name: controller.example.internal   # agent only, optional
//   insecure: true                # instead of tls: a plaintext link, warned about at each start
//
// Exactly one of the two: a file with neither, or with both, is refused.
#pragma once

#include <string>

#include "common/config_reader.h"
#include "common/tls_certificates.h"

namespace pghaul {

struct TransportSecurity {
  bool insecure = false;
  TlsFilePaths tls;         // all three set unless insecure
  std::string server_name;  // the name to verify the controller's certificate for; "" = its address
};

// Reads `insecure` and `tls` from `section` (records errors there; ConfigReader::Finish reports
// them). `with_server_name` allows tls.server_name (the agent's side of the link).
void ReadTransportSecurity(ConfigReader& section, bool with_server_name, TransportSecurity* out);

}  // namespace pghaul
