//! Mutual TLS on the network seam (docs/security.md SEC7-SEC13).
//!
//! [`TlsNetwork`] wraps the real network: every connection it accepts or opens is a TLS
//! connection in which both ends present a certificate signed by the cluster's CA. The
//! roles above it see an ordinary byte stream, so the wire protocol, the HTTP endpoints
//! and every role are unchanged. The simulator never uses it: its network seam stays
//! plain simulated TCP (SEC13).

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::task::JoinSet;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::warn;

use crate::os::{BoxStream, Listener, LocalFuture, Network};

/// A TLS handshake must finish within this long, or the connection is closed
/// (docs/security.md SEC10).
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// The most handshakes a listener runs at once; one more closes the oldest
/// (docs/security.md SEC10, as SEC4 for unidentified connections).
pub const HANDSHAKES_MAX: usize = crate::wire::UNIDENTIFIED_CONNECTIONS_MAX;

/// The environment variables through which the agent hands its TLS files to the
/// executors it launches (docs/security.md SEC12).
pub const ENV_CERT: &str = "REVENANT_TLS_CERT";
/// See [`ENV_CERT`].
pub const ENV_KEY: &str = "REVENANT_TLS_KEY";
/// See [`ENV_CERT`].
pub const ENV_CA: &str = "REVENANT_TLS_CA";

/// The warning every role prints at start when it runs without TLS (SEC7).
pub const PLAINTEXT_WARNING: &str = "TLS is off (no --tls-cert, --tls-key, --tls-ca): connections are in clear text and peers are not authenticated";

/// The three files of a role's TLS identity, as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The role's certificate chain (PEM), its own certificate first.
    pub cert: PathBuf,
    /// The role's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA certificate(s) (PEM) that every peer's certificate must be signed by.
    pub ca: PathBuf,
}

impl TlsFiles {
    /// The files from the three optional flags: all three or none (SEC7). `Err` names
    /// the missing flag(s).
    pub fn from_flags(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        ca: Option<PathBuf>,
    ) -> Result<Option<TlsFiles>, String> {
        match (cert, key, ca) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => Ok(Some(TlsFiles { cert, key, ca })),
            (cert, key, ca) => {
                let missing: Vec<&str> = [
                    (cert.is_none(), "--tls-cert"),
                    (key.is_none(), "--tls-key"),
                    (ca.is_none(), "--tls-ca"),
                ]
                .into_iter()
                .filter(|(missing, _)| *missing)
                .map(|(_, flag)| flag)
                .collect();
                Err(format!(
                    "TLS needs --tls-cert, --tls-key and --tls-ca together; missing {}",
                    missing.join(", ")
                ))
            }
        }
    }

    /// The files from the environment the agent gave an executor (SEC12); `None` when
    /// the agent runs without TLS.
    pub fn from_environment(
        variables: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<TlsFiles>, String> {
        let get = |name: &str| variables.get(name).map(PathBuf::from);
        TlsFiles::from_flags(get(ENV_CERT), get(ENV_KEY), get(ENV_CA)).map_err(|_| {
            format!("the environment must set all of {ENV_CERT}, {ENV_KEY} and {ENV_CA}, or none")
        })
    }

    /// The environment variables that hand these files to an executor (SEC12), as
    /// absolute paths: the executor runs in its sandbox, not in the agent's directory.
    pub fn environment(&self) -> Vec<(String, String)> {
        let absolute = |path: &Path| {
            std::path::absolute(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display()
                .to_string()
        };
        vec![
            (ENV_CERT.to_owned(), absolute(&self.cert)),
            (ENV_KEY.to_owned(), absolute(&self.key)),
            (ENV_CA.to_owned(), absolute(&self.ca)),
        ]
    }
}

/// A role's loaded TLS identity: the server side (for its listener) and the client side
/// (for the connections it opens), both requiring the peer's certificate.
#[derive(Clone)]
pub struct TlsIdentity {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

/// Reads a PEM file through the real filesystem seam (docs/design.md D2): TLS files
/// are read once, at start, by the binaries only.
fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    use crate::os::FileSystem as _;
    crate::os::real::RealFs::default()
        .read(path)
        .map_err(|error| format!("{what} '{}': {error}", path.display()))
}

fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_pem(path, what)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("{what} '{}': {error}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} '{}' holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}

impl TlsIdentity {
    /// Loads the files; every error names the file and what is wrong with it.
    pub fn load(files: &TlsFiles) -> Result<TlsIdentity, String> {
        let chain = certificates(&files.cert, "--tls-cert")?;
        let key_pem = read_pem(&files.key, "--tls-key")?;
        let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .map_err(|error| format!("--tls-key '{}': {error}", files.key.display()))?
            .ok_or_else(|| {
                format!(
                    "--tls-key '{}' holds no PEM private key",
                    files.key.display()
                )
            })?;
        let mut roots = RootCertStore::empty();
        for ca in certificates(&files.ca, "--tls-ca")? {
            roots.add(ca).map_err(|error| {
                format!(
                    "--tls-ca '{}': not a usable CA certificate: {error}",
                    files.ca.display()
                )
            })?;
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|error| format!("--tls-ca '{}': {error}", files.ca.display()))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS settings: {error}"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|error| {
                format!(
                    "--tls-cert '{}' and --tls-key '{}' do not make a usable identity: {error}",
                    files.cert.display(),
                    files.key.display()
                )
            })?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS settings: {error}"))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|error| {
                format!(
                    "--tls-cert '{}' and --tls-key '{}' do not make a usable identity: {error}",
                    files.cert.display(),
                    files.key.display()
                )
            })?;
        Ok(TlsIdentity {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    /// The client side, for blocking clients (the CLI's HTTP query).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client.clone()
    }
}

/// The name a client checks the server's certificate against: the host part of
/// `address` (`host:port`, `[v6]:port`), as an IP address or a DNS name (SEC9).
pub fn server_name(address: &str) -> Result<ServerName<'static>, String> {
    let host = match address.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => address,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .map_err(|error| format!("'{address}' names no host a certificate can match: {error}"))
}

/// The principal a certificate names: its subject's common name, or else its first
/// DNS or URI subject alternative name (SEC11).
pub fn principal(certificate: &[u8]) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(certificate).ok()?;
    if let Some(cn) = cert
        .subject()
        .iter_common_name()
        .find_map(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
    {
        return Some(cn.to_owned());
    }
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|name| match name {
        GeneralName::DNSName(name) | GeneralName::URI(name) => Some((*name).to_owned()),
        _ => None,
    })
}

/// The peer string a TLS listener hands its role: `principal@address` (SEC11).
pub fn peer_with_principal(principal: &str, address: &str) -> String {
    format!("{principal}@{address}")
}

/// The principal in a peer string made by [`peer_with_principal`], if any: peers of a
/// listener without TLS (and of the simulator) have none.
pub fn principal_of(peer: &str) -> Option<&str> {
    peer.rsplit_once('@').map(|(principal, _)| principal)
}

/// The real network with mutual TLS on every connection (SEC8).
pub struct TlsNetwork {
    inner: Rc<dyn Network>,
    identity: TlsIdentity,
}

impl TlsNetwork {
    /// Wraps `inner` (the plain TCP network).
    pub fn new(inner: Rc<dyn Network>, identity: TlsIdentity) -> TlsNetwork {
        TlsNetwork { inner, identity }
    }
}

type Handshake = Result<(BoxStream, String), (String, String)>;

/// The handshakes under way on a listener (TLS here, credentials in
/// `crate::security::credentials`): they run concurrently, so a slow or silent client
/// holds up no one else, and at most [`HANDSHAKES_MAX`] at once, one more closing the
/// oldest (docs/security.md SEC10, SEC26).
pub(crate) struct Handshakes {
    /// Names the handshake in log lines: "TLS", "authentication".
    kind: &'static str,
    running: JoinSet<Handshake>,
    /// The running handshakes, oldest first, to close the oldest past the bound.
    started: VecDeque<tokio::task::AbortHandle>,
}

impl Handshakes {
    pub(crate) fn new(kind: &'static str) -> Handshakes {
        Handshakes {
            kind,
            running: JoinSet::new(),
            started: VecDeque::new(),
        }
    }

    /// Runs `handshake` for the connection from `address`, first closing the oldest
    /// one under way if the bound is reached.
    pub(crate) fn start(
        &mut self,
        address: &str,
        handshake: impl std::future::Future<Output = Handshake> + 'static,
    ) {
        self.started.retain(|handle| !handle.is_finished());
        if self.started.len() >= HANDSHAKES_MAX {
            if let Some(oldest) = self.started.pop_front() {
                oldest.abort();
                warn!(peer = %address, "too many {} handshakes under way: the oldest closed", self.kind);
            }
        }
        self.started.push_back(self.running.spawn_local(handshake));
    }

    /// The next connection whose handshake succeeded. Meanwhile connections accepted
    /// from `inner` are handed to `start`, and refused handshakes are logged with the
    /// peer and the reason (refused before any message was read: SEC8, SEC25).
    pub(crate) async fn next(
        &mut self,
        inner: &mut Box<dyn Listener>,
        mut start: impl FnMut(&mut Handshakes, BoxStream, String),
    ) -> io::Result<(BoxStream, String)> {
        loop {
            let has_handshakes = !self.running.is_empty();
            tokio::select! {
                biased;
                Some(done) = self.running.join_next(), if has_handshakes => match done {
                    Ok(Ok(connection)) => return Ok(connection),
                    Ok(Err((peer, reason))) => {
                        warn!(%peer, %reason, "{} refused: connection closed", self.refused());
                    }
                    Err(_) => {} // closed as the oldest past the bound
                },
                accepted = inner.accept() => {
                    let (stream, address) = accepted?;
                    start(self, stream, address);
                }
            }
        }
    }

    fn refused(&self) -> &'static str {
        match self.kind {
            "TLS" => "TLS handshake",
            other => other,
        }
    }
}

/// A listener whose connections are handed out only once their TLS handshake, the
/// peer's certificate checked, has completed. Handshakes run concurrently, so a slow
/// or silent client holds up no one else (SEC10).
struct TlsListener {
    inner: Box<dyn Listener>,
    acceptor: TlsAcceptor,
    handshakes: Handshakes,
}

impl TlsListener {
    fn start(
        handshakes: &mut Handshakes,
        acceptor: &TlsAcceptor,
        stream: BoxStream,
        address: String,
    ) {
        let acceptor = acceptor.clone();
        let peer = address.clone();
        handshakes.start(&peer, async move {
            let handshake = tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(stream));
            match handshake.await {
                Err(_) => Err((
                    address,
                    format!("the handshake did not finish within {HANDSHAKE_DEADLINE:?}"),
                )),
                Ok(Err(error)) => Err((address, error.to_string())),
                Ok(Ok(tls)) => {
                    let principal = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(|cert| principal(cert))
                        .unwrap_or_else(|| "unnamed".to_owned());
                    let peer = peer_with_principal(&principal, &address);
                    Ok((Box::new(tls) as BoxStream, peer))
                }
            }
        });
    }
}

impl Listener for TlsListener {
    fn accept(&mut self) -> LocalFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            let acceptor = &self.acceptor;
            self.handshakes
                .next(&mut self.inner, |handshakes, stream, address| {
                    TlsListener::start(handshakes, acceptor, stream, address)
                })
                .await
        })
    }
    fn local_addr(&self) -> io::Result<String> {
        self.inner.local_addr()
    }
}

impl Network for TlsNetwork {
    fn listen(&self, addr: &str) -> LocalFuture<'static, io::Result<Box<dyn Listener>>> {
        let inner = self.inner.listen(addr);
        let acceptor = TlsAcceptor::from(self.identity.server.clone());
        Box::pin(async move {
            let listener = inner.await?;
            Ok(Box::new(TlsListener {
                inner: listener,
                acceptor,
                handshakes: Handshakes::new("TLS"),
            }) as Box<dyn Listener>)
        })
    }
    fn connect(&self, addr: &str) -> LocalFuture<'static, io::Result<BoxStream>> {
        let inner = self.inner.connect(addr);
        let connector = TlsConnector::from(self.identity.client.clone());
        let name = server_name(addr);
        let addr = addr.to_owned();
        Box::pin(async move {
            let name = name.map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
            let stream = inner.await?;
            let tls = connector.connect(name, stream).await.map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("TLS handshake with {addr} failed: {error}"),
                )
            })?;
            Ok(Box::new(tls) as BoxStream)
        })
    }
}

/// The role's environment with TLS on its network when `files` are given (SEC7).
pub fn secure(mut env: crate::os::Env, files: Option<&TlsFiles>) -> Result<crate::os::Env, String> {
    if let Some(files) = files {
        let identity = TlsIdentity::load(files)?;
        env.net = Rc::new(TlsNetwork::new(env.net.clone(), identity));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_come_in_threes() {
        assert_eq!(TlsFiles::from_flags(None, None, None), Ok(None));
        let error = TlsFiles::from_flags(Some("c".into()), None, None).unwrap_err();
        assert!(error.contains("missing --tls-key, --tls-ca"), "{error}");
    }

    #[test]
    fn executors_get_absolute_paths() {
        let files = TlsFiles {
            cert: "a.crt".into(),
            key: "/k/a.key".into(),
            ca: "ca.crt".into(),
        };
        for (_, path) in files.environment() {
            assert!(Path::new(&path).is_absolute(), "{path}");
        }
    }

    #[test]
    fn server_names_from_addresses() {
        assert!(matches!(
            server_name("127.0.0.1:5050"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("[::1]:5050"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("master.example:5050"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(server_name("bad host:1").is_err());
    }

    #[test]
    fn principal_in_peer_strings() {
        let peer = peer_with_principal("agent-1", "127.0.0.1:4000");
        assert_eq!(principal_of(&peer), Some("agent-1"));
        assert_eq!(principal_of("127.0.0.1:4000"), None);
    }
}
