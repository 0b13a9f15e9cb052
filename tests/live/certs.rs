//! Certificates for the live TLS tests, made with `rcgen`: a CA per test and leaf
//! certificates whose common name is the principal (docs/security.md SEC11).

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A certificate and its key, as files.
pub type Identity = (PathBuf, PathBuf);

/// A certificate authority made for one test.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { cert, key }
    }

    /// Writes `DIR/ca.pem`; returns its path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}.pem"));
        fs::write(&path, self.cert.pem()).expect("write CA");
        path
    }

    /// A certificate for `principal`, valid for loopback (as a server too), written as
    /// `DIR/<principal>.crt` and `.key`; `expired` makes one that ended in 2021.
    pub fn issue(&self, dir: &Path, principal: &str, expired: bool) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, principal);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("leaf certificate");
        let cert_path = dir.join(format!("{principal}.crt"));
        let key_path = dir.join(format!("{principal}.key"));
        fs::write(&cert_path, cert.pem()).expect("write certificate");
        fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }
}

/// `--tls-cert C --tls-key K --tls-ca CA`.
pub fn tls_flags(identity: &(PathBuf, PathBuf), ca: &Path) -> Vec<String> {
    vec![
        "--tls-cert".into(),
        identity.0.display().to_string(),
        "--tls-key".into(),
        identity.1.display().to_string(),
        "--tls-ca".into(),
        ca.display().to_string(),
    ]
}
