#include "apps/cert.hpp"
#include "core/openssl_errors.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

#include "core/ids.hpp"
#include "core/openssl_errors.hpp"

namespace kaiwa::app {

namespace {

template <class T, void (*Free)(T*)>
struct openssl_deleter {
  void operator()(T* p) const { Free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<EVP_PKEY, EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, openssl_deleter<X509, X509_free>>;
using bio_ptr = std::unique_ptr<BIO, openssl_deleter<BIO, BIO_free_all>>;
using bn_ptr = std::unique_ptr<BIGNUM, openssl_deleter<BIGNUM, BN_free>>;

/// An error message, or nothing.
using failure = std::optional<std::string>;

/// Writes `data` to a new file `path` with `mode`; an existing file is an error, never
/// overwritten (a CA key written over is a cluster that can't add members any more).
failure write_new_file(const std::string& path, std::string_view data, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0)
    return fmt::format(
        "can't create {}: {}", path,
        errno == EEXIST ? "it exists (kaiwa cert never overwrites)" : std::strerror(errno));
  // The umask may have taken bits away, never added any; fchmod makes the mode exact.
  bool ok = ::fchmod(fd, mode) == 0;
  while (ok && !data.empty()) {
    auto n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) data.remove_prefix(static_cast<std::size_t>(n));
  }
  ok = ::fsync(fd) == 0 && ok;
  ok = ::close(fd) == 0 && ok;
  if (!ok) return fmt::format("can't write {}: {}", path, std::strerror(errno));
  return std::nullopt;
}

std::string pem_of(const x509_ptr& cert) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert.get());
  char* data = nullptr;
  auto n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string pem_of(const pkey_ptr& key) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  auto n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

failure add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  auto* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) return "can't add a certificate extension: " + openssl_errors();
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  if (!ok) return "can't add a certificate extension: " + openssl_errors();
  return std::nullopt;
}

/// A certificate for `key` named `cn`, valid for `days`, signed by `issuer_key` (and named
/// after `issuer`, or self-signed when it is null).
std::optional<x509_ptr> make_cert(const pkey_ptr& key, const std::string& cn, int days,
                                  X509* issuer, const pkey_ptr& issuer_key, bool ca,
                                  std::string& err) {
  x509_ptr cert(X509_new());
  bn_ptr serial(BN_new());
  // Random 127-bit serials: unique without keeping a counter next to the CA.
  bool ok = cert && serial && X509_set_version(cert.get(), X509_VERSION_3) == 1 &&
            BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
            BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) &&
            // A few minutes back: members whose clocks differ a little accept it at once.
            X509_gmtime_adj(X509_getm_notBefore(cert.get()), -300) &&
            X509_gmtime_adj(X509_getm_notAfter(cert.get()), std::int64_t{days} * 86400) &&
            X509_set_pubkey(cert.get(), key.get()) == 1;
  auto* name = X509_get_subject_name(cert.get());
  ok = ok &&
       X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                  reinterpret_cast<const unsigned char*>("kaiwa cluster"), -1, -1,
                                  0) == 1 &&
       X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                  reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                  0) == 1 &&
       X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name) == 1;
  if (!ok) {
    err = "can't build the certificate: " + openssl_errors();
    return std::nullopt;
  }
  auto* signer = issuer ? issuer : cert.get();
  failure f = add_ext(cert.get(), signer, NID_basic_constraints,
                      ca ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE");
  if (!f)
    f = add_ext(cert.get(), signer, NID_key_usage,
                ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  // Every member both accepts and dials: its certificate serves as server's and client's.
  if (!f && !ca) f = add_ext(cert.get(), signer, NID_ext_key_usage, "serverAuth,clientAuth");
  if (!f) f = add_ext(cert.get(), signer, NID_subject_key_identifier, "hash");
  if (!f && issuer) f = add_ext(cert.get(), signer, NID_authority_key_identifier, "keyid:always");
  if (f) {
    err = *f;
    return std::nullopt;
  }
  if (X509_sign(cert.get(), issuer_key.get(), EVP_sha256()) == 0) {
    err = "can't sign the certificate: " + openssl_errors();
    return std::nullopt;
  }
  return cert;
}

failure make_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fmt::format("can't create {}: {}", dir, ec.message());
  return std::nullopt;
}

failure read_file(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fmt::format("can't read {}: {}", path, std::strerror(errno));
  std::ostringstream buf;
  buf << in.rdbuf();
  out = std::move(buf).str();
  return std::nullopt;
}

int fail(const std::string& msg) {
  fmt::print(stderr, "kaiwa cert: {}\n", msg);
  return 1;
}

}  // namespace

int cert_ca_command(const std::string& out_dir, int days) {
  if (days <= 0) return fail("--days must be positive");
  if (auto f = make_dir(out_dir)) return fail(*f);
  pkey_ptr key(EVP_EC_gen("P-256"));
  if (!key) return fail("can't make a key: " + openssl_errors());
  std::string err;
  auto cert = make_cert(key, "kaiwa cluster CA", days, nullptr, key, true, err);
  if (!cert) return fail(err);
  auto key_path = out_dir + "/ca-key.pem", cert_path = out_dir + "/ca.pem";
  if (auto f = write_new_file(key_path, pem_of(key), 0600)) return fail(*f);
  if (auto f = write_new_file(cert_path, pem_of(*cert), 0644)) return fail(*f);
  fmt::print(
      "wrote {} (the CA certificate: give it to every member as --cluster-ca) and {} (its key: "
      "keep it off the members; `kaiwa cert node` needs it)\n",
      cert_path, key_path);
  return 0;
}

int cert_node_command(const std::string& ca_dir, const std::string& name,
                      const std::string& out_dir, int days) {
  if (days <= 0) return fail("--days must be positive");
  if (!valid_name(name)) return fail("--name: 1 to 128 chars of [A-Za-z0-9_.:@-]");
  std::string ca_pem, ca_key_pem;
  if (auto f = read_file(ca_dir + "/ca.pem", ca_pem)) return fail(*f);
  if (auto f = read_file(ca_dir + "/ca-key.pem", ca_key_pem)) return fail(*f);
  bio_ptr cb(BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size())));
  x509_ptr ca(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
  bio_ptr kb(BIO_new_mem_buf(ca_key_pem.data(), static_cast<int>(ca_key_pem.size())));
  pkey_ptr ca_key(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  if (!ca || !ca_key) return fail("can't load the CA from " + ca_dir + ": " + openssl_errors());
  if (X509_check_private_key(ca.get(), ca_key.get()) != 1)
    return fail(ca_dir + "/ca-key.pem is not the key of " + ca_dir + "/ca.pem");
  if (auto f = make_dir(out_dir)) return fail(*f);
  pkey_ptr key(EVP_EC_gen("P-256"));
  if (!key) return fail("can't make a key: " + openssl_errors());
  std::string err;
  auto cert = make_cert(key, name, days, ca.get(), ca_key, false, err);
  if (!cert) return fail(err);
  auto key_path = out_dir + "/" + name + "-key.pem", cert_path = out_dir + "/" + name + ".pem";
  if (auto f = write_new_file(key_path, pem_of(key), 0600)) return fail(*f);
  if (auto f = write_new_file(cert_path, pem_of(*cert), 0644)) return fail(*f);
  // The node's directory gets the CA's certificate too (never its key), unless it has it.
  std::error_code ec;
  auto ca_copy = out_dir + "/ca.pem";
  if (!std::filesystem::equivalent(ca_dir, out_dir, ec)) {
    std::string existing;
    if (!std::filesystem::exists(ca_copy, ec)) {
      if (auto f = write_new_file(ca_copy, ca_pem, 0644)) return fail(*f);
    } else if (read_file(ca_copy, existing) || existing != ca_pem) {
      return fail(ca_copy + " exists and is another CA's certificate");
    }
  }
  fmt::print(
      "wrote {} and {} (node {}); start it with --cluster-ca {} --cluster-cert {} "
      "--cluster-key {}\n",
      cert_path, key_path, name, ca_copy, cert_path, key_path);
  return 0;
}

}  // namespace kaiwa::app
