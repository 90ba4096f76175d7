//! Other peers' adverts: the newest per peer, kept while they are heard at least once per TTL
//! (the book's own, or three times the refresh interval the advert announces, when longer).
//!
//! A peer republishes the same sequence to stay fresh; a higher sequence is a change. Anything
//! older than what is held, a changed advert that kept its sequence, or an advert issued too long
//! ago (a replay) is stale and is neither stored nor forwarded. The same clock window, with its
//! own age limit, decides whether a spot check is fresh.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use libp2p::PeerId;

use super::Dilation;
use crate::advert::{Advert, ReceivedAdvert};

/// How far apart two nodes' clocks may be before their adverts look stale or premature.
pub(super) const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

struct Entry {
    received: ReceivedAdvert,
    heard: Instant,
    ttl: Duration,
}

/// What storing an advert changed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Stored {
    /// A peer we held nothing fresh for, or a higher sequence.
    New,
    /// The same advert again: only its freshness moved.
    Refreshed,
}

pub(super) struct AdvertBook {
    entries: HashMap<PeerId, Entry>,
    ttl: Duration,
    capacity: usize,
    /// Announced refresh intervals are in the network's (simulated) seconds.
    dilation: Dilation,
}

impl AdvertBook {
    pub fn new(ttl: Duration, capacity: usize, dilation: Dilation) -> Self {
        Self { entries: HashMap::new(), ttl, capacity, dilation }
    }

    /// Whether `advert` from `peer` is worth storing and forwarding; `Err` says why it is stale.
    pub fn check(&self, peer: &PeerId, advert: &Advert, now: Instant) -> Result<(), String> {
        check_timestamp("issued at", advert.issued_at, self.ttl_of(advert) + MAX_CLOCK_SKEW)?;
        let Some(held) = self.fresh_entry(peer, now).map(|entry| &entry.received.advert) else {
            return Ok(());
        };
        if advert.sequence < held.sequence {
            return Err(format!("sequence {} is older than the held {}", advert.sequence, held.sequence));
        }
        if advert.sequence == held.sequence {
            if !advert.same_content(held) {
                return Err(format!("changed without a new sequence (still {})", advert.sequence));
            }
            if advert.issued_at < held.issued_at {
                return Err(format!("an older copy of sequence {}", advert.sequence));
            }
        }
        Ok(())
    }

    /// Stores a checked advert as `peer`'s newest.
    pub fn store(&mut self, peer: PeerId, advert: Advert, now: Instant) -> Stored {
        let stored = match self.fresh_entry(&peer, now) {
            Some(entry) if entry.received.advert.sequence >= advert.sequence => Stored::Refreshed,
            _ => Stored::New,
        };
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&peer) {
            self.evict_oldest();
        }
        let ttl = self.ttl_of(&advert);
        let received = ReceivedAdvert { advert, received_at: SystemTime::now() };
        self.entries.insert(peer, Entry { received, heard: now, ttl });
        stored
    }

    /// Drops adverts not heard within their TTL.
    pub fn expire(&mut self, now: Instant) {
        self.entries.retain(|_, entry| now.duration_since(entry.heard) < entry.ttl);
    }

    /// How long `advert` stays fresh unheard: three of its announced refresh intervals, or the
    /// book's TTL when that is longer (or the advert announces none).
    fn ttl_of(&self, advert: &Advert) -> Duration {
        let announced = advert
            .refresh_secs
            .map_or(Duration::ZERO, |secs| self.dilation.stretch(Duration::from_secs(3 * secs)));
        announced.max(self.ttl)
    }

    pub fn get(&self, peer: &PeerId, now: Instant) -> Option<&ReceivedAdvert> {
        self.fresh_entry(peer, now).map(|entry| &entry.received)
    }

    pub fn fresh(&self, now: Instant) -> impl Iterator<Item = &ReceivedAdvert> {
        self.entries.values().filter(move |entry| self.is_fresh(entry, now)).map(|entry| &entry.received)
    }

    fn fresh_entry(&self, peer: &PeerId, now: Instant) -> Option<&Entry> {
        self.entries.get(peer).filter(|entry| self.is_fresh(entry, now))
    }

    fn is_fresh(&self, entry: &Entry, now: Instant) -> bool {
        now.duration_since(entry.heard) < entry.ttl
    }

    fn evict_oldest(&mut self) {
        let oldest = self.entries.iter().min_by_key(|(_, entry)| entry.heard).map(|(peer, _)| *peer);
        if let Some(peer) = oldest {
            self.entries.remove(&peer);
        }
    }
}

pub(super) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// Whether a peer's unix time `at` (`what` names it in the reason) is fresh by our clock: at most
/// `max_age` ago and at most [`MAX_CLOCK_SKEW`] ahead. `Err` says which bound it broke.
pub(super) fn check_timestamp(what: &str, at: u64, max_age: Duration) -> Result<(), String> {
    let now = unix_seconds(SystemTime::now());
    let oldest = now.saturating_sub(max_age.as_secs());
    if at < oldest {
        return Err(format!("{what} {at} but nothing before {oldest} is fresh"));
    }
    if at > now + MAX_CLOCK_SKEW.as_secs() {
        return Err(format!("{what} {at}, in the future (clock skew?)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advert::tests::{advert, peer};

    const TTL: Duration = Duration::from_secs(30);

    #[test]
    fn a_repeat_with_new_addresses_replaces_them_without_a_new_sequence() {
        let (mut book, now, peer) = (AdvertBook::new(TTL, 8, Dilation::NONE), Instant::now(), peer());
        let first = advert(&peer, 5);
        book.store(peer, first.clone(), now);
        let relayed = Advert {
            addresses: vec![format!("/ip4/203.0.113.7/tcp/4001/p2p/{peer}/p2p-circuit")],
            ..first.clone()
        };
        assert_eq!(book.check(&peer, &relayed, now), Ok(()));
        assert_eq!(book.store(peer, relayed.clone(), now), Stored::Refreshed);
        assert_eq!(book.get(&peer, now).unwrap().advert.addresses, relayed.addresses);
    }

    #[test]
    fn keeps_the_highest_sequence_and_refreshes_on_repeats() {
        let (mut book, now, peer) = (AdvertBook::new(TTL, 8, Dilation::NONE), Instant::now(), peer());
        let first = advert(&peer, 5);
        assert_eq!(book.check(&peer, &first, now), Ok(()));
        assert_eq!(book.store(peer, first.clone(), now), Stored::New);

        let repeat = Advert { issued_at: first.issued_at + 1, ..first.clone() };
        assert_eq!(book.check(&peer, &repeat, now), Ok(()));
        assert_eq!(book.store(peer, repeat.clone(), now), Stored::Refreshed);

        let older_copy = first.clone();
        assert!(book.check(&peer, &older_copy, now).unwrap_err().contains("older copy"));
        assert!(book.check(&peer, &advert(&peer, 4), now).unwrap_err().contains("older than"));
        let sneaky = Advert { queue_depth: 9, ..repeat.clone() };
        assert!(book.check(&peer, &sneaky, now).unwrap_err().contains("without a new sequence"));

        let change = Advert { queue_depth: 9, ..advert(&peer, 6) };
        assert_eq!(book.check(&peer, &change, now), Ok(()));
        assert_eq!(book.store(peer, change.clone(), now), Stored::New);
        assert_eq!(book.get(&peer, now).unwrap().advert, change);
    }

    #[test]
    fn adverts_expire_after_the_ttl_and_then_anything_is_new() {
        let (mut book, now, peer) = (AdvertBook::new(TTL, 8, Dilation::NONE), Instant::now(), peer());
        book.store(peer, advert(&peer, 7), now);
        let later = now + TTL;
        assert!(book.get(&peer, later).is_none());
        assert_eq!(book.fresh(later).count(), 0);
        // A restarted node with a lower sequence is welcome once its old advert is gone.
        assert_eq!(book.check(&peer, &advert(&peer, 1), later), Ok(()));
        assert_eq!(book.store(peer, advert(&peer, 1), later), Stored::New);
        book.expire(later + TTL);
        assert_eq!(book.entries.len(), 0);
    }

    #[test]
    fn an_advert_announcing_a_long_refresh_is_kept_three_of_them() {
        let (mut book, now, peer) = (AdvertBook::new(TTL, 8, Dilation::NONE), Instant::now(), peer());
        let slow = Advert { refresh_secs: Some(100), ..advert(&peer, 1) };
        book.store(peer, slow.clone(), now);
        assert!(book.get(&peer, now + TTL * 2).is_some(), "kept past the book's own TTL");
        book.expire(now + Duration::from_secs(299));
        assert!(book.get(&peer, now + Duration::from_secs(299)).is_some());
        assert!(book.get(&peer, now + Duration::from_secs(300)).is_none());
        // Issued long ago but within three of its refreshes (and the skew): still not a replay.
        let aged = Advert { issued_at: slow.issued_at - 200, ..slow };
        assert_eq!(AdvertBook::new(TTL, 8, Dilation::NONE).check(&peer, &aged, now), Ok(()));
        // A short announced refresh never shortens the book's TTL.
        let quick = Advert { refresh_secs: Some(1), ..advert(&peer, 2) };
        book.store(peer, quick, now);
        assert!(book.get(&peer, now + TTL - Duration::from_secs(1)).is_some());
    }

    #[test]
    fn replays_and_premature_adverts_are_stale() {
        let (book, now, peer) = (AdvertBook::new(TTL, 8, Dilation::NONE), Instant::now(), peer());
        let mut replay = advert(&peer, 1);
        replay.issued_at -= (TTL + MAX_CLOCK_SKEW).as_secs() + 5;
        assert!(book.check(&peer, &replay, now).unwrap_err().contains("fresh"));
        let mut premature = advert(&peer, 1);
        premature.issued_at += MAX_CLOCK_SKEW.as_secs() + 5;
        assert!(book.check(&peer, &premature, now).unwrap_err().contains("future"));
    }

    #[test]
    fn a_timestamp_is_fresh_from_its_age_limit_to_the_clock_skew() {
        let now = unix_seconds(SystemTime::now());
        let hour = Duration::from_secs(3600);
        assert_eq!(check_timestamp("made at", now, hour), Ok(()));
        assert_eq!(check_timestamp("made at", now - 60, hour), Ok(()));
        let old = check_timestamp("made at", now - 3700, hour).unwrap_err();
        assert!(old.starts_with(&format!("made at {} but nothing before", now - 3700)), "{old}");
        let ahead = now + MAX_CLOCK_SKEW.as_secs() + 5;
        assert_eq!(
            check_timestamp("made at", ahead, hour),
            Err(format!("made at {ahead}, in the future (clock skew?)"))
        );
    }

    #[test]
    fn a_full_book_evicts_the_least_recently_heard() {
        let (mut book, now) = (AdvertBook::new(TTL, 2, Dilation::NONE), Instant::now());
        let peers = [peer(), peer(), peer()];
        for (i, peer) in peers.iter().enumerate() {
            book.store(*peer, advert(peer, 1), now + Duration::from_secs(i as u64));
        }
        assert!(book.get(&peers[0], now + Duration::from_secs(2)).is_none());
        assert!(book.get(&peers[2], now + Duration::from_secs(2)).is_some());
        assert_eq!(book.fresh(now + Duration::from_secs(2)).count(), 2);
    }
}
