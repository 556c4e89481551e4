// X.509 with OpenSSL's libcrypto: a small certificate authority for `pghaul certs`, and the checks
// every process runs on its PEM files at start-up, so a wrong file fails with a sentence naming
// it rather than as a handshake error on the first connection.
//
// The names in pghaul certificates (docs/security.md):
//   agent       CN = the agent id                 extended key usage: clientAuth
//   CLI         CN = "cli:<name>"                 extended key usage: clientAuth
//   controller  CN = "controller:<first name>",   extended key usage: serverAuth
//               SANs = its DNS names and IP addresses (what agents and the CLI dial)
// A colon never appears in an agent id, so a CLI certificate cannot name an agent and an agent
// certificate cannot pass as a CLI one.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pghaul {

inline constexpr absl::string_view kCliNamePrefix = "cli:";
inline constexpr absl::string_view kControllerNamePrefix = "controller:";

// A CLI user's name in a certificate: 1 to 63 of [a-z0-9._-], starting with a letter or digit
// (the agent id rule). InvalidArgument otherwise.
absl::Status ValidateCliName(absl::string_view name);

// The names a certificate carries: its subject's common name and its subject alternative names
// (DNS, URI and e-mail as written, IP addresses in text form).
struct CertificateNames {
  std::string common_name;
  std::vector<std::string> alternative_names;
};

// What LoadTlsFiles found in a certificate file (its first certificate).
struct CertificateSummary {
  CertificateNames names;
  absl::Time not_before;
  absl::Time not_after;
};

// The PEM text of the three files one end of a link uses, after LoadTlsFiles checked them.
struct TlsMaterial {
  std::string ca_pem;    // the CA certificate(s) the peer's certificate must chain to
  std::string cert_pem;  // this process's certificate, optionally followed by intermediates
  std::string key_pem;   // its private key, unencrypted
  CertificateSummary certificate;
};

// Reads and checks the CA file, certificate and key at the given paths: each readable and PEM,
// the key the certificate's own, the certificate issued by (a certificate in) the CA file and
// valid now. `what` names the setting in errors ("--tls-cert", "tls.cert"). Errors: NotFound /
// PermissionDenied naming the path; InvalidArgument saying which file is wrong and how.
struct TlsFilePaths {
  std::string ca;
  std::string cert;
  std::string key;
};
struct TlsSettingNames {
  std::string ca = "tls.ca";
  std::string cert = "tls.cert";
  std::string key = "tls.key";
};
absl::StatusOr<TlsMaterial> LoadTlsFiles(const TlsFilePaths& paths,
                                         const TlsSettingNames& names = {},
                                         absl::Time now = absl::Now());

// What a certificate is for.
enum class CertificateKind { kAgent, kController, kCli };

struct CertificateRequest {
  CertificateKind kind = CertificateKind::kAgent;
  // The agent id, the CLI user's name, or for a controller unused (its names are below).
  std::string name;
  // Controller only: DNS names and IP addresses it is reached by; at least one.
  std::vector<std::string> hosts;
  int validity_days = 825;
};

// The files `pghaul certs` wrote.
struct WrittenFiles {
  std::string certificate;
  std::string key;
  std::string ca_certificate;
};

// Creates <dir>/ca.crt (0644) and <dir>/ca.key (0600) for a new CA valid `validity_days`, with
// an EC P-256 key. `dir` is created (0700) when missing. Without `force`, existing files are
// left alone: AlreadyExists naming them. Other errors: Internal / PermissionDenied naming the path.
absl::StatusOr<WrittenFiles> CreateCertificateAuthority(const std::string& dir, int validity_days,
                                                        bool force);

// Issues a certificate signed by the CA in <dir> (ca.crt, ca.key): a new EC P-256 key and
// certificate in <dir>/agent-<id>.{crt,key}, <dir>/controller.{crt,key} or
// <dir>/cli-<name>.{crt,key} (keys 0600). Errors: InvalidArgument for a bad name or host;
// NotFound when the CA is missing ("run pghaul certs init"); AlreadyExists without `force`.
absl::StatusOr<WrittenFiles> IssueCertificate(const std::string& dir,
                                              const CertificateRequest& request, bool force);

// The default hosts of a controller certificate: this host's name, "localhost", 127.0.0.1, ::1.
std::vector<std::string> DefaultControllerHosts();

}  // namespace pghaul
