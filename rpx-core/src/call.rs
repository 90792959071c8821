//! Calling a cloned inner service at once when it is ready at once.
//!
//! The routers pick a service per request and must check its readiness
//! before calling it. `Oneshot` does that on the first poll, which moves the
//! request into its state and out again; every rpx service is always ready,
//! so the check is made here with a no-op waker and the call happens now.
//! A service that is not ready yet falls back to `Oneshot`.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_util::future::Either;
use tower::util::Oneshot;
use tower::{Service, ServiceExt};

/// The future of [`call_ready`]. The fallback is boxed: it holds the
/// service and the request, and would make every request's future (which
/// each layer moves) that much larger for a path rpx's services never take.
pub(crate) type CallFuture<S, R> = Either<<S as Service<R>>::Future, Pin<Box<Oneshot<S, R>>>>;

/// Calls `svc` with `req` now if it is ready, else through `Oneshot`.
pub(crate) fn call_ready<S: Service<R>, R>(mut svc: S, req: R) -> CallFuture<S, R> {
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => Either::Left(svc.call(req)),
        // Pending, or an error `Oneshot` asks again for and returns.
        _ => Either::Right(Box::pin(svc.oneshot(req))),
    }
}

/// [`call_ready`] on a service kept in place: a clone of it only for
/// `Oneshot`, when it is not ready.
pub(crate) fn call_ready_in_place<S: Service<R> + Clone, R>(
    svc: &mut S,
    req: R,
) -> CallFuture<S, R> {
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => Either::Left(svc.call(req)),
        _ => Either::Right(Box::pin(svc.clone().oneshot(req))),
    }
}
