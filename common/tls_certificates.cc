#include "common/tls_certificates.h"

#include <arpa/inet.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/identifiers.h"
#include "common/status_macros.h"

namespace pghaul {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free_all(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct StoreFree {
  void operator()(X509_STORE* store) const { X509_STORE_free(store); }
};
struct StoreContextFree {
  void operator()(X509_STORE_CTX* context) const { X509_STORE_CTX_free(context); }
};
struct NamesFree {
  void operator()(GENERAL_NAMES* names) const { GENERAL_NAMES_free(names); }
};
struct ExtensionFree {
  void operator()(X509_EXTENSION* extension) const { X509_EXTENSION_free(extension); }
};
struct BignumFree {
  void operator()(BIGNUM* number) const { BN_free(number); }
};
struct ChainFree {
  void operator()(STACK_OF(X509) * chain) const { sk_X509_pop_free(chain, X509_free); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Certificate = std::unique_ptr<X509, X509Free>;
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

// The last OpenSSL error on this thread, as text, clearing the queue.
std::string OpenSslError() {
  unsigned long code = ERR_get_error();
  std::string text = "unknown OpenSSL error";
  if (code != 0) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof(buffer));
    text = buffer;
  }
  ERR_clear_error();
  return text;
}

Bio MemoryBio(absl::string_view text) {
  return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// Every PEM certificate in `pem`, in order.
std::vector<Certificate> ReadCertificates(absl::string_view pem) {
  std::vector<Certificate> certificates;
  Bio bio = MemoryBio(pem);
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certificates.emplace_back(cert);
  }
  ERR_clear_error();  // the end of the input reads as an error
  return certificates;
}

Key ReadKey(absl::string_view pem) {
  Bio bio = MemoryBio(pem);
  // An empty passphrase callback: an encrypted key fails instead of prompting on the terminal.
  Key key(PEM_read_bio_PrivateKey(
      bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr));
  ERR_clear_error();
  return key;
}

std::string Asn1Text(const ASN1_STRING* text) {
  unsigned char* utf8 = nullptr;
  int length = ASN1_STRING_to_UTF8(&utf8, text);
  if (length < 0) return "";
  std::string result(reinterpret_cast<char*>(utf8), static_cast<size_t>(length));
  OPENSSL_free(utf8);
  return result;
}

absl::Time Asn1Time(const ASN1_TIME* time) {
  std::tm parts{};
  if (ASN1_TIME_to_tm(time, &parts) != 1) return absl::InfinitePast();
  return absl::FromTM(parts, absl::UTCTimeZone());
}

CertificateNames NamesOf(X509* cert) {
  CertificateNames names;
  X509_NAME* subject = X509_get_subject_name(cert);
  int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index >= 0) {
    names.common_name = Asn1Text(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index)));
  }
  std::unique_ptr<GENERAL_NAMES, NamesFree> alternatives(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; alternatives != nullptr && i < sk_GENERAL_NAME_num(alternatives.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(alternatives.get(), i);
    switch (name->type) {
      case GEN_DNS:
      case GEN_URI:
      case GEN_EMAIL:
        names.alternative_names.push_back(Asn1Text(name->d.ia5));
        break;
      case GEN_IPADD: {
        const ASN1_OCTET_STRING* ip = name->d.iPAddress;
        char text[INET6_ADDRSTRLEN] = {};
        int family = ip->length == 4 ? AF_INET : ip->length == 16 ? AF_INET6 : 0;
        if (family != 0 && inet_ntop(family, ip->data, text, sizeof(text)) != nullptr) {
          names.alternative_names.push_back(text);
        }
        break;
      }
      default:
        break;
    }
  }
  return names;
}

absl::StatusOr<std::string> ToPem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_X509(bio.get(), cert) != 1) {
    return absl::InternalError(absl::StrCat("cannot encode a certificate: ", OpenSslError()));
  }
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(length));
}

absl::StatusOr<std::string> ToPem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return absl::InternalError(absl::StrCat("cannot encode a private key: ", OpenSslError()));
  }
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(length));
}

absl::StatusOr<Key> NewKey() {
  Key key(EVP_EC_gen("P-256"));
  if (key == nullptr) {
    return absl::InternalError(absl::StrCat("cannot generate an EC P-256 key: ", OpenSslError()));
  }
  return key;
}

// One X.509v3 extension from its OpenSSL configuration text (the values come from validated
// names only, so no text of a person's reaches the parser unchecked).
absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, ExtensionFree> extension(
      X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str()));
  if (extension == nullptr || X509_add_ext(cert, extension.get(), -1) != 1) {
    return absl::InternalError(
        absl::StrCat("cannot add the extension ", OBJ_nid2sn(nid), ": ", OpenSslError()));
  }
  return absl::OkStatus();
}

struct CertificateSpec {
  std::string common_name;
  bool is_ca = false;
  std::string extended_key_usage;         // "serverAuth" or "clientAuth"; empty for the CA
  std::string subject_alternative_names;  // "DNS:a,IP:1.2.3.4"; may be empty
  int validity_days = 825;
};

// A certificate for `key`'s public half, signed by `issuer_key` as `issuer` (both null: self-
// signed with `key`).
absl::StatusOr<Certificate> MakeCertificate(const CertificateSpec& spec, EVP_PKEY* key,
                                            X509* issuer, EVP_PKEY* issuer_key) {
  Certificate cert(X509_new());
  if (cert == nullptr) return absl::InternalError("out of memory");
  X509_set_version(cert.get(), 2);  // v3
  std::unique_ptr<BIGNUM, BignumFree> serial(BN_new());
  if (serial == nullptr || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return absl::InternalError(absl::StrCat("cannot make a serial number: ", OpenSslError()));
  }
  // Valid from a few minutes ago, for clocks a little behind.
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -300);
  X509_time_adj_ex(X509_getm_notAfter(cert.get()), spec.validity_days, 0, nullptr);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>("pghaul"), -1, -1,
                                 0) != 1 ||
      X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(spec.common_name.c_str()),
                                 -1, -1, 0) != 1) {
    return absl::InternalError(absl::StrCat("cannot set the subject: ", OpenSslError()));
  }
  X509* signer = issuer != nullptr ? issuer : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)) != 1 ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return absl::InternalError(absl::StrCat("cannot build the certificate: ", OpenSslError()));
  }
  PGH_RETURN_IF_ERROR(
      AddExtension(cert.get(), signer, NID_basic_constraints,
                   spec.is_ca ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE"));
  PGH_RETURN_IF_ERROR(
      AddExtension(cert.get(), signer, NID_key_usage,
                   spec.is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature"));
  if (!spec.extended_key_usage.empty()) {
    PGH_RETURN_IF_ERROR(
        AddExtension(cert.get(), signer, NID_ext_key_usage, spec.extended_key_usage));
  }
  PGH_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_subject_key_identifier, "hash"));
  PGH_RETURN_IF_ERROR(
      AddExtension(cert.get(), signer, NID_authority_key_identifier, "keyid:always"));
  if (!spec.subject_alternative_names.empty()) {
    PGH_RETURN_IF_ERROR(
        AddExtension(cert.get(), signer, NID_subject_alt_name, spec.subject_alternative_names));
  }
  if (X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) == 0) {
    return absl::InternalError(absl::StrCat("cannot sign the certificate: ", OpenSslError()));
  }
  return cert;
}

bool IsDnsName(absl::string_view name) {
  if (name.empty() || name.size() > 253 || name.front() == '.' || name.back() == '.' ||
      name.front() == '-') {
    return false;
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') return false;
  }
  return !absl::StrContains(name, "..");
}

// "DNS:a,IP:b" for the controller's hosts. InvalidArgument for anything that is neither.
absl::StatusOr<std::string> AlternativeNames(const std::vector<std::string>& hosts) {
  std::vector<std::string> entries;
  for (const std::string& host : hosts) {
    in_addr v4;
    in6_addr v6;
    if (inet_pton(AF_INET, host.c_str(), &v4) == 1 || inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
      entries.push_back(absl::StrCat("IP:", host));
    } else if (IsDnsName(host)) {
      entries.push_back(absl::StrCat("DNS:", host));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("'", absl::CHexEscape(host),
                       "' is neither a DNS name (letters, digits, '.' and '-') nor an IP address"));
    }
  }
  if (entries.empty()) {
    return absl::InvalidArgumentError("a controller certificate needs at least one --name");
  }
  return absl::StrJoin(entries, ",");
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Refuses to replace any of `paths` unless `force`.
absl::Status CheckNotThere(const std::vector<std::string>& paths, bool force) {
  if (force) return absl::OkStatus();
  std::vector<std::string> present;
  for (const std::string& path : paths) {
    if (Exists(path)) present.push_back(path);
  }
  if (present.empty()) return absl::OkStatus();
  return absl::AlreadyExistsError(absl::StrCat(absl::StrJoin(present, " and "),
                                               present.size() == 1 ? " exists" : " exist",
                                               "; pass --force to replace"));
}

// Writes a key (0600) and its certificate (0644): the key first, so a certificate never sits
// beside a key it does not match for longer than a crash takes.
absl::Status WritePair(const std::string& cert_path, X509* cert, const std::string& key_path,
                       EVP_PKEY* key) {
  PGH_ASSIGN_OR_RETURN(std::string key_pem, ToPem(key));
  PGH_ASSIGN_OR_RETURN(std::string cert_pem, ToPem(cert));
  PGH_RETURN_IF_ERROR(WriteFileAtomically(key_path, key_pem, 0600));
  // WriteFileAtomically's mode is subject to the umask; a key must never be more open.
  if (::chmod(key_path.c_str(), 0600) != 0) {
    return absl::InternalError(absl::StrCat("chmod 0600 ", key_path, " failed"));
  }
  PGH_RETURN_IF_ERROR(WriteFileAtomically(cert_path, cert_pem, 0644));
  return absl::OkStatus();
}

std::string CaCertPath(const std::string& dir) { return dir + "/ca.crt"; }
std::string CaKeyPath(const std::string& dir) { return dir + "/ca.key"; }

absl::Status ValidateDays(int days) {
  if (days >= 1 && days <= 36500) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("a validity of ", days, " days is out of range: use 1 to 36500"));
}

}  // namespace

absl::Status ValidateCliName(absl::string_view name) {
  // The same characters as an agent id; the message is worded for a CLI name.
  if (ValidateAgentId(name).ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "CLI name '", absl::CHexEscape(name.substr(0, 80)),
      "' is not valid: use 1 to 63 characters of a-z, 0-9, '.', '_' or '-', starting with a "
      "letter or digit"));
}

absl::StatusOr<TlsMaterial> LoadTlsFiles(const TlsFilePaths& paths, const TlsSettingNames& names,
                                         absl::Time now) {
  auto read = [](const std::string& path,
                 const std::string& setting) -> absl::StatusOr<std::string> {
    if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(setting, " is not set"));
    absl::StatusOr<std::string> text = ReadFile(path, /*max_bytes=*/1 << 20);
    if (!text.ok()) return Annotate(text.status(), setting);
    return text;
  };
  auto file = [](const std::string& setting, const std::string& path) {
    return absl::StrCat(setting, " (", path, ")");
  };
  TlsMaterial material;
  PGH_ASSIGN_OR_RETURN(material.ca_pem, read(paths.ca, names.ca));
  PGH_ASSIGN_OR_RETURN(material.cert_pem, read(paths.cert, names.cert));
  PGH_ASSIGN_OR_RETURN(material.key_pem, read(paths.key, names.key));

  std::vector<Certificate> authorities = ReadCertificates(material.ca_pem);
  if (authorities.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file(names.ca, paths.ca), " holds no PEM certificate"));
  }
  std::vector<Certificate> chain = ReadCertificates(material.cert_pem);
  if (chain.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file(names.cert, paths.cert), " holds no PEM certificate"));
  }
  Key key = ReadKey(material.key_pem);
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(file(names.key, paths.key),
                     " holds no PEM private key, or an encrypted one (pghaul needs it "
                     "unencrypted, readable only by the user the process runs as)"));
  }
  X509* leaf = chain.front().get();
  if (X509_check_private_key(leaf, key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(file(names.key, paths.key),
                                                   " is not the private key of the certificate in ",
                                                   file(names.cert, paths.cert)));
  }

  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  for (const Certificate& authority : authorities)
    X509_STORE_add_cert(store.get(), authority.get());
  std::unique_ptr<STACK_OF(X509), ChainFree> intermediates(sk_X509_new_null());
  for (size_t i = 1; i < chain.size(); ++i) {
    X509_up_ref(chain[i].get());
    sk_X509_push(intermediates.get(), chain[i].get());
  }
  std::unique_ptr<X509_STORE_CTX, StoreContextFree> context(X509_STORE_CTX_new());
  if (context == nullptr ||
      X509_STORE_CTX_init(context.get(), store.get(), leaf, intermediates.get()) != 1) {
    return absl::InternalError(absl::StrCat("cannot check certificates: ", OpenSslError()));
  }
  X509_STORE_CTX_set_time(context.get(), 0, absl::ToTimeT(now));
  if (X509_verify_cert(context.get()) != 1) {
    int error = X509_STORE_CTX_get_error(context.get());
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        "the certificate in ", file(names.cert, paths.cert), " does not check out against ",
        file(names.ca, paths.ca), ": ", X509_verify_cert_error_string(error),
        error == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
            ? " (it was issued by another CA; use the CA file of the CA that issued it)"
            : ""));
  }
  material.certificate.names = NamesOf(leaf);
  material.certificate.not_before = Asn1Time(X509_get0_notBefore(leaf));
  material.certificate.not_after = Asn1Time(X509_get0_notAfter(leaf));
  return material;
}

absl::StatusOr<WrittenFiles> CreateCertificateAuthority(const std::string& dir, int validity_days,
                                                        bool force) {
  PGH_RETURN_IF_ERROR(ValidateDays(validity_days));
  WrittenFiles written{CaCertPath(dir), CaKeyPath(dir), CaCertPath(dir)};
  PGH_RETURN_IF_ERROR(CheckNotThere({written.certificate, written.key}, force));
  PGH_RETURN_IF_ERROR(MakeDirectories(dir, 0700));
  PGH_ASSIGN_OR_RETURN(Key key, NewKey());
  CertificateSpec spec;
  // A random suffix tells two CAs apart in error messages and chain building.
  spec.common_name = absl::StrCat("pghaul CA ", RandomHexId().substr(0, 8));
  spec.is_ca = true;
  spec.validity_days = validity_days;
  PGH_ASSIGN_OR_RETURN(Certificate cert, MakeCertificate(spec, key.get(), nullptr, nullptr));
  PGH_RETURN_IF_ERROR(WritePair(written.certificate, cert.get(), written.key, key.get()));
  return written;
}

absl::StatusOr<WrittenFiles> IssueCertificate(const std::string& dir,
                                              const CertificateRequest& request, bool force) {
  PGH_RETURN_IF_ERROR(ValidateDays(request.validity_days));
  CertificateSpec spec;
  spec.validity_days = request.validity_days;
  std::string base;
  switch (request.kind) {
    case CertificateKind::kAgent:
      PGH_RETURN_IF_ERROR(ValidateAgentId(request.name));
      spec.common_name = request.name;
      spec.extended_key_usage = "clientAuth";
      base = absl::StrCat("agent-", request.name);
      break;
    case CertificateKind::kCli:
      PGH_RETURN_IF_ERROR(ValidateCliName(request.name));
      spec.common_name = absl::StrCat(kCliNamePrefix, request.name);
      spec.extended_key_usage = "clientAuth";
      base = absl::StrCat("cli-", request.name);
      break;
    case CertificateKind::kController: {
      PGH_ASSIGN_OR_RETURN(spec.subject_alternative_names, AlternativeNames(request.hosts));
      spec.common_name = absl::StrCat(kControllerNamePrefix, request.hosts.front());
      spec.extended_key_usage = "serverAuth";
      base = "controller";
      break;
    }
  }
  WrittenFiles written{absl::StrCat(dir, "/", base, ".crt"), absl::StrCat(dir, "/", base, ".key"),
                       CaCertPath(dir)};
  // The CA first: without it there is nothing to sign with, whatever else is wrong.
  absl::StatusOr<std::string> ca_pem = ReadFile(CaCertPath(dir), 1 << 20);
  absl::StatusOr<std::string> ca_key_pem = ReadFile(CaKeyPath(dir), 1 << 20);
  if (absl::IsNotFound(ca_pem.status()) || absl::IsNotFound(ca_key_pem.status())) {
    return absl::NotFoundError(absl::StrCat("no CA in ", dir,
                                            " (ca.crt and ca.key): run `pghaul "
                                            "certs init --dir ",
                                            dir, "` first"));
  }
  if (!ca_pem.ok()) return ca_pem.status();
  if (!ca_key_pem.ok()) return ca_key_pem.status();
  std::vector<Certificate> authorities = ReadCertificates(*ca_pem);
  Key ca_key = ReadKey(*ca_key_pem);
  if (authorities.empty() || ca_key == nullptr ||
      X509_check_private_key(authorities.front().get(), ca_key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        CaCertPath(dir), " and ", CaKeyPath(dir),
        " are not a PEM certificate and its unencrypted key; recreate them with `pghaul certs "
        "init --force`"));
  }
  PGH_RETURN_IF_ERROR(CheckNotThere({written.certificate, written.key}, force));
  PGH_ASSIGN_OR_RETURN(Key key, NewKey());
  PGH_ASSIGN_OR_RETURN(Certificate cert,
                       MakeCertificate(spec, key.get(), authorities.front().get(), ca_key.get()));
  PGH_RETURN_IF_ERROR(WritePair(written.certificate, cert.get(), written.key, key.get()));
  return written;
}

std::vector<std::string> DefaultControllerHosts() {
  std::vector<std::string> hosts;
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) == 0 && IsDnsName(name) &&
      std::string(name) != "localhost") {
    hosts.push_back(name);
  }
  for (const char* host : {"localhost", "127.0.0.1", "::1"}) hosts.push_back(host);
  return hosts;
}

}  // namespace pghaul
