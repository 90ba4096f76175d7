//! Links for simulated networks: libp2p's in-memory transport with a one-way delay, segment loss
//! as a reliable stream sees it (a lost segment arrives one retransmission timeout late, and
//! everything behind it waits), and a count of the bytes each node sends and receives.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

/// The floor of a retransmission timeout, as TCP stacks keep it.
const MIN_RETRANSMIT: Duration = Duration::from_millis(200);
/// Bytes taken from the in-memory channel in one read.
const READ_CHUNK: usize = 16 * 1024;

static NEXT_SEED: AtomicU64 = AtomicU64::new(0x2545_F491_4F6C_DD1D);

/// How a simulated node's connections behave; every connection of the node shares `traffic`.
#[derive(Debug, Clone)]
pub struct MemoryLink {
    /// One-way delay of every segment a node receives (simulated time).
    pub latency: Duration,
    /// Probability (0 to 1) that a segment is lost once and sent again.
    pub loss: f64,
    /// How many times slower than real time the node runs (1: real time): its link delays, its
    /// configured intervals and timeouts and every protocol timer are stretched by it, so that a
    /// simulation of more nodes than its cores keep up with in real time still sees the timings
    /// real nodes would. Times measured in such a network are divided by it.
    pub time_dilation: u32,
    pub traffic: Arc<Traffic>,
}

impl Default for MemoryLink {
    fn default() -> Self {
        Self { latency: Duration::ZERO, loss: 0.0, time_dilation: 1, traffic: Arc::default() }
    }
}

/// Bytes through a node's connections, handshakes and every protocol included.
#[derive(Debug, Default)]
pub struct Traffic {
    sent: AtomicU64,
    received: AtomicU64,
}

impl Traffic {
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// One connection's byte stream with the link's delay and loss applied to what it receives.
pub(crate) struct DelayedStream<S> {
    inner: S,
    link: MemoryLink,
    /// Received segments, the instant each may be read, and how much of it was read.
    in_flight: VecDeque<(Instant, Vec<u8>, usize)>,
    timer: Option<Pin<Box<Sleep>>>,
    ended: bool,
    random: u64,
    /// Where reads from the inner stream land before they become a segment: allocated once, so
    /// that a poll finding nothing to read costs no allocation.
    scratch: Box<[u8]>,
}

impl<S> DelayedStream<S> {
    pub(crate) fn new(inner: S, link: MemoryLink) -> Self {
        // Each connection loses its own segments: seeds step through odd numbers.
        let random = NEXT_SEED.fetch_add(0x9E37_79B9_7F4A_7C16, Ordering::Relaxed) | 1;
        let scratch = vec![0; READ_CHUNK].into_boxed_slice();
        Self { inner, link, in_flight: VecDeque::new(), timer: None, ended: false, random, scratch }
    }

    /// xorshift64: enough to decide which segments are lost.
    fn lost(&mut self) -> bool {
        if self.link.loss <= 0.0 {
            return false;
        }
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        ((self.random >> 11) as f64 / (1u64 << 53) as f64) < self.link.loss
    }

    fn arrival(&mut self) -> Instant {
        let latency = self.link.latency * self.link.time_dilation;
        let mut delay = latency;
        if self.lost() {
            delay += (MIN_RETRANSMIT * self.link.time_dilation).max(latency * 2);
        }
        let at = Instant::now() + delay;
        // A stream delivers in order: a segment waits for the ones before it.
        self.in_flight.back().map_or(at, |(before, _, _)| at.max(*before))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for DelayedStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        while !this.ended {
            match Pin::new(&mut this.inner).poll_read(cx, &mut this.scratch) {
                Poll::Ready(Ok(0)) => this.ended = true,
                Poll::Ready(Ok(read)) => {
                    let segment = this.scratch[..read].to_vec();
                    this.link.traffic.received.fetch_add(read as u64, Ordering::Relaxed);
                    let at = this.arrival();
                    this.in_flight.push_back((at, segment, 0));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => break,
            }
        }
        loop {
            let Some((at, segment, read)) = this.in_flight.front_mut() else {
                return match this.ended {
                    true => Poll::Ready(Ok(0)),
                    false => Poll::Pending,
                };
            };
            if *at <= Instant::now() {
                let count = buf.len().min(segment.len() - *read);
                buf[..count].copy_from_slice(&segment[*read..*read + count]);
                *read += count;
                if *read == segment.len() {
                    this.in_flight.pop_front();
                }
                this.timer = None;
                return Poll::Ready(Ok(count));
            }
            let at = *at;
            let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            timer.as_mut().reset(at);
            match timer.as_mut().poll(cx) {
                Poll::Ready(()) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for DelayedStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(count)) = &written {
            self.link.traffic.sent.fetch_add(*count as u64, Ordering::Relaxed);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
