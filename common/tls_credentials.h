// Mutual TLS for pghaul's gRPC links, and the checks on who is at the other end.
//
// Every link is mutual: the controller presents its certificate to agents and the CLI and
// requires one from them, all issued by the CA named in the configuration. Who a caller is comes
// from the names in its certificate (common/tls_certificates.h):
//
//   AgentLink.Connect  the certificate names the agent id the Hello claims (CN or a SAN)
//   Migrations.*       the certificate names a CLI user ("cli:<name>", CN or a SAN)
//
// TLS 1.3 only: gRPC 1.51's C++ API has no TLS version setting, so RequireTls13ForProcess()
// sets it where OpenSSL applies it to every TLS context (see there).
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tls_certificates.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace pghaul {

// Makes every TLS context this process creates afterwards refuse protocol versions below 1.3.
// gRPC 1.51 builds its OpenSSL contexts with a minimum of TLS 1.2 and offers no setting, so this
// loads an in-memory OpenSSL configuration whose `system_default` section (which OpenSSL applies
// to each new context) turns TLS 1.2 and older off; gRPC's own minimum leaves that in place.
// Process-wide and idempotent; call it before creating any credentials. Errors: Internal when
// OpenSSL does not accept the configuration (then TLS 1.2 would still be allowed).
absl::Status RequireTls13ForProcess();

// Server credentials that present `material`'s certificate and require and verify a client
// certificate issued by its CA.
std::shared_ptr<grpc::ServerCredentials> MutualTlsServerCredentials(const TlsMaterial& material);

// Channel credentials that verify the server against `material`'s CA (and its name against the
// address dialled, or the channel's ssl target name override) and present `material`'s
// certificate.
std::shared_ptr<grpc::ChannelCredentials> MutualTlsChannelCredentials(const TlsMaterial& material);

// The names in the certificate the peer presented on a call, empty when it presented none (a
// plaintext link).
CertificateNames PeerCertificateNames(const grpc::AuthContext& context);

// "CN=db1, SAN=[db1, 10.0.0.5]", or "no certificate".
std::string DescribeCertificateNames(const CertificateNames& names);

// OK when `names` (a peer's certificate) name `agent_id` as the CN or a SAN. PermissionDenied
// otherwise, saying which names the certificate holds and which id was claimed.
absl::Status CheckAgentCertificate(const CertificateNames& names, absl::string_view agent_id);

// The CLI user a certificate names ("cli:<name>" as CN or SAN; the CN wins). PermissionDenied
// when it names none, e.g. an agent's or the controller's certificate.
absl::StatusOr<std::string> CliUserOf(const CertificateNames& names);

}  // namespace pghaul
