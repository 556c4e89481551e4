#include "common/tls_credentials.h"

#include <openssl/bio.h>
#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpc/grpc_security_constants.h"

namespace pghaul {
namespace {

// OpenSSL applies the `system_default` section of its configuration to every new SSL_CTX.
// `Protocol` sets the SSL_OP_NO_* options, which gRPC's SSL_CTX_set_min_proto_version(TLS1_2)
// does not clear; `MinProtocol` is kept for contexts that set no minimum of their own. The
// cipher string repeats Debian's default, which this section replaces.
constexpr char kTls13OnlyConfig[] =
    "pghaul_openssl = pghaul_openssl_init\n"
    "[pghaul_openssl_init]\n"
    "ssl_conf = pghaul_ssl\n"
    "[pghaul_ssl]\n"
    "system_default = pghaul_tls13\n"
    "[pghaul_tls13]\n"
    "MinProtocol = TLSv1.3\n"
    "Protocol = -SSLv3, -TLSv1, -TLSv1.1, -TLSv1.2\n"
    "CipherString = DEFAULT:@SECLEVEL=2\n";

std::string OpenSslErrorText() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buffer[256];
  ERR_error_string_n(code, buffer, sizeof(buffer));
  return buffer;
}

absl::Status LoadTls13Config() {
  // The system configuration loads once per process, on OpenSSL's first initialisation; load it
  // now, so that it cannot replace this section later.
  if (OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, nullptr) != 1) {
    return absl::InternalError(absl::StrCat("OpenSSL did not initialise: ", OpenSslErrorText()));
  }
  CONF* config = NCONF_new(nullptr);
  BIO* text = BIO_new_mem_buf(kTls13OnlyConfig, -1);
  long error_line = 0;
  absl::Status status;
  if (config == nullptr || text == nullptr || NCONF_load_bio(config, text, &error_line) <= 0) {
    status = absl::InternalError(absl::StrCat("OpenSSL rejected pghaul's TLS 1.3 settings (line ",
                                              error_line, "): ", OpenSslErrorText()));
  } else if (CONF_modules_load(config, "pghaul_openssl", 0) <= 0) {
    status = absl::InternalError(
        absl::StrCat("OpenSSL could not apply pghaul's TLS 1.3 settings: ", OpenSslErrorText()));
  }
  BIO_free(text);
  NCONF_free(config);
  return status;
}

bool Names(const CertificateNames& names, absl::string_view wanted) {
  if (names.common_name == wanted) return true;
  for (const std::string& name : names.alternative_names) {
    if (name == wanted) return true;
  }
  return false;
}

}  // namespace

absl::Status RequireTls13ForProcess() {
  static const absl::Status* const status = new absl::Status(LoadTls13Config());
  return *status;
}

std::shared_ptr<grpc::ServerCredentials> MutualTlsServerCredentials(const TlsMaterial& material) {
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = material.ca_pem;
  options.pem_key_cert_pairs.push_back({material.key_pem, material.cert_pem});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> MutualTlsChannelCredentials(const TlsMaterial& material) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = material.ca_pem;
  options.pem_private_key = material.key_pem;
  options.pem_cert_chain = material.cert_pem;
  return grpc::SslCredentials(options);
}

CertificateNames PeerCertificateNames(const grpc::AuthContext& context) {
  CertificateNames names;
  std::vector<grpc::string_ref> common_names =
      context.FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
  if (!common_names.empty()) {
    names.common_name.assign(common_names.front().data(), common_names.front().size());
  }
  for (const grpc::string_ref& name : context.FindPropertyValues(GRPC_X509_SAN_PROPERTY_NAME)) {
    names.alternative_names.emplace_back(name.data(), name.size());
  }
  return names;
}

std::string DescribeCertificateNames(const CertificateNames& names) {
  if (names.common_name.empty() && names.alternative_names.empty()) return "no certificate";
  std::string text = absl::StrCat("CN=", names.common_name.empty() ? "(none)" : names.common_name);
  if (!names.alternative_names.empty()) {
    absl::StrAppend(&text, ", SAN=[", absl::StrJoin(names.alternative_names, ", "), "]");
  }
  return text;
}

absl::Status CheckAgentCertificate(const CertificateNames& names, absl::string_view agent_id) {
  if (!agent_id.empty() && Names(names, agent_id)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("the client certificate (", DescribeCertificateNames(names),
                   ") does not name agent '", agent_id,
                   "', the id this agent claims: issue it a certificate for its own id (pghaul "
                   "certs issue --agent ",
                   agent_id, ")"));
}

absl::StatusOr<std::string> CliUserOf(const CertificateNames& names) {
  std::vector<const std::string*> candidates = {&names.common_name};
  for (const std::string& name : names.alternative_names) candidates.push_back(&name);
  for (const std::string* name : candidates) {
    if (!absl::StartsWith(*name, kCliNamePrefix)) continue;
    std::string user = name->substr(kCliNamePrefix.size());
    if (ValidateCliName(user).ok()) return user;
  }
  return absl::PermissionDeniedError(
      absl::StrCat("this call needs a CLI certificate (one naming \"", kCliNamePrefix,
                   "<name>\", from pghaul certs issue --cli NAME); the caller presented ",
                   DescribeCertificateNames(names)));
}

}  // namespace pghaul
