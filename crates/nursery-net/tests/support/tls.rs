//! A throwaway PKI generated at test time (rcgen on ring): a CA, a server certificate for
//! `localhost` and 127.0.0.1 signed by it, and one for another host name.

#![allow(dead_code, unreachable_pub)]

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// PEM texts: the CA's certificate, and (chain, key) pairs for two server certificates.
pub struct TestPki {
    pub ca_pem: String,
    /// Valid for `localhost` and 127.0.0.1.
    pub localhost: (String, String),
    /// Valid only for `elsewhere.invalid`.
    pub wrong_host: (String, String),
    /// A self-signed certificate for `localhost` that no test trusts.
    pub untrusted: (String, String),
}

fn leaf(names: &[&str], issuer: &Issuer<'_, KeyPair>) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .expect("params");
    let cert = params.signed_by(&key, issuer).expect("sign");
    (cert.pem(), key.serialize_pem())
}

pub fn pki() -> TestPki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "nursery test CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let localhost = leaf(&["localhost", "127.0.0.1"], &issuer);
    let wrong_host = leaf(&["elsewhere.invalid"], &issuer);
    let self_key = KeyPair::generate().expect("key");
    let self_cert = CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .self_signed(&self_key)
        .expect("self-signed");
    TestPki {
        ca_pem: ca_cert.pem(),
        localhost,
        wrong_host,
        untrusted: (self_cert.pem(), self_key.serialize_pem()),
    }
}
