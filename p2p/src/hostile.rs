//! Hostile input: every decoder of a peer's bytes (request-response frames, wire messages, gossiped
//! adverts and spot checks) answers arbitrary bytes, and valid encodings with bytes flipped, cut or
//! inserted, with an error or a value that passes its own checks, never a panic, and never reads
//! past its size bound. The budget is proptest's: 256 cases per property, `PROPTEST_CASES=N` for
//! a longer run.

use proptest::prelude::*;

use crate::advert::{Advert, MAX_ADVERT_BYTES};
use crate::bounded_json::Gossiped;
use crate::hostile_input::hostile;
use crate::spot_check::SpotCheck;
use crate::wire::{self, JobRequest, JobResponse, MAX_MESSAGE_BYTES};

fn requests() -> Vec<Vec<u8>> {
    [
        JobRequest::Submit {
            job_id: "0x01".into(),
            signed_request: "{\"request\":{},\"signature\":\"0x\"}".into(),
        },
        JobRequest::Status { job_id: "0x02".into() },
        JobRequest::Cancel { job_id: "0x03".into() },
    ]
    .iter()
    .map(|r| wire::encode(r).unwrap())
    .collect()
}

fn responses() -> Vec<Vec<u8>> {
    [
        JobResponse::Accepted { job_id: "0x01".into() },
        JobResponse::Rejected { job_id: "0x01".into(), code: "busy".into(), message: "no room".into() },
        JobResponse::Ack,
    ]
    .iter()
    .map(|r| wire::encode(r).unwrap())
    .collect()
}

proptest! {
    #[test]
    fn wire_messages_never_panic(bytes in hostile(requests().into_iter().chain(responses()).collect())) {
        let _ = wire::decode::<JobRequest>(&bytes);
        let _ = wire::decode::<JobResponse>(&bytes);
    }

    #[test]
    fn frames_never_panic_or_read_past_their_bound(body in hostile(requests()), claimed in any::<u32>()) {
        // A frame whose length prefix says anything, followed by the body.
        let mut frame = claimed.to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let read = runtime.block_on(crate::codec::read_frame::<_, JobRequest>(&mut frame.as_slice()));
        if claimed as usize > MAX_MESSAGE_BYTES {
            prop_assert!(read.is_err(), "a frame over the bound was read");
        }
    }

    #[test]
    fn adverts_never_panic_and_what_decodes_has_a_valid_shape(
        bytes in hostile(vec![crate::advert::tests::offer().encode().unwrap()])
    ) {
        if let Ok(advert) = Advert::decode(&bytes) {
            prop_assert!(bytes.len() <= MAX_ADVERT_BYTES);
            prop_assert!(advert.validate_shape().is_ok());
        }
    }

    #[test]
    fn spot_checks_never_panic_and_what_decodes_has_a_valid_shape(
        bytes in hostile(vec![crate::spot_check::tests::check().encode().unwrap()])
    ) {
        if let Ok(check) = SpotCheck::decode(&bytes) {
            prop_assert!(check.validate_shape().is_ok());
        }
    }
}
