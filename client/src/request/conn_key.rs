//! Which connection a `Client` talks to, as something the connection itself carries: the
//! backend key data (process id and secret key) the server sent when the session started.
//!
//! Not the `Client`'s address: a handle that stores the `Client` inline (a pooled object, a
//! user's own wrapper) moves it when the handle moves, e.g. from an acquisition's future into
//! the guard. The key data is unique per live session (the secret key is random; a pooler such
//! as PgBouncer hands each client connection key data of its own), and the same for every move.
//!
//! tokio-postgres keeps the key data private; its one public use is writing a CancelRequest to a
//! stream the caller supplies (`CancelToken::cancel_query_raw`). So the key is read from that
//! message, written into memory: nothing is sent anywhere. The in-memory stream answers an
//! SSLRequest with 'S' and the "TLS" connector passes bytes through, so connections made with
//! any `sslmode` and `sslnegotiation` give the same message.

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};
use tokio_postgres::Client;

/// A session: its backend process id and secret key. A connection that got no key data (some
/// proxies) has zeros, shared with every such connection: claims of those connections then
/// protect each other's months too, which can only leave a dropped acquisition's month held
/// until the session ends, never release a month a guard holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ConnKey {
    pid: i32,
    secret: i32,
}

impl ConnKey {
    /// False for the zeros of a connection that got no key data (shared by all such).
    pub(crate) fn is_known(&self) -> bool {
        self.pid != 0 || self.secret != 0
    }
}

/// The key of `client`'s session.
pub(crate) fn of(client: &Client) -> ConnKey {
    let written = Arc::new(Mutex::new(Vec::new()));
    let stream = Memory(written.clone());
    let token = client.cancel_token();
    let future = pin!(token.cancel_query_raw(stream, Passthrough));
    let mut cx = Context::from_waker(Waker::noop());
    // Every read and write of the in-memory stream completes at once.
    let _: Poll<_> = future.poll(&mut cx);
    let bytes = written.lock().unwrap_or_else(|e| e.into_inner());
    // The CancelRequest is the last 16 bytes: length, code, process id, secret key.
    let word = |at: usize| {
        bytes
            .len()
            .checked_sub(16 - at)
            .and_then(|i| bytes.get(i..i + 4))
            .map_or(0, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    ConnKey {
        pid: word(8),
        secret: word(12),
    }
}

/// Records what is written; every read gets 'S' (the answer "TLS, go ahead" to an SSLRequest).
struct Memory(Arc<Mutex<Vec<u8>>>);

impl AsyncRead for Memory {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() > 0 {
            buf.put_slice(b"S");
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Memory {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Poll::Ready(Ok(b.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl TlsStream for Memory {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

/// A "TLS" connector that is the stream itself.
struct Passthrough;

impl TlsConnect<Memory> for Passthrough {
    type Stream = Memory;
    type Error = io::Error;
    type Future = std::future::Ready<io::Result<Memory>>;

    fn connect(self, stream: Memory) -> Self::Future {
        std::future::ready(Ok(stream))
    }
}
