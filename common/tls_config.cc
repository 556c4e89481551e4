#include "common/tls_config.h"

#include "absl/strings/str_cat.h"

namespace pghaul {

void ReadTransportSecurity(ConfigReader& section, bool with_server_name, TransportSecurity* out) {
  const StringRule absolute_path = AbsolutePathRule();
  bool insecure_ok = section.Bool("insecure", &out->insecure);
  bool has_tls = section.Has("tls");
  ConfigReader tls = section.Section("tls");
  if (has_tls) {
    tls.String("ca", &out->tls.ca, kRequired, &absolute_path);
    tls.String("cert", &out->tls.cert, kRequired, &absolute_path);
    tls.String("key", &out->tls.key, kRequired, &absolute_path);
  }
  if (with_server_name) {
    // A host as in host:port, without brackets (an IPv6 address is written bare here).
    const StringRule host_name{
        [](absl::string_view name) {
          return !name.empty() && name.front() != '[' &&
                 IsHostPort(absl::StrCat(name, ":1"), false);
        },
        "a DNS name or IPv4 address that the controller's certificate holds"};
    tls.String("server_name", &out->server_name, kOptional, &host_name);
  }
  if (!insecure_ok) return;
  if (out->insecure && has_tls) {
    section.AddError("insecure", absl::StrCat("is true while '", section.PathOf("tls"),
                                              "' is set: choose one (remove insecure to use TLS)"));
  } else if (!out->insecure && !has_tls) {
    section.AddError(
        "tls",
        absl::StrCat("missing: set ", tls.PathOf("ca"), ", ", tls.PathOf("cert"), " and ",
                     tls.PathOf("key"), " (docs/security.md; `pghaul certs` makes them), or '",
                     section.PathOf("insecure"),
                     ": true' for a plaintext, unauthenticated link on a trusted network"));
  }
}

}  // namespace pghaul
