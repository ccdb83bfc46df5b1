//! Certificates made for a test: a CA of its own ([`TestCa`]) and server certificates it signs
//! ([`ServerTls`]), for a cluster with TLS on ([`crate::Cluster::start_tls`]). Nothing here is
//! trusted anywhere else: each CA is new, its key lives only in memory.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// A certificate authority made for one test.
pub struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").field("pem", &self.pem).finish_non_exhaustive()
    }
}

/// A server's certificate and private key, PEM.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    /// A new CA (ECDSA P-256) whose common name is `name`.
    ///
    /// # Errors
    /// If the key or the certificate cannot be made.
    pub fn new(name: &str) -> Result<TestCa, String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(|e| format!("a key for the CA {name}: {e}"))?;
        let cert = params.self_signed(&key).map_err(|e| format!("the CA {name}: {e}"))?;
        Ok(TestCa { pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// The CA's certificate, PEM: what a client's `sslrootcert` names.
    #[must_use]
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A server certificate signed by this CA, valid for `names` (host names, or IP addresses
    /// written as such) and for nothing else.
    ///
    /// # Errors
    /// If a name is not a valid DNS name or IP address, or the certificate cannot be made.
    pub fn server(&self, names: &[&str]) -> Result<ServerTls, String> {
        let names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).map_err(|e| format!("names {names:?}: {e}"))?;
        params.distinguished_name.push(DnType::CommonName, names.first().map_or("server", String::as_str));
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(|e| format!("a server key: {e}"))?;
        let cert = params.signed_by(&key, &self.issuer).map_err(|e| format!("the server certificate: {e}"))?;
        Ok(ServerTls { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}
