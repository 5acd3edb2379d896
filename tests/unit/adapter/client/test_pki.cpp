#include "test_pki.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>
#include <vector>

#include "adapter/client/jwt.hpp"

namespace microcare::adapter::test_support {
namespace {

template <auto Free>
struct Deleter {
    template <typename T>
    void operator()(T* p) const {
        Free(p);
    }
};
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO_free_all>>;

void Check(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("OpenSSL: ") + what);
}

std::string BioText(BIO* bio) {
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(size));
}

std::string KeyPem(EVP_PKEY* key) {
    Bio bio(BIO_new(BIO_s_mem()));
    Check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
          "write key");
    return BioText(bio.get());
}

std::string CertPem(X509* cert) {
    Bio bio(BIO_new(BIO_s_mem()));
    Check(PEM_write_bio_X509(bio.get(), cert) == 1, "write certificate");
    return BioText(bio.get());
}

Key ReadKey(const std::string& pem) {
    Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    Check(key != nullptr, "read key");
    return key;
}

Cert ReadCert(const std::string& pem) {
    Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    Check(cert != nullptr, "read certificate");
    return cert;
}

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    Check(extension != nullptr, "extension");
    Check(X509_add_ext(cert, extension, -1) == 1, "add extension");
    X509_EXTENSION_free(extension);
}

Cert NewCertificate(EVP_PKEY* key, const char* common_name, long serial) {
    Cert cert(X509_new());
    Check(X509_set_version(cert.get(), 2) == 1, "version");
    Check(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial) == 1, "serial");
    // Valid from an hour ago, in case the clocks of the test and the TLS library disagree.
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
    Check(X509_set_pubkey(cert.get(), key) == 1, "public key");
    X509_NAME* name = X509_get_subject_name(cert.get());
    Check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                     reinterpret_cast<const unsigned char*>(common_name), -1, -1,
                                     0) == 1,
          "subject");
    return cert;
}

}  // namespace

std::string GenerateRsaKeyPem(unsigned bits) {
    Key key(EVP_RSA_gen(bits));
    Check(key != nullptr, "RSA key");
    return KeyPem(key.get());
}

std::string GenerateEcKeyPem(const char* curve) {
    Key key(EVP_EC_gen(curve));
    Check(key != nullptr, "EC key");
    return KeyPem(key.get());
}

std::string PublicKeyPem(const std::string& private_key_pem) {
    Key key = ReadKey(private_key_pem);
    Bio bio(BIO_new(BIO_s_mem()));
    Check(PEM_write_bio_PUBKEY(bio.get(), key.get()) == 1, "write public key");
    return BioText(bio.get());
}

Certificates MakeCertificates(const std::string& subject_alt_names) {
    Key ca_key(EVP_EC_gen("P-256"));
    Check(ca_key != nullptr, "CA key");
    Cert ca = NewCertificate(ca_key.get(), "MicroCare Test CA", 1);
    Check(X509_set_issuer_name(ca.get(), X509_get_subject_name(ca.get())) == 1, "CA issuer");
    AddExtension(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
    AddExtension(ca.get(), ca.get(), NID_subject_key_identifier, "hash");
    Check(X509_sign(ca.get(), ca_key.get(), EVP_sha256()) > 0, "sign CA");

    Key key(EVP_EC_gen("P-256"));
    Check(key != nullptr, "server key");
    Cert cert = NewCertificate(key.get(), "MicroCare Test Server", 2);
    Check(X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.get())) == 1, "issuer");
    AddExtension(cert.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE");
    AddExtension(cert.get(), ca.get(), NID_key_usage, "critical,digitalSignature");
    AddExtension(cert.get(), ca.get(), NID_ext_key_usage, "serverAuth");
    AddExtension(cert.get(), ca.get(), NID_authority_key_identifier, "keyid:always");
    AddExtension(cert.get(), ca.get(), NID_subject_alt_name, subject_alt_names.c_str());
    Check(X509_sign(cert.get(), ca_key.get(), EVP_sha256()) > 0, "sign server certificate");

    return Certificates{CertPem(ca.get()), CertPem(cert.get()), KeyPem(key.get())};
}

void UseServerCertificate(SSL_CTX* ctx, const Certificates& certificates) {
    Cert cert = ReadCert(certificates.cert_pem);
    Key key = ReadKey(certificates.key_pem);
    Check(SSL_CTX_use_certificate(ctx, cert.get()) == 1, "use certificate");
    Check(SSL_CTX_use_PrivateKey(ctx, key.get()) == 1, "use key");
}

void TrustCa(SSL_CTX* ctx, const std::string& ca_pem) {
    Cert ca = ReadCert(ca_pem);
    Check(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca.get()) == 1, "trust CA");
}

bool VerifyJws(const std::string& jws, const std::string& public_key_pem, const std::string& alg) {
    const auto first = jws.find('.');
    const auto second = jws.find('.', first + 1);
    if (first == std::string::npos || second == std::string::npos) return false;
    const std::string signing_input = jws.substr(0, second);
    auto signature = Base64UrlDecode(jws.substr(second + 1));
    if (!signature) return false;

    std::vector<unsigned char> der;
    if (alg == "ES384") {
        // JOSE's R || S back into the DER that OpenSSL verifies.
        if (signature->size() != 96) return false;
        ECDSA_SIG* sig = ECDSA_SIG_new();
        const auto* raw = reinterpret_cast<const unsigned char*>(signature->data());
        ECDSA_SIG_set0(sig, BN_bin2bn(raw, 48, nullptr), BN_bin2bn(raw + 48, 48, nullptr));
        unsigned char* out = nullptr;
        const int length = i2d_ECDSA_SIG(sig, &out);
        ECDSA_SIG_free(sig);
        if (length <= 0) return false;
        der.assign(out, out + length);
        OPENSSL_free(out);
    } else {
        der.assign(signature->begin(), signature->end());
    }

    Bio bio(BIO_new_mem_buf(public_key_pem.data(), static_cast<int>(public_key_pem.size())));
    Key key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
    if (!key) return false;
    std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>> ctx(EVP_MD_CTX_new());
    if (EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha384(), nullptr, key.get()) != 1) {
        return false;
    }
    return EVP_DigestVerify(ctx.get(), der.data(), der.size(),
                            reinterpret_cast<const unsigned char*>(signing_input.data()),
                            signing_input.size()) == 1;
}

}  // namespace microcare::adapter::test_support
