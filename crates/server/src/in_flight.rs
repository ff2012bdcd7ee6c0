//! The in-flight limit (`max_in_flight_requests`): at most that many
//! requests are read and served at once. Past it no connection's next
//! request is read: it waits in the kernel's socket buffers (TCP
//! backpressure), which costs no CPU, where answering 503 costs almost as
//! much as serving (BENCHMARKS.md, "Overload per core").
//!
//! A connection takes a slot when its client has sent the first bytes of
//! a request ([`Gated`]) and hands it over once the head is complete: the
//! connection layer puts it in the request ([`HeldSlot`]), and the
//! router's `shed_load` holds it until the answer. A head not complete
//! within [`HEAD_SLOT_TIME`] gives its slot back and goes on being read
//! without one, so a client that sends half a head and stops (slowloris)
//! holds a slot for that long, not until the header timeout. The router
//! takes a slot itself for such a request (and for a pipelined one, read
//! with the one before), answering 503 when none is free.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Told each time a connection waits for a slot (the metrics).
pub(crate) type OnWait = Arc<dyn Fn() + Send + Sync>;

/// Longest a request head may take, from its first bytes, while holding a
/// slot. A browser sends a head in one write, which arrives within a
/// round trip's jitter; past this the head is read without a slot.
pub const HEAD_SLOT_TIME: Duration = Duration::from_millis(50);

/// The slots of requests in flight, shared by every connection's read
/// gate and the router; `None` inside: no limit.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Option<Arc<Semaphore>>);

impl InFlight {
    /// Slots for `max` requests at once; 0 means no limit.
    pub fn new(max: usize) -> Self {
        InFlight((max > 0).then(|| Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS)))))
    }

    /// A free slot now, `Ok(None)` when there is no limit, `Err(())` when
    /// every slot is taken.
    pub(crate) fn try_take(&self) -> Result<Option<OwnedSemaphorePermit>, ()> {
        match &self.0 {
            None => Ok(None),
            Some(slots) => Arc::clone(slots)
                .try_acquire_owned()
                .map(Some)
                .map_err(|_| ()),
        }
    }
}

/// The slot a connection took for the request it hands to the router.
#[derive(Debug, Clone)]
pub(crate) struct HeldSlot(pub(crate) Arc<OwnedSemaphorePermit>);

/// Where a connection leaves its slot for the request whose head it is
/// reading, until the request takes it ([`Handoff::claim`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Handoff(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl Handoff {
    /// The slot left for the request now complete, if any.
    pub(crate) fn claim(&self) -> Option<HeldSlot> {
        self.take().map(|permit| HeldSlot(Arc::new(permit)))
    }

    fn take(&self) -> Option<OwnedSemaphorePermit> {
        self.0.lock().expect("handoff lock poisoned").take()
    }

    fn put(&self, permit: OwnedSemaphorePermit) {
        *self.0.lock().expect("handoff lock poisoned") = Some(permit);
    }

    fn is_empty(&self) -> bool {
        self.0.lock().expect("handoff lock poisoned").is_none()
    }
}

/// A wait for a slot.
type SlotWait = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// Where a connection is in its request.
#[derive(Debug, PartialEq, Eq)]
enum Stage {
    /// The next byte read starts a request: it needs a slot first.
    Between,
    /// A head is being read with a slot left in the handoff.
    Head,
    /// The request took its slot, or its head outlasted
    /// [`HEAD_SLOT_TIME`]: read freely until the answer is written.
    Served,
}

/// A connection's stream that reads a request only once it has a slot.
///
/// HTTP/1.1 without pipelining (what browsers send) is one request at a
/// time, so the first read after an answer was written starts the next
/// request.
pub(crate) struct Gated {
    stream: TcpStream,
    slots: Option<Arc<Semaphore>>,
    handoff: Handoff,
    on_wait: OnWait,
    /// Off during a TLS handshake, which is not a request.
    pub(crate) armed: bool,
    stage: Stage,
    /// No byte was read under the slot yet: a read that finds nothing
    /// (the readiness was stale) gives it back.
    fresh: bool,
    /// An answer was written since the slot was taken.
    wrote: bool,
    waiting: Option<SlotWait>,
    head_deadline: Option<Pin<Box<Sleep>>>,
}

impl Gated {
    /// `stream` behind the gate of `in_flight` (not armed yet), handing its
    /// slots over through `handoff`, calling `on_wait` when it waits.
    pub(crate) fn new(
        stream: TcpStream,
        in_flight: &InFlight,
        handoff: Handoff,
        on_wait: OnWait,
    ) -> Self {
        Gated {
            stream,
            slots: in_flight.0.clone(),
            handoff,
            on_wait,
            armed: false,
            stage: Stage::Between,
            fresh: false,
            wrote: false,
            waiting: None,
            head_deadline: None,
        }
    }

    /// The connection's socket.
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Before a read: takes a slot for a new request (or says to wait),
    /// and gives back the slot of a head that took too long.
    fn poll_gate(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(slots) = self.slots.as_ref().filter(|_| self.armed) else {
            return Poll::Ready(Ok(()));
        };
        if self.wrote {
            // The answer went out: what comes next is another request. A
            // slot left unclaimed (hyper answered the head itself) goes
            // back.
            self.wrote = false;
            drop(self.handoff.take());
            self.stage = Stage::Between;
        }
        match self.stage {
            Stage::Served => return Poll::Ready(Ok(())),
            Stage::Head => {
                if self.handoff.is_empty() {
                    self.stage = Stage::Served;
                } else if let Some(deadline) = self.head_deadline.as_mut() {
                    if deadline.as_mut().poll(cx).is_ready() {
                        drop(self.handoff.take());
                        self.stage = Stage::Served;
                    }
                }
                return Poll::Ready(Ok(()));
            }
            Stage::Between => {}
        }
        ready!(self.stream.poll_read_ready(cx))?;
        let permit = loop {
            if let Some(waiting) = self.waiting.as_mut() {
                // The slots are never closed.
                let permit = ready!(waiting.as_mut().poll(cx)).expect("in-flight slots closed");
                self.waiting = None;
                break permit;
            }
            match Arc::clone(slots).try_acquire_owned() {
                Ok(permit) => break permit,
                Err(_) => {
                    (self.on_wait)();
                    self.waiting = Some(Box::pin(Arc::clone(slots).acquire_owned()));
                }
            }
        };
        self.handoff.put(permit);
        self.fresh = true;
        self.stage = Stage::Head;
        let deadline = Instant::now() + HEAD_SLOT_TIME;
        match self.head_deadline.as_mut() {
            Some(sleep) => sleep.as_mut().reset(deadline),
            None => self.head_deadline = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Gated {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_gate(cx))?;
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if this.stage == Stage::Head {
            match &read {
                Poll::Ready(Ok(())) if buf.filled().len() > before => this.fresh = false,
                Poll::Pending if this.fresh => {
                    drop(this.handoff.take());
                    this.stage = Stage::Between;
                }
                _ => {}
            }
        }
        read
    }
}

impl AsyncWrite for Gated {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, data);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.wrote = true;
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, data);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.wrote = true;
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
