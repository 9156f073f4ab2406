//! An acquisition in flight, and what happens when its future is dropped before the answer.
//!
//! The acquiring query string is sent on the first poll; its answer arrives on a stream that
//! does not borrow the connection. If the future is dropped before the answer has been read,
//! the clean-up is queued on the connection at once, behind the acquisition: a release of
//! exactly the months *this request* took, decided on the server by the request-scoped markers
//! (see `session_sql`). Nothing another guard of the session holds is touched.
//!
//! No cancel request is ever sent. PostgreSQL's cancel hits whatever statement the backend runs
//! when the signal arrives, and on a connection other tasks share, a statement of theirs can be
//! running by then (the wait may be granted while the cancel is on its way); no client-side
//! timing makes that impossible. So a dropped wait runs on until it is granted (the grant is
//! then released by the queued clean-up) or reaches its timeout.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use tokio_postgres::{Client, SimpleQueryMessage, SimpleQueryRow, SimpleQueryStream};

use super::claims::{Claim, CleanUp};
use crate::{LockMode, YearMonth};

/// The acquisition's stream and what its drop must do.
pub(crate) struct Pending<'a> {
    client: &'a Client,
    stream: Option<Pin<Box<SimpleQueryStream>>>,
    id: String,
    months: Vec<YearMonth>,
    mode: LockMode,
    /// The extension's schema the acquisition named (quoted): the clean-up names it too.
    schema: String,
    /// The request's claim on its months while it is in flight (see `claims`).
    claim: Option<Claim>,
}

impl<'a> Pending<'a> {
    /// Sends `sql` (the acquisition of request `id` for `months`) and returns its pending answer.
    pub(crate) fn send(
        client: &'a Client,
        sql: &str,
        id: String,
        months: &[YearMonth],
        mode: LockMode,
        schema: &str,
    ) -> Result<Pending<'a>, tokio_postgres::Error> {
        // Claimed in the same step as it is sent (see `claims`): a clean-up of another dropped
        // request decided from now on leaves these months alone (unless its own marker says it
        // took them), and one decided before is ahead of this request on the wire.
        let (claim, stream) = Claim::claim_and_send(client, months, schema, || {
            // Resolves on its first poll: the request is queued on the connection then.
            let sending = pin!(client.simple_query_raw(sql));
            match sending.poll(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready(sent) => sent,
                Poll::Pending => {
                    unreachable!("tokio-postgres queues a simple query on its first poll")
                }
            }
        });
        Ok(Pending {
            client,
            stream: Some(Box::pin(stream?)),
            id,
            months: months.to_vec(),
            mode,
            schema: schema.to_string(),
            claim: Some(claim),
        })
    }

    /// The last row of the request (the acquiring statement's), once the request completed,
    /// and the request's claim (to be narrowed to what it got and handed to the guard).
    pub(crate) async fn answer(
        mut self,
    ) -> (Result<Option<SimpleQueryRow>, tokio_postgres::Error>, Claim) {
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
                Some(Ok(SimpleQueryMessage::Row(row))) => last = Some(row),
                Some(Ok(_)) => {}
            }
        };
        self.stream = None; // answered: nothing to clean up
        (
            outcome,
            self.claim.take().expect("present until the answer"),
        )
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.stream.take().is_none() {
            return;
        }
        // This request's claim goes first: what no other live claim of the connection names may
        // be released even without this request's marker (a rollback may have undone it). The
        // decision and the send are one step (see `claims`).
        let claim = self.claim.take().expect("present until the answer");
        // Queued behind the acquisition, before anything sent on the connection after the drop.
        let clean_up = CleanUp {
            months: std::mem::take(&mut self.months),
            mode: self.mode,
            id: std::mem::take(&mut self.id),
            schema: std::mem::take(&mut self.schema),
        };
        claim.give_up_and_queue(self.client, clean_up);
    }
}

/// Read the rest of a response. Ends at the end of the response or when the connection is gone.
async fn read_off(stream: &mut Pin<Box<SimpleQueryStream>>) {
    loop {
        match poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
            None => return,
            Some(Err(e)) if e.is_closed() => return,
            Some(_) => {}
        }
    }
}
