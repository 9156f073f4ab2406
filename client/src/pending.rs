//! An acquisition in flight, and what happens when its future is dropped before the answer.
//!
//! The acquiring query string is sent on the first poll; its answer arrives on a stream that
//! does not borrow the connection. If the future is dropped before the answer has been read:
//!
//! * The clean-up is queued on the connection at once, behind the acquisition: a release of
//!   exactly the months *this request* took, decided on the server by the request-scoped
//!   markers (see `request_sql`). Nothing another guard of the session holds is touched.
//! * A wait that could last (no timeout, or longer than a second) also gets one cancel
//!   request, sent by a task on the current tokio runtime through the request's
//!   [`CancelTls`], and only once the server is visibly executing the acquisition (its first
//!   rows, flushed before the wait, have arrived): a cancel can then no longer hit a statement
//!   that ran *before* the acquisition. If the acquisition completes on its own before the
//!   cancel arrives, a statement queued in front of the clean-up waits for that cancel (at most
//!   [`ABSORB_LIMIT`], and only when the acquisition completed), so the cancel ends that
//!   wait and not a later statement.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;
use tokio_postgres::{Client, SimpleQueryMessage, SimpleQueryRow, SimpleQueryStream};

use crate::cancel::CancelTls;
use crate::request_sql;
use crate::sql::send_without_waiting;
use crate::{LockMode, YearMonth};

/// How long the statement that takes a late cancel request waits for it. Reached only when
/// the cancel request is not delivered, or arrives while the server is between statements
/// (PostgreSQL ignores a cancel then), e.g. as the acquisition's own transaction commits.
pub(crate) const ABSORB_LIMIT: Duration = Duration::from_secs(30);

/// How long the absorber waits for the second signal PostgreSQL sends per cancel request.
const ECHO: Duration = Duration::from_millis(50);

/// After a delivered cancel request, the time the request and the absorber get to end before
/// the cancel is taken to have been ignored (a backend handles the signal as soon as it runs).
const SETTLE: Duration = Duration::from_secs(5);

/// A second cancel request is sent only this soon after the first was sent, so that it arrives
/// well before the absorber stops waiting at [`ABSORB_LIMIT`].
const RETRY_WITHIN: Duration = Duration::from_secs(10);

/// The acquisition's stream and what its drop must do.
pub(crate) struct Pending<'a> {
    client: &'a Client,
    stream: Option<Pin<Box<SimpleQueryStream>>>,
    id: String,
    months: Vec<YearMonth>,
    mode: LockMode,
    /// A cancel request is sent if dropped (the query string starts with the start signal).
    cancel: Option<CancelTls>,
    /// The first message has arrived: the server is executing the request.
    started: bool,
}

impl<'a> Pending<'a> {
    /// Sends `sql` (the acquisition of request `id` for `months`) and returns its pending answer.
    pub(crate) async fn send(
        client: &'a Client,
        sql: &str,
        id: String,
        months: &[YearMonth],
        mode: LockMode,
        cancel: Option<CancelTls>,
    ) -> Result<Pending<'a>, tokio_postgres::Error> {
        // Resolves on its first poll: the request is queued on the connection then.
        let stream = client.simple_query_raw(sql).await?;
        Ok(Pending {
            client,
            stream: Some(Box::pin(stream)),
            id,
            months: months.to_vec(),
            mode,
            cancel,
            started: false,
        })
    }

    /// The last row of the request (the acquiring statement's), once the request completed.
    pub(crate) async fn answer(mut self) -> Result<Option<SimpleQueryRow>, tokio_postgres::Error> {
        let mut last = None;
        let outcome = loop {
            let stream = self.stream.as_mut().expect("present until the answer");
            match poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
                None => break Ok(last),
                Some(Err(e)) => {
                    // The request failed: the server undid whatever it granted, nothing to do,
                    // but the rest of the response must still be read off.
                    read_off(stream).await;
                    break Err(e);
                }
                Some(Ok(message)) => {
                    self.started = true;
                    if let SimpleQueryMessage::Row(row) = message {
                        last = Some(row);
                    }
                }
            }
        };
        self.stream = None; // answered: nothing to clean up
        outcome
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let runtime = tokio::runtime::Handle::try_current().ok();
        if let (Some(tls), Some(runtime)) = (self.cancel.take(), runtime) {
            let absorb = request_sql::absorb_cancel(&self.id, ABSORB_LIMIT, ECHO);
            if let Some(absorber) = send_for_stream(self.client, &absorb) {
                let token = self.client.cancel_token();
                let started = self.started;
                runtime.spawn(cancel_when_started(stream, absorber, started, token, tls));
            }
        }
        // Twice: should a cancel request arrive later than the statement above waits for it,
        // it fails one of them, and the other one releases.
        let release = request_sql::release_if_taken(&self.months, self.mode, &self.id);
        send_without_waiting(self.client, &release);
        send_without_waiting(self.client, &release);
    }
}

/// Queue `sql` now (without waiting) and return its response stream.
fn send_for_stream(client: &Client, sql: &str) -> Option<Pin<Box<SimpleQueryStream>>> {
    let request = pin!(client.simple_query_raw(sql));
    let mut cx = Context::from_waker(Waker::noop());
    match request.poll(&mut cx) {
        Poll::Ready(Ok(stream)) => Some(Box::pin(stream)),
        // Only if the connection is closed: then nothing is held and nothing waits.
        _ => None,
    }
}

/// Cancel the dropped request once it is seen executing, until the statement queued behind it
/// to take a late cancel (`absorber`) has ended: either the cancel ended the request (then the
/// absorber does not wait), or the request had completed and the cancel ended the absorber.
/// A cancel that arrives between two statements is ignored by PostgreSQL; then the absorber
/// is still waiting a while after the cancel was delivered, and another one is sent.
async fn cancel_when_started(
    mut request: Pin<Box<SimpleQueryStream>>,
    mut absorber: Pin<Box<SimpleQueryStream>>,
    started: bool,
    token: tokio_postgres::CancelToken,
    tls: CancelTls,
) {
    if !started {
        match poll_fn(|cx| request.as_mut().poll_next(cx)).await {
            Some(Ok(_)) => {}
            // Failed before it ran (nothing waits, the absorber does not wait) or the
            // connection is gone.
            Some(Err(_)) | None => {
                read_off(&mut request).await;
                read_off(&mut absorber).await;
                return;
            }
        }
    }
    // A request that failed on its own (deadlock, statement_timeout) gets no cancel: the
    // absorber does not wait then, so nothing would take it.
    if failed_already(&mut request) {
        read_off(&mut request).await;
        read_off(&mut absorber).await;
        return;
    }
    let mut request_done = false;
    let first = tokio::time::Instant::now();
    loop {
        // Never abandoned half-way: a cancel request given up after it was written could
        // still arrive, later than anything waits for it. It ends when the server closed the
        // cancel connection, i.e. after the backend was signalled, or when it failed.
        let delivered = tls.cancel(token.clone()).await.is_ok();
        let settled = async {
            if !request_done {
                read_off(&mut request).await;
                request_done = true;
            }
            read_off(&mut absorber).await;
        };
        if tokio::time::timeout(SETTLE, settled).await.is_ok() {
            return;
        }
        // Still waiting after a delivered cancel: it arrived between two statements and was
        // ignored. One more, while it can still arrive in time.
        if !delivered || first.elapsed() > RETRY_WITHIN {
            break;
        }
    }
    // The absorber ends at its limit.
    if !request_done {
        read_off(&mut request).await;
    }
    read_off(&mut absorber).await;
}

/// The request's error has arrived already (read without waiting).
fn failed_already(stream: &mut Pin<Box<SimpleQueryStream>>) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match stream.as_mut().poll_next(&mut cx) {
            Poll::Ready(Some(Ok(_))) => continue,
            Poll::Ready(Some(Err(_))) => return true,
            Poll::Ready(None) | Poll::Pending => return false,
        }
    }
}

/// Read the rest of a response, so that the connection is not held up by a full response
/// channel. Ends at the end of the response or when the connection is gone.
async fn read_off(stream: &mut Pin<Box<SimpleQueryStream>>) {
    loop {
        match poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
            None => return,
            Some(Err(e)) if e.is_closed() => return,
            Some(_) => {}
        }
    }
}
