//! bareapi patch (patches/README.md): the channel that carries one request's responses from the
//! connection task to the waiting `Responses`, in place of `futures_channel::mpsc::channel(1)`.
//!
//! One sender (the connection), one receiver (the request), at most one batch of messages in
//! flight: one allocation per request (the shared state) instead of futures-channel's four or
//! five (its inner state, the sender's task handle, the queue's stub node and a node per batch),
//! and a plain mutex instead of its lock-free queue and parking protocol. Semantics kept: the
//! sender waits while a batch is unread (back-pressure), learns when the receiver is gone, and
//! the receiver sees the end of the stream when the sender is dropped.

use crate::codec::BackendMessages;
use parking_lot::Mutex;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

struct State {
    slot: Option<BackendMessages>,
    receiver_waker: Option<Waker>,
    sender_waker: Option<Waker>,
    sender_gone: bool,
    receiver_gone: bool,
}

type Shared = Arc<Mutex<State>>;

pub struct Sender(Shared);

pub struct Receiver(Shared);

pub fn channel() -> (Sender, Receiver) {
    let shared = Arc::new(Mutex::new(State {
        slot: None,
        receiver_waker: None,
        sender_waker: None,
        sender_gone: false,
        receiver_gone: false,
    }));
    (Sender(shared.clone()), Receiver(shared))
}

/// Stores `cx`'s waker in `slot` unless the one there already wakes the same task.
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl Sender {
    /// Ready when a batch may be sent; `Err` when the receiver is gone.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        let mut state = self.0.lock();
        if state.receiver_gone {
            return Poll::Ready(Err(()));
        }
        if state.slot.is_none() {
            return Poll::Ready(Ok(()));
        }
        register(&mut state.sender_waker, cx);
        Poll::Pending
    }

    /// Sends a batch; call after `poll_ready` said `Ok`. Dropped if the receiver is gone.
    pub fn start_send(&mut self, messages: BackendMessages) {
        let waker = {
            let mut state = self.0.lock();
            if state.receiver_gone {
                return;
            }
            debug_assert!(state.slot.is_none(), "start_send without poll_ready");
            state.slot = Some(messages);
            state.receiver_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.0.lock();
            state.sender_gone = true;
            state.receiver_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Receiver {
    /// The next batch; `None` once the sender is gone and every batch was read.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<BackendMessages>> {
        let (messages, waker) = {
            let mut state = self.0.lock();
            match state.slot.take() {
                Some(messages) => (messages, state.sender_waker.take()),
                None if state.sender_gone => return Poll::Ready(None),
                None => {
                    register(&mut state.receiver_waker, cx);
                    return Poll::Pending;
                }
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Poll::Ready(Some(messages))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let (unread, waker) = {
            let mut state = self.0.lock();
            state.receiver_gone = true;
            (state.slot.take(), state.sender_waker.take())
        };
        drop(unread);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}
