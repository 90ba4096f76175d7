//! An in-memory [`ContentStore`] for unit tests: bytes kept under the CID computed here, every
//! one pinned, and a switch that makes it answer like an unreachable daemon. As [`SwarmPeers`] it
//! has a peer id; once connected to another store's address, a `cat` it cannot answer itself is
//! answered by that store, as bitswap would.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{Cid, ContentStore, ImportProfile, IpfsError, KuboIdentity, RemotePin, RemotePins, SwarmPeers};

/// Content kept in memory; clones share it.
#[derive(Clone, Default)]
pub struct MemoryStore {
    files: Arc<Mutex<HashMap<Cid, Vec<u8>>>>,
    down: Arc<AtomicBool>,
    peer_id: Arc<Mutex<String>>,
    /// Stores that may be dialled, by peer id, and those connected.
    reachable: Arc<Mutex<HashMap<String, MemoryStore>>>,
    connected: Arc<Mutex<Vec<MemoryStore>>>,
    /// Remote pinning services registered, and what each was asked to pin.
    services: Arc<Mutex<HashMap<String, Vec<RemotePin>>>>,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemoryStore {
    /// From now on every call fails as if the daemon were unreachable (or works again).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// The bytes under `cid`, if held.
    pub fn get(&self, cid: &Cid) -> Option<Vec<u8>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner()).get(cid).cloned()
    }

    /// A store whose swarm peer id is `peer_id`, listening at `/memory/<peer_id>/p2p/<peer_id>`.
    pub fn named(peer_id: &str) -> Self {
        let store = Self::default();
        *locked(&store.peer_id) = peer_id.to_owned();
        store
    }

    /// Lets this store dial `other` (by its peer id).
    pub fn can_reach(&self, other: &MemoryStore) {
        let id = locked(&other.peer_id).clone();
        locked(&self.reachable).insert(id, other.clone());
    }

    /// Forgets `cid` (unpinned and collected).
    pub fn remove(&self, cid: &Cid) {
        locked(&self.files).remove(cid);
    }

    fn held_by_connected(&self, cid: &Cid) -> Option<Vec<u8>> {
        locked(&self.connected)
            .iter()
            .filter(|peer| !peer.down.load(Ordering::SeqCst))
            .find_map(|peer| peer.get(cid))
    }

    /// Whether nothing was ever stored.
    pub fn is_empty(&self) -> bool {
        self.files.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// Stores `bytes` under their CID and returns it.
    pub fn put(&self, bytes: Vec<u8>) -> Cid {
        let cid = ImportProfile::UNIXFS_V1_2025.cid_of(&bytes).expect("any bytes have a CID");
        self.replace(&cid, bytes);
        cid
    }

    /// Serves `bytes` under `cid` from now on, whatever they hash to: a store that lies.
    pub fn replace(&self, cid: &Cid, bytes: Vec<u8>) {
        self.files.lock().unwrap_or_else(|p| p.into_inner()).insert(cid.clone(), bytes);
    }

    fn check_up(&self) -> Result<(), IpfsError> {
        if self.down.load(Ordering::SeqCst) {
            Err(IpfsError::Timeout { api_url: "memory".into(), seconds: 0 })
        } else {
            Ok(())
        }
    }
}

impl MemoryStore {
    /// The file behind `cid` here or on a connected store, within `max_bytes`.
    fn read(&self, cid: &Cid, max_bytes: usize) -> Result<Vec<u8>, IpfsError> {
        self.check_up().and_then(|()| match self.get(cid).or_else(|| self.held_by_connected(cid)) {
            Some(bytes) if bytes.len() > max_bytes => {
                Err(IpfsError::TooLarge { cid: cid.clone(), max_bytes })
            }
            Some(bytes) => Ok(bytes),
            None => Err(IpfsError::Rejected {
                api_url: "memory".into(),
                operation: "cat",
                message: format!("{cid} not found"),
            }),
        })
    }
}

impl ContentStore for MemoryStore {
    fn add_and_pin(&self, bytes: Vec<u8>) -> impl Future<Output = Result<Cid, IpfsError>> + Send {
        let stored = self.check_up().and_then(|()| {
            let cid = ImportProfile::UNIXFS_V1_2025.cid_of(&bytes)?;
            self.replace(&cid, bytes);
            Ok(cid)
        });
        std::future::ready(stored)
    }

    fn cat(&self, cid: &Cid, max_bytes: usize) -> impl Future<Output = Result<Vec<u8>, IpfsError>> + Send {
        std::future::ready(self.read(cid, max_bytes))
    }

    fn cat_range(
        &self,
        cid: &Cid,
        offset: usize,
        length: usize,
    ) -> impl Future<Output = Result<Vec<u8>, IpfsError>> + Send {
        let whole = self.read(cid, usize::MAX);
        std::future::ready(whole.map(|bytes| {
            let start = offset.min(bytes.len());
            bytes[start..(start.saturating_add(length)).min(bytes.len())].to_vec()
        }))
    }

    fn is_pinned(&self, cid: &Cid) -> impl Future<Output = Result<bool, IpfsError>> + Send {
        std::future::ready(self.check_up().map(|()| self.get(cid).is_some()))
    }
}

impl SwarmPeers for MemoryStore {
    fn identity(&self) -> impl Future<Output = Result<KuboIdentity, IpfsError>> + Send {
        let id = locked(&self.peer_id).clone();
        let identity = self
            .check_up()
            .map(|()| KuboIdentity { addresses: vec![format!("/memory/{id}/p2p/{id}")], peer_id: id });
        std::future::ready(identity)
    }

    fn connect(&self, addresses: &[String]) -> impl Future<Output = Result<usize, IpfsError>> + Send {
        let connected = self.check_up().map(|()| {
            let mut count = 0;
            for address in addresses {
                let Some(id) = address.rsplit("/p2p/").next() else { continue };
                let peer = locked(&self.reachable).get(id).cloned();
                if let Some(peer) = peer.filter(|p| !p.down.load(Ordering::SeqCst)) {
                    locked(&self.connected).push(peer);
                    count += 1;
                }
            }
            count
        });
        std::future::ready(connected)
    }
}

impl RemotePins for MemoryStore {
    fn add_service(
        &self,
        name: &str,
        _: &str,
        _: &str,
    ) -> impl Future<Output = Result<(), IpfsError>> + Send {
        let added = self.check_up().map(|()| {
            locked(&self.services).entry(name.to_owned()).or_default();
        });
        std::future::ready(added)
    }

    fn pin_remote(
        &self,
        service: &str,
        cid: &Cid,
        name: &str,
    ) -> impl Future<Output = Result<RemotePin, IpfsError>> + Send {
        let pinned = self.check_up().and_then(|()| {
            let mut services = locked(&self.services);
            let Some(pins) = services.get_mut(service) else {
                return Err(IpfsError::Rejected {
                    api_url: "memory".into(),
                    operation: "pin remote add",
                    message: format!("service {service:?} not found"),
                });
            };
            let pin = RemotePin { cid: cid.to_string(), name: name.to_owned(), status: "queued".into() };
            pins.push(pin.clone());
            Ok(pin)
        });
        std::future::ready(pinned)
    }

    fn remote_status(
        &self,
        service: &str,
        cid: &Cid,
    ) -> impl Future<Output = Result<Vec<RemotePin>, IpfsError>> + Send {
        let cid = cid.to_string();
        let found = self.check_up().map(|()| {
            locked(&self.services)
                .get(service)
                .into_iter()
                .flatten()
                .filter(|p| p.cid == cid)
                .cloned()
                .collect()
        });
        std::future::ready(found)
    }
}
