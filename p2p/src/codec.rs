//! Frames job-protocol messages on a libp2p stream: a 4-byte big-endian length, then the encoded
//! envelope. A length above [`MAX_MESSAGE_BYTES`] is refused before a byte of the body is read.

use std::io;

use libp2p::StreamProtocol;
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::{self, JobRequest, JobResponse, MAX_MESSAGE_BYTES};

/// The request-response codec of [`wire::JOB_PROTOCOL`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JobCodec;

impl request_response::Codec for JobCodec {
    type Protocol = StreamProtocol;
    type Request = JobRequest;
    type Response = JobResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<JobRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<JobResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: JobRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &request).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: JobResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &response).await
    }
}

/// Reads one length-prefixed message; a refusal is an `InvalidData` error carrying the reason.
pub(crate) async fn read_frame<T, M>(io: &mut T) -> io::Result<M>
where
    T: AsyncRead + Unpin + Send,
    M: DeserializeOwned,
{
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let size = u32::from_be_bytes(prefix) as usize;
    if size > MAX_MESSAGE_BYTES {
        return Err(invalid(wire::WireError::TooLarge { size }));
    }
    let mut body = vec![0u8; size];
    io.read_exact(&mut body).await?;
    wire::decode(&body).map_err(invalid)
}

async fn write_frame<T, M>(io: &mut T, message: &M) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
    M: Serialize,
{
    let body = wire::encode(message).map_err(invalid)?;
    // `encode` bounds the body by MAX_MESSAGE_BYTES, which fits a u32.
    let size =
        u32::try_from(body.len()).map_err(|_| invalid(wire::WireError::TooLarge { size: body.len() }))?;
    io.write_all(&size.to_be_bytes()).await?;
    io.write_all(&body).await?;
    io.flush().await
}

fn invalid(error: wire::WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

#[cfg(test)]
mod tests {
    use libp2p::futures::executor::block_on;
    use libp2p::futures::io::Cursor;
    use libp2p::request_response::Codec;

    use super::*;

    fn protocol() -> StreamProtocol {
        StreamProtocol::new(wire::JOB_PROTOCOL)
    }

    #[test]
    fn a_framed_request_and_response_round_trip() {
        block_on(async {
            let request = JobRequest::Cancel { job_id: "0x02".into() };
            let mut buffer = Cursor::new(Vec::new());
            JobCodec.write_request(&protocol(), &mut buffer, request.clone()).await.unwrap();
            let bytes = buffer.into_inner();
            assert_eq!(u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize, bytes.len() - 4);
            let read = JobCodec.read_request(&protocol(), &mut Cursor::new(bytes)).await.unwrap();
            assert_eq!(read, request);

            let mut buffer = Cursor::new(Vec::new());
            JobCodec.write_response(&protocol(), &mut buffer, JobResponse::Ack).await.unwrap();
            let read = JobCodec.read_response(&protocol(), &mut Cursor::new(buffer.into_inner())).await;
            assert_eq!(read.unwrap(), JobResponse::Ack);
        });
    }

    #[test]
    fn an_oversized_prefix_is_refused_before_the_body_is_read() {
        block_on(async {
            // No body follows: reading it would end in UnexpectedEof, not in a size refusal.
            let prefix = ((MAX_MESSAGE_BYTES + 1) as u32).to_be_bytes().to_vec();
            let error = JobCodec.read_request(&protocol(), &mut Cursor::new(prefix)).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
            assert!(error.to_string().contains("exceeds"), "{error}");
        });
    }

    #[test]
    fn garbage_and_truncated_frames_are_refused() {
        block_on(async {
            let mut garbage = 9u32.to_be_bytes().to_vec();
            garbage.extend_from_slice(b"not json!");
            let error = JobCodec.read_request(&protocol(), &mut Cursor::new(garbage)).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);

            let mut truncated = 100u32.to_be_bytes().to_vec();
            truncated.extend_from_slice(b"{\"version\":1");
            let error = JobCodec.read_request(&protocol(), &mut Cursor::new(truncated)).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        });
    }

    #[test]
    fn an_oversized_message_is_not_written() {
        block_on(async {
            let huge =
                JobRequest::Submit { job_id: "j".into(), signed_request: "x".repeat(MAX_MESSAGE_BYTES) };
            let mut buffer = Cursor::new(Vec::new());
            let error = JobCodec.write_request(&protocol(), &mut buffer, huge).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
            assert!(buffer.into_inner().is_empty());
        });
    }
}
