//! The real network request behind `revenant tasks` (docs/design.md D2: the binary's
//! own I/O, kept apart from [`super::query`]'s decisions).

use std::time::Duration;

/// `GET path` on `address`, with `hyper` (docs/design.md D15), over mutual TLS when
/// `tls` is given (docs/security.md SEC8); the status code and the body, or what went
/// wrong.
pub fn get(
    address: &str,
    path: &str,
    timeout: Duration,
    tls: Option<&revenant::tls::TlsIdentity>,
) -> Result<(u16, String), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("starting the runtime: {error}"))?;
    runtime.block_on(async {
        let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address))
            .await
            .map_err(|_| format!("master {address}: no connection within {timeout:?}"))?
            .map_err(|error| format!("master {address}: {error}"))?;
        let answer = match tls {
            None => tokio::time::timeout(timeout, revenant::http::get(stream, address, path)).await,
            Some(identity) => {
                let name = revenant::tls::server_name(address)?;
                let connector = tokio_rustls::TlsConnector::from(identity.client_config());
                let stream = tokio::time::timeout(timeout, connector.connect(name, stream))
                    .await
                    .map_err(|_| format!("master {address}: no TLS handshake within {timeout:?}"))?
                    .map_err(|error| format!("master {address}: TLS handshake: {error}"))?;
                tokio::time::timeout(timeout, revenant::http::get(stream, address, path)).await
            }
        };
        answer
            .map_err(|_| format!("master {address}: no answer within {timeout:?}"))?
            .map_err(|error| format!("master {address}: {error}"))
    })
}
