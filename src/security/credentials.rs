//! Framework and agent authentication without TLS: `--credentials FILE`
//! (docs/security.md SEC24-SEC28).
//!
//! [`CredentialNetwork`] wraps a network seam, as TLS does (SEC11): a connection it
//! opens first proves its principal by a challenge-response (an HMAC-SHA256, keyed by the
//! shared secret, of a nonce the master drew), and a connection it accepts is handed to
//! the role only once it has proved one, as `principal@address`. The secret never
//! crosses the wire. The handshake is plain library code over the seams (the nonce from
//! the random seam's secret stream, the deadline on the clock seam), so the simulated
//! master runs exactly this code.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tracing::warn;

use crate::os::{BoxStream, Clock, FileSystem, Listener, LocalFuture, Network, Random};

/// A handshake must finish within this long (SEC26).
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// The most handshakes a listener runs at once; one more closes the oldest (SEC26).
pub const HANDSHAKES_MAX: usize = crate::wire::UNIDENTIFIED_CONNECTIONS_MAX;

/// The longest handshake line (SEC25).
const LINE_MAX: usize = 512;

/// Random bytes in a nonce.
const NONCE_BYTES: usize = 32;

/// What the HMAC covers besides the nonce and the principal, so that a tag is never
/// valid for anything else.
const DOMAIN: &str = "revenant credential v1";

/// A principal and its secret. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The principal.
    pub principal: String,
    secret: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({}, <redacted>)", self.principal)
    }
}

impl Credential {
    /// A credential (checked as a file's entry is).
    pub fn new(principal: &str, secret: &str) -> Result<Credential, String> {
        check_principal(principal)?;
        if secret.is_empty() {
            return Err(format!("principal '{principal}' has an empty secret"));
        }
        Ok(Credential {
            principal: principal.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// The answer to `nonce` (hex of HMAC-SHA256(secret, domain, nonce, principal)).
    fn answer(&self, nonce: &str) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.secret.as_bytes());
        hex(ring::hmac::sign(&key, &signed_text(nonce, &self.principal)).as_ref())
    }

    /// Whether `answer` is the answer to `nonce` (compared in constant time).
    fn verifies(&self, nonce: &str, answer: &str) -> bool {
        let Some(tag) = unhex(answer) else {
            return false;
        };
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.secret.as_bytes());
        ring::hmac::verify(&key, &signed_text(nonce, &self.principal), &tag).is_ok()
    }
}

fn signed_text(nonce: &str, principal: &str) -> Vec<u8> {
    format!("{DOMAIN}\n{nonce}\n{principal}").into_bytes()
}

fn check_principal(principal: &str) -> Result<(), String> {
    if principal.is_empty()
        || principal.len() > 128
        || !principal.bytes().all(|b| b.is_ascii_graphic() && b != b'@')
    {
        return Err(format!(
            "bad principal '{principal}': 1 to 128 printable characters, no spaces and no '@'"
        ));
    }
    Ok(())
}

/// A credentials file (SEC24): the master's list of principals and secrets, or the one
/// credential a framework, the CLI or an agent presents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials(BTreeMap<String, Credential>);

impl Credentials {
    /// Reads `path`; the error names the file and the field.
    pub fn load(fs: &dyn FileSystem, path: &Path) -> Result<Credentials, String> {
        let bytes = fs
            .read(path)
            .map_err(|error| format!("--credentials '{}': {error}", path.display()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("--credentials '{}': not UTF-8 text", path.display()))?;
        Credentials::parse(&text)
            .map_err(|error| format!("--credentials '{}': {error}", path.display()))
    }

    /// Parses `{"credentials": [{"principal": "p", "secret": "s"}, ...]}`, or one
    /// `{"principal": "p", "secret": "s"}`.
    pub fn parse(text: &str) -> Result<Credentials, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
        let Value::Object(object) = &value else {
            return Err("the top level must be a JSON object".into());
        };
        let entries: Vec<(String, &Value)> = if object.contains_key("credentials") {
            if let Some(key) = object.keys().find(|k| *k != "credentials") {
                return Err(format!("unknown field '{key}' next to 'credentials'"));
            }
            match &object["credentials"] {
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| (format!("credentials[{index}]"), item))
                    .collect(),
                _ => return Err("field 'credentials' must be a list".into()),
            }
        } else {
            vec![("the credential".to_owned(), &value)]
        };
        let mut credentials = BTreeMap::new();
        for (at, entry) in entries {
            let Value::Object(fields) = entry else {
                return Err(format!("{at} must be an object"));
            };
            if let Some(key) = fields.keys().find(|k| *k != "principal" && *k != "secret") {
                return Err(format!(
                    "{at}: unknown field '{key}' (expected 'principal' and 'secret')"
                ));
            }
            let field = |name: &str| match fields.get(name) {
                Some(Value::String(text)) => Ok(text.as_str()),
                Some(_) => Err(format!("{at}.{name} must be a string")),
                None => Err(format!("{at}: missing field '{name}'")),
            };
            let credential = Credential::new(field("principal")?, field("secret")?)
                .map_err(|error| format!("{at}: {error}"))?;
            if credentials
                .insert(credential.principal.clone(), credential)
                .is_some()
            {
                return Err(format!("{at}: principal listed twice"));
            }
        }
        if credentials.is_empty() {
            return Err("no credentials listed".into());
        }
        Ok(Credentials(credentials))
    }

    /// The one credential a client presents; the error says why the file will not do.
    pub fn single(&self) -> Result<Credential, String> {
        let mut all = self.0.values();
        match (all.next(), all.next()) {
            (Some(one), None) => Ok(one.clone()),
            _ => Err(format!(
                "holds {} credentials; a framework, the CLI or an agent presents exactly one",
                self.0.len()
            )),
        }
    }

    /// Every credential, by principal (for tests and the simulator's configuration).
    pub fn iter(&self) -> impl Iterator<Item = &Credential> {
        self.0.values()
    }

    /// A list from its credentials.
    pub fn from_list(list: impl IntoIterator<Item = Credential>) -> Credentials {
        Credentials(list.into_iter().map(|c| (c.principal.clone(), c)).collect())
    }
}

/// What the network of a role authenticates (SEC24): the credential its connections
/// present, and the credentials its listener accepts (the master's).
#[derive(Clone, Debug, Default)]
pub struct CredentialSettings {
    /// The credential presented on every connection opened (agent, framework, CLI).
    pub present: Option<Credential>,
    /// The credentials every accepted connection must prove one of (the master).
    pub accept: Option<Credentials>,
}

/// The network seam with credential handshakes (SEC25).
pub struct CredentialNetwork {
    inner: Rc<dyn Network>,
    settings: CredentialSettings,
    clock: Rc<dyn Clock>,
    random: Rc<dyn Random>,
}

impl CredentialNetwork {
    /// Wraps `inner`; nonces come from `random`'s secret stream, deadlines from `clock`.
    pub fn new(
        inner: Rc<dyn Network>,
        settings: CredentialSettings,
        clock: Rc<dyn Clock>,
        random: Rc<dyn Random>,
    ) -> CredentialNetwork {
        CredentialNetwork {
            inner,
            settings,
            clock,
            random,
        }
    }
}

/// `env` with credential handshakes on its network, when `settings` ask for any.
pub fn secure(mut env: crate::os::Env, settings: CredentialSettings) -> crate::os::Env {
    if settings.present.is_some() || settings.accept.is_some() {
        env.net = Rc::new(CredentialNetwork::new(
            env.net.clone(),
            settings,
            env.clock.clone(),
            env.random.clone(),
        ));
    }
    env
}

impl Network for CredentialNetwork {
    fn listen(&self, addr: &str) -> LocalFuture<'static, io::Result<Box<dyn Listener>>> {
        let inner = self.inner.listen(addr);
        let accept = self.settings.accept.clone();
        let clock = self.clock.clone();
        let random = self.random.clone();
        Box::pin(async move {
            let listener = inner.await?;
            Ok(match accept {
                None => listener,
                Some(credentials) => Box::new(CredentialListener {
                    inner: listener,
                    credentials: Rc::new(credentials),
                    clock,
                    random,
                    handshakes: crate::tls::Handshakes::new("authentication"),
                }) as Box<dyn Listener>,
            })
        })
    }

    fn connect(&self, addr: &str) -> LocalFuture<'static, io::Result<BoxStream>> {
        let inner = self.inner.connect(addr);
        let present = self.settings.present.clone();
        let addr = addr.to_owned();
        Box::pin(async move {
            let mut stream = inner.await?;
            if let Some(credential) = present {
                if let Err(error) = authenticate(&mut stream, &credential).await {
                    let error = format!(
                        "authentication with {addr} as '{}': {error}",
                        credential.principal
                    );
                    // SEC25: the connecting role retries; the reason is logged here.
                    warn!(%error, "authentication failed");
                    return Err(io::Error::new(io::ErrorKind::PermissionDenied, error));
                }
            }
            Ok(stream)
        })
    }
}

/// The client's side of the handshake (SEC25).
async fn authenticate(stream: &mut BoxStream, credential: &Credential) -> Result<(), String> {
    let io = |error: io::Error| error.to_string();
    stream
        .write_all(format!("AUTHENTICATE {}\n", credential.principal).as_bytes())
        .await
        .map_err(io)?;
    stream.flush().await.map_err(io)?;
    let challenge = read_line(stream).await?;
    let Some(nonce) = challenge.strip_prefix("CHALLENGE ") else {
        return Err(format!(
            "the master did not send a challenge: {challenge:?}"
        ));
    };
    stream
        .write_all(format!("ANSWER {}\n", credential.answer(nonce)).as_bytes())
        .await
        .map_err(io)?;
    stream.flush().await.map_err(io)?;
    let outcome = read_line(stream).await?;
    if outcome == "AUTHENTICATED" {
        Ok(())
    } else if let Some(reason) = outcome.strip_prefix("REFUSED ") {
        Err(format!("refused by the master: {reason}"))
    } else {
        Err(format!("unexpected answer from the master: {outcome:?}"))
    }
}

/// A line of at most [`LINE_MAX`] bytes, without its newline; read a byte at a time,
/// so that nothing after it is consumed.
async fn read_line(stream: &mut BoxStream) -> Result<String, String> {
    let mut line = Vec::new();
    loop {
        let byte = stream.read_u8().await.map_err(|error| {
            if error.kind() == io::ErrorKind::UnexpectedEof {
                "the connection was closed during authentication".to_owned()
            } else {
                error.to_string()
            }
        })?;
        if byte == b'\n' {
            return String::from_utf8(line).map_err(|_| "a handshake line is not UTF-8".into());
        }
        if line.len() >= LINE_MAX {
            return Err(format!("a handshake line is longer than {LINE_MAX} bytes"));
        }
        line.push(byte);
    }
}

/// What the server side of a handshake ended with.
type Handshake = Result<(BoxStream, String), (String, String)>;

/// A listener whose connections are handed out once they proved a principal (or are an
/// HTTP request, SEC27). Handshakes run side by side, bounded in time and number
/// (SEC26).
struct CredentialListener {
    inner: Box<dyn Listener>,
    credentials: Rc<Credentials>,
    clock: Rc<dyn Clock>,
    random: Rc<dyn Random>,
    handshakes: crate::tls::Handshakes,
}

impl CredentialListener {
    fn start(
        handshakes: &mut crate::tls::Handshakes,
        credentials: &Rc<Credentials>,
        clock: &Rc<dyn Clock>,
        random: &Rc<dyn Random>,
        stream: BoxStream,
        address: String,
    ) {
        let mut nonce = [0u8; NONCE_BYTES];
        random.fill_secret(&mut nonce);
        let nonce = hex(&nonce);
        let credentials = credentials.clone();
        let deadline = clock.sleep(HANDSHAKE_DEADLINE);
        let peer = address.clone();
        handshakes.start(&peer, async move {
            tokio::select! {
                biased;
                done = accept(stream, address.clone(), &credentials, nonce) => done,
                _ = deadline => Err((
                    address,
                    format!("the handshake did not finish within {HANDSHAKE_DEADLINE:?}"),
                )),
            }
        });
    }
}

/// Writes one handshake line and flushes it.
async fn send_line(stream: &mut BoxStream, text: String) -> io::Result<()> {
    stream.write_all(text.as_bytes()).await?;
    stream.flush().await
}

/// The master's side of the handshake (SEC25, SEC27).
async fn accept(
    mut stream: BoxStream,
    address: String,
    credentials: &Credentials,
    nonce: String,
) -> Handshake {
    let fail = |reason: String| (address.clone(), reason);
    let mut head = [0u8; 4];
    stream
        .read_exact(&mut head)
        .await
        .map_err(|error| fail(format!("nothing readable: {error}")))?;
    if &head == b"GET " {
        // SEC27: the read-only HTTP endpoints need no credential.
        let stream = Box::new(Prefixed {
            prefix: head.to_vec(),
            inner: stream,
        }) as BoxStream;
        return Ok((stream, address));
    }
    let not_authenticating =
        || fail("the peer did not authenticate (the master requires --credentials)".into());
    if &head != b"AUTH" {
        // A frame's length prefix, or anything else: refused at once.
        return Err(not_authenticating());
    }
    let first = read_line(&mut stream).await.map_err(&fail)?;
    let line = format!("AUTH{first}");
    let Some(principal) = line.strip_prefix("AUTHENTICATE ") else {
        return Err(not_authenticating());
    };
    let principal = principal.to_owned();
    send_line(&mut stream, format!("CHALLENGE {nonce}\n"))
        .await
        .map_err(|error| fail(error.to_string()))?;
    let answer = read_line(&mut stream).await.map_err(&fail)?;
    let answer = answer.strip_prefix("ANSWER ").unwrap_or("");
    let verified = credentials
        .0
        .get(&principal)
        .is_some_and(|credential| credential.verifies(&nonce, answer));
    if !verified {
        let reason = format!("principal '{principal}' is unknown or its secret is wrong");
        let _ = send_line(&mut stream, format!("REFUSED {reason}\n")).await;
        return Err(fail(reason));
    }
    send_line(&mut stream, "AUTHENTICATED\n".to_owned())
        .await
        .map_err(|error| fail(error.to_string()))?;
    Ok((
        stream,
        crate::tls::peer_with_principal(&principal, &address),
    ))
}

impl Listener for CredentialListener {
    fn accept(&mut self) -> LocalFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            let (credentials, clock, random) = (&self.credentials, &self.clock, &self.random);
            self.handshakes
                .next(&mut self.inner, |handshakes, stream, address| {
                    CredentialListener::start(
                        handshakes,
                        credentials,
                        clock,
                        random,
                        stream,
                        address,
                    )
                })
                .await
        })
    }
    fn local_addr(&self) -> io::Result<String> {
        self.inner.local_addr()
    }
}

/// A stream that yields `prefix` before the rest of `inner` (the bytes read to tell an
/// HTTP request apart).
struct Prefixed {
    prefix: Vec<u8>,
    inner: BoxStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.drain(..n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_proves_the_secret_without_showing_it() {
        let alice = Credential::new("alice", "s3cret").unwrap();
        let answer = alice.answer("00ff");
        assert!(!answer.contains("s3cret"));
        assert!(alice.verifies("00ff", &answer));
        assert!(!alice.verifies("00fe", &answer), "another nonce");
        let wrong = Credential::new("alice", "guess").unwrap();
        assert!(!alice.verifies("00ff", &wrong.answer("00ff")));
        // The principal is signed too: bob's tag is not alice's.
        let bob = Credential::new("bob", "s3cret").unwrap();
        assert!(!alice.verifies("00ff", &bob.answer("00ff")));
        assert!(!alice.verifies("00ff", "zz"));
        assert_eq!(format!("{alice:?}"), "Credential(alice, <redacted>)");
    }

    /// Runs the client's and the master's sides of a handshake against each other.
    fn handshake(client: &Credential, master: &Credentials) -> (Result<(), String>, Handshake) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (a, b) = tokio::io::duplex(4096);
            let mut a: BoxStream = Box::new(a);
            let b: BoxStream = Box::new(b);
            let nonce = "ab".repeat(NONCE_BYTES);
            tokio::join!(
                authenticate(&mut a, client),
                accept(b, "10.0.0.1:4000".into(), master, nonce)
            )
        })
    }

    #[test]
    fn the_handshake_admits_the_right_secret_only() {
        let master = Credentials::from_list([Credential::new("web", "s3cret").unwrap()]);
        let (client, server) = handshake(&Credential::new("web", "s3cret").unwrap(), &master);
        assert_eq!(client, Ok(()));
        assert_eq!(
            server.map(|(_, peer)| peer).ok().as_deref(),
            Some("web@10.0.0.1:4000")
        );
        for (principal, secret) in [("web", "guess"), ("nobody", "s3cret")] {
            let (client, server) = handshake(&Credential::new(principal, secret).unwrap(), &master);
            let expected = format!("principal '{principal}' is unknown or its secret is wrong");
            assert_eq!(client, Err(format!("refused by the master: {expected}")));
            assert_eq!(server.err().map(|(_, reason)| reason), Some(expected));
        }
    }

    #[test]
    fn http_passes_and_frames_are_refused_at_once() {
        let master = Credentials::from_list([Credential::new("web", "s3cret").unwrap()]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            for (sent, passes) in [
                (&b"GET /state HTTP/1.1\r\n"[..], true),
                (&[9, 0, 0, 0, 1][..], false),
            ] {
                let (mut a, b) = tokio::io::duplex(4096);
                a.write_all(sent).await.unwrap();
                let result = accept(Box::new(b), "peer".into(), &master, "00".into()).await;
                match result {
                    Ok((mut stream, peer)) => {
                        assert!(passes);
                        assert_eq!(peer, "peer", "an HTTP request has no principal");
                        let mut head = [0u8; 4];
                        stream.read_exact(&mut head).await.unwrap();
                        assert_eq!(&head, b"GET ");
                    }
                    Err((_, reason)) => {
                        assert!(!passes);
                        assert!(reason.contains("did not authenticate"), "{reason}");
                    }
                }
            }
        });
    }

    #[test]
    fn files_in_both_shapes() {
        let list = Credentials::parse(
            r#"{"credentials": [{"principal": "a", "secret": "x"}, {"principal": "b", "secret": "y"}]}"#,
        )
        .unwrap();
        assert_eq!(list.iter().count(), 2);
        assert!(list.single().unwrap_err().contains("holds 2 credentials"));
        let one = Credentials::parse(r#"{"principal": "a", "secret": "x"}"#).unwrap();
        assert_eq!(one.single().unwrap().principal, "a");
    }

    #[test]
    fn bad_files_name_the_field() {
        let cases = [
            ("[]", "the top level must be a JSON object"),
            (
                r#"{"credentials": {}}"#,
                "field 'credentials' must be a list",
            ),
            (r#"{"credentials": []}"#, "no credentials listed"),
            (r#"{"credentials": [], "x": 1}"#, "unknown field 'x'"),
            (
                r#"{"credentials": [{"principal": "a"}]}"#,
                "credentials[0]: missing field 'secret'",
            ),
            (
                r#"{"credentials": [{"principal": "a", "secret": 1}]}"#,
                "credentials[0].secret must be a string",
            ),
            (
                r#"{"principal": "a b", "secret": "x"}"#,
                "bad principal 'a b'",
            ),
            (r#"{"principal": "a", "secret": ""}"#, "empty secret"),
            (
                r#"{"principal": "a", "secret": "x", "role": "r"}"#,
                "unknown field 'role'",
            ),
            (
                r#"{"credentials": [{"principal": "a", "secret": "x"}, {"principal": "a", "secret": "y"}]}"#,
                "credentials[1]: principal listed twice",
            ),
        ];
        for (text, expected) in cases {
            let error = Credentials::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
