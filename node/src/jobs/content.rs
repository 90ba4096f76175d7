//! Where jobs pin what they make: any [`ContentStore`] (Kubo in the product, an in-memory store in
//! unit tests), seen through the one call jobs make.

use futures_util::future::BoxFuture;

use crate::ipfs::{Cid, ContentStore, IpfsError};

/// Adds and pins bytes, returning their locally checked CID.
pub trait Pinner: Send + Sync {
    fn add_and_pin(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<Cid, IpfsError>>;
}

impl<T: ContentStore + Send + Sync> Pinner for T {
    fn add_and_pin(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<Cid, IpfsError>> {
        Box::pin(ContentStore::add_and_pin(self, bytes))
    }
}
