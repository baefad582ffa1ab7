//! bareapi patch (patches/README.md): the queue of requests from the `Client` to its connection
//! task, in place of `futures_channel::mpsc::unbounded`.
//!
//! One sender (held by the client's `InnerClient`, never cloned) and one receiver (the
//! connection). futures-channel allocates a queue node per request and frees it when popped;
//! this is a `VecDeque` under a mutex, which keeps its capacity. Semantics kept: one `open`
//! flag that either side may clear (`close_channel`, `close`, or dropping either end); a send
//! to a closed channel fails; the receiver still takes what was queued before the close, then
//! ends; the connection task is woken by the first request after it found the queue empty.

use crate::connection::Request;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

struct State {
    queue: VecDeque<Request>,
    waker: Option<Waker>,
    open: bool,
}

type Shared = Arc<Mutex<State>>;

pub struct RequestSender(Shared);

pub struct RequestReceiver(Option<Shared>);

pub fn channel() -> (RequestSender, RequestReceiver) {
    let shared = Arc::new(Mutex::new(State {
        queue: VecDeque::new(),
        waker: None,
        open: true,
    }));
    (RequestSender(shared.clone()), RequestReceiver(Some(shared)))
}

impl RequestSender {
    /// Queues `request`; gives it back if the channel is closed.
    pub fn unbounded_send(&self, request: Request) -> Result<(), Request> {
        let waker = {
            let mut state = self.0.lock();
            if !state.open {
                return Err(request);
            }
            state.queue.push_back(request);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    pub fn is_closed(&self) -> bool {
        !self.0.lock().open
    }

    /// No more requests; the receiver still takes those already queued.
    pub fn close_channel(&self) {
        let waker = {
            let mut state = self.0.lock();
            state.open = false;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Drop for RequestSender {
    fn drop(&mut self) {
        self.close_channel();
    }
}

impl RequestReceiver {
    /// The next request; `None` once the channel is closed and empty.
    pub fn poll_next_unpin(&mut self, cx: &mut Context<'_>) -> Poll<Option<Request>> {
        let Some(shared) = &self.0 else {
            return Poll::Ready(None);
        };
        let mut state = shared.lock();
        if let Some(request) = state.queue.pop_front() {
            return Poll::Ready(Some(request));
        }
        if !state.open {
            drop(state);
            self.0 = None;
            return Poll::Ready(None);
        }
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// True once `poll_next_unpin` returned `None`.
    pub fn is_terminated(&self) -> bool {
        self.0.is_none()
    }

    /// Refuses further requests; those already queued can still be taken.
    pub fn close(&mut self) {
        if let Some(shared) = &self.0 {
            shared.lock().open = false;
        }
    }
}

impl Drop for RequestReceiver {
    fn drop(&mut self) {
        if let Some(shared) = &self.0 {
            let unread = {
                let mut state = shared.lock();
                state.open = false;
                state.waker = None;
                std::mem::take(&mut state.queue)
            };
            // Outside the lock: dropping a request drops its response sender, which wakes
            // the request's task.
            drop(unread);
        }
    }
}
