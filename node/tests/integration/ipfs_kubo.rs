//! The IPFS layer against a real Kubo daemon: locally computed CIDs equal Kubo's for single- and
//! multi-chunk files, content reads back intact, and pins survive a daemon restart. Kubo comes
//! from `scripts/setup.sh`; without it these tests fail with the message saying how to install it.

use genmint_node::devnet::kubo::KuboDaemon;
use genmint_node::ipfs::{Cid, ContentStore, ImportProfile, IpfsError, KuboClient};

const MIB: usize = 1_048_576;

/// Deterministic, non-repeating-looking bytes (a 32-bit LCG's high byte).
fn content(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect()
}

async fn start(repo: &std::path::Path) -> KuboDaemon {
    KuboDaemon::start(repo).await.unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubo_cids_match_local_cids_and_pins_survive_a_restart() {
    let repo = tempfile::tempdir().unwrap();
    let daemon = start(repo.path()).await;
    assert!(daemon.api_url().starts_with("http://127.0.0.1:"), "{}", daemon.api_url());
    let kubo = KuboClient::new(daemon.api_url()).unwrap();

    let files = [
        ("16 bytes", b"hello provenance".to_vec()),
        ("3 MiB", content(3 * MIB)),
        ("exactly 1 MiB", content(MIB)),
        ("1 MiB + 1 byte", content(MIB + 1)),
    ];
    let mut added = Vec::new();
    for (name, bytes) in files {
        let local = ImportProfile::UNIXFS_V1_2025.cid_of(&bytes).unwrap();
        let cid = kubo.add_and_pin(bytes.clone()).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(cid, local, "{name}");
        assert!(kubo.is_pinned(&cid).await.unwrap(), "{name} pinned");
        assert_eq!(kubo.cat(&cid, bytes.len()).await.unwrap(), bytes, "{name} reads back");
        added.push((name, cid, bytes));
    }
    assert_eq!(added[0].1.to_string(), "bafkreiemcjzqub4fpiesxyyk6uzw7vmew43conubs64twv57vp2jvyl33a");
    assert_eq!(added[2].1, Cid::raw_sha256(&added[2].2), "one full chunk is a raw block");
    assert!(added[1].1.to_string().starts_with("bafybei"), "3 MiB is a dag-pb root");
    assert!(added[3].1.to_string().starts_with("bafybei"), "1 MiB + 1 is a dag-pb root");

    daemon.stop().await.unwrap();
    let daemon = start(repo.path()).await;
    let kubo = KuboClient::new(daemon.api_url()).unwrap();
    for (name, cid, bytes) in &added {
        assert!(kubo.is_pinned(cid).await.unwrap(), "{name} still pinned after restart");
        assert_eq!(&kubo.cat(cid, bytes.len()).await.unwrap(), bytes, "{name} after restart");
    }
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_bounded_and_unknown_content_is_reported() {
    let repo = tempfile::tempdir().unwrap();
    let daemon = start(repo.path()).await;
    let kubo = KuboClient::new(daemon.api_url()).unwrap();

    let bytes = content(2 * MIB + 7);
    let cid = kubo.add_and_pin(bytes.clone()).await.unwrap();
    let too_large = kubo.cat(&cid, bytes.len() - 1).await.unwrap_err();
    assert!(matches!(too_large, IpfsError::TooLarge { max_bytes, .. } if max_bytes == bytes.len() - 1));
    assert_eq!(kubo.cat(&cid, bytes.len()).await.unwrap(), bytes);

    let empty = kubo.add_and_pin(Vec::new()).await.unwrap();
    assert_eq!(empty, Cid::raw_sha256(b""));

    // Never added: the offline daemon has no block for it and no pin.
    let absent = Cid::raw_sha256(b"never added");
    assert!(!kubo.is_pinned(&absent).await.unwrap());
    let missing = kubo.cat(&absent, 1024).await.unwrap_err();
    assert!(matches!(missing, IpfsError::Rejected { .. }), "{missing:?}");

    // A daemon that is gone is reported as unreachable, with the way to start one.
    let api_url = daemon.api_url().to_owned();
    daemon.stop().await.unwrap();
    let gone = KuboClient::new(&api_url).unwrap().add_and_pin(b"x".to_vec()).await.unwrap_err();
    assert!(matches!(gone, IpfsError::Unreachable { .. }), "{gone:?}");
}
