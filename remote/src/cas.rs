//! The content-addressable storage: which blobs the server lacks, uploads (small blobs in
//! `BatchUpdateBlobs` calls, large ones through ByteStream), downloads verified against their
//! digests. Transfers run [`Remote::transfer_parallelism`] at a time.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use bazel_remote_apis::google::bytestream::byte_stream_client::ByteStreamClient;
use bazel_remote_apis::google::bytestream::{ReadRequest, WriteRequest};
use futures::{StreamExt, TryStreamExt};

use crate::digest::{self, Hasher};
use crate::proto::content_addressable_storage_client::ContentAddressableStorageClient;
use crate::proto::{
    batch_update_blobs_request, digest_function, BatchReadBlobsRequest, BatchUpdateBlobsRequest,
    Digest, FindMissingBlobsRequest,
};
use crate::retry::retry;
use crate::{Remote, RemoteError};

/// Blobs up to this size travel in batches; larger ones through ByteStream.
pub const BATCH_BLOB_LIMIT: i64 = 1 << 20;
/// The payload of one batch call, well under gRPC's default 4 MiB message limit.
const BATCH_TOTAL_LIMIT: i64 = 2 << 20;
/// The chunk size of ByteStream writes.
const CHUNK: usize = 1 << 20;
/// Digests per `FindMissingBlobs` call.
const FIND_MISSING_LIMIT: usize = 20_000;

/// Where the bytes of a blob to upload are.
#[derive(Debug, Clone)]
pub enum BlobSource {
    Bytes(Vec<u8>),
    /// A local file whose content hashes to the blob's digest.
    File(PathBuf),
}

impl Remote {
    /// How many transfers run at once.
    pub fn transfer_parallelism(&self) -> usize {
        self.options.jobs.clamp(1, 16)
    }

    /// The digests among `digests` that the server does not have (one call per 20 000).
    pub async fn find_missing(&self, digests: Vec<Digest>) -> Result<Vec<Digest>, RemoteError> {
        let never = AtomicBool::new(false);
        let mut missing = Vec::new();
        for chunk in digests.chunks(FIND_MISSING_LIMIT) {
            let response = retry(&never, || async {
                let mut client = ContentAddressableStorageClient::new(self.channel.clone());
                client
                    .find_missing_blobs(self.request(FindMissingBlobsRequest {
                        instance_name: self.options.instance_name.clone(),
                        blob_digests: chunk.to_vec(),
                        digest_function: digest_function::Value::Sha256 as i32,
                    }))
                    .await
                    .map_err(|s| self.rpc_error("FindMissingBlobs", s))
            })
            .await?;
            missing.extend(response.into_inner().missing_blob_digests);
        }
        Ok(missing)
    }

    /// Upload `blobs` (each once, whatever the server has): small ones batched, large ones
    /// streamed, several at a time.
    pub async fn upload(
        &self,
        blobs: Vec<(Digest, BlobSource)>,
        cancel: &AtomicBool,
    ) -> Result<(), RemoteError> {
        let (mut small, large): (Vec<_>, Vec<_>) = blobs
            .into_iter()
            .partition(|(d, _)| d.size_bytes <= BATCH_BLOB_LIMIT);
        small.sort_by(|a, b| a.0.hash.cmp(&b.0.hash));
        small.dedup_by(|a, b| a.0 == b.0);
        let mut batches: Vec<Vec<(Digest, BlobSource)>> = Vec::new();
        let mut total = 0;
        for blob in small {
            if batches.is_empty() || total + blob.0.size_bytes > BATCH_TOTAL_LIMIT {
                batches.push(Vec::new());
                total = 0;
            }
            total += blob.0.size_bytes;
            batches.last_mut().expect("pushed above").push(blob);
        }
        let batch_jobs = futures::stream::iter(
            batches
                .into_iter()
                .map(|batch| async move { retry(cancel, || self.upload_batch(&batch)).await }),
        );
        let stream_jobs =
            futures::stream::iter(large.into_iter().map(|(digest, source)| async move {
                retry(cancel, || self.upload_stream(&digest, &source)).await
            }));
        let parallelism = self.transfer_parallelism();
        let batches = batch_jobs
            .buffer_unordered(parallelism)
            .try_collect::<Vec<()>>();
        let streams = stream_jobs
            .buffer_unordered(parallelism)
            .try_collect::<Vec<()>>();
        futures::try_join!(batches, streams)?;
        Ok(())
    }

    async fn upload_batch(&self, batch: &[(Digest, BlobSource)]) -> Result<(), RemoteError> {
        let mut requests = Vec::with_capacity(batch.len());
        for (digest, source) in batch {
            requests.push(batch_update_blobs_request::Request {
                digest: Some(digest.clone()),
                data: read_source(source)?,
                compressor: 0,
            });
        }
        let mut client = ContentAddressableStorageClient::new(self.channel.clone());
        let response = client
            .batch_update_blobs(self.request(BatchUpdateBlobsRequest {
                instance_name: self.options.instance_name.clone(),
                requests,
                digest_function: digest_function::Value::Sha256 as i32,
            }))
            .await
            .map_err(|s| self.rpc_error("BatchUpdateBlobs", s))?;
        for r in response.into_inner().responses {
            let status = r.status.unwrap_or_default();
            if status.code != 0 {
                return Err(self.rpc_error(
                    "BatchUpdateBlobs",
                    tonic::Status::new(tonic::Code::from(status.code), status.message),
                ));
            }
        }
        for (digest, _) in batch {
            self.counters.uploaded(digest.size_bytes as u64);
        }
        Ok(())
    }

    async fn upload_stream(&self, digest: &Digest, source: &BlobSource) -> Result<(), RemoteError> {
        let resource = format!(
            "{}uploads/{}/blobs/{}",
            self.instance_prefix(),
            upload_id(digest),
            digest::display(digest)
        );
        let size = digest.size_bytes;
        let reader: Box<dyn Read + Send> = match source {
            BlobSource::Bytes(bytes) => Box::new(std::io::Cursor::new(bytes.clone())),
            BlobSource::File(path) => {
                Box::new(std::fs::File::open(path).map_err(|e| io("opening", path, e))?)
            }
        };
        // Chunks are read as the stream is polled: one chunk in memory at a time.
        let chunks = futures::stream::unfold(
            (reader, 0i64, false),
            move |(mut reader, offset, finished)| {
                let resource = resource.clone();
                async move {
                    if finished {
                        return None;
                    }
                    let mut data = vec![0u8; CHUNK];
                    let mut filled = 0;
                    while filled < CHUNK {
                        match reader.read(&mut data[filled..]) {
                            Ok(0) => break,
                            Ok(n) => filled += n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            // A short stream: the server refuses the size mismatch.
                            Err(_) => break,
                        }
                    }
                    data.truncate(filled);
                    let next = offset + filled as i64;
                    let finish = next >= size || filled == 0;
                    let request = WriteRequest {
                        resource_name: if offset == 0 { resource } else { String::new() },
                        write_offset: offset,
                        finish_write: finish,
                        data,
                    };
                    Some((request, (reader, next, finish)))
                }
            },
        );
        let mut client = ByteStreamClient::new(self.channel.clone());
        let response = client
            .write(self.request(chunks))
            .await
            .map_err(|s| self.rpc_error("ByteStream.Write", s))?;
        let committed = response.into_inner().committed_size;
        // A server that already had the blob may answer early with its size (or -1).
        if committed != size && committed != -1 {
            return Err(self.rpc_error(
                "ByteStream.Write",
                tonic::Status::data_loss(format!(
                    "committed {committed} of {size} bytes of {}",
                    digest::display(digest)
                )),
            ));
        }
        self.counters.uploaded(size as u64);
        Ok(())
    }

    /// A blob's bytes, verified against `digest`.
    pub async fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, RemoteError> {
        let never = AtomicBool::new(false);
        let bytes = retry(&never, || async {
            let mut out = Vec::new();
            self.read_stream(digest, &mut out).await?;
            Ok(out)
        })
        .await?;
        self.verify(digest, &digest::of_bytes(&bytes))?;
        Ok(bytes)
    }

    /// Download blobs into files (`path` must not exist), each verified against its digest:
    /// small blobs batched, large ones streamed, several at a time. A blob the server lacks
    /// is [`RemoteError::BlobMissing`]; one that does not match is
    /// [`RemoteError::DigestMismatch`].
    pub async fn download_to_files(
        &self,
        files: Vec<(Digest, PathBuf)>,
        cancel: &AtomicBool,
    ) -> Result<(), RemoteError> {
        let (small, large): (Vec<_>, Vec<_>) = files
            .into_iter()
            .partition(|(d, _)| d.size_bytes <= BATCH_BLOB_LIMIT);
        let mut batches: Vec<Vec<(Digest, PathBuf)>> = Vec::new();
        let mut total = 0;
        for file in small {
            if batches.is_empty() || total + file.0.size_bytes > BATCH_TOTAL_LIMIT {
                batches.push(Vec::new());
                total = 0;
            }
            total += file.0.size_bytes;
            batches.last_mut().expect("pushed above").push(file);
        }
        let parallelism = self.transfer_parallelism();
        let batches = futures::stream::iter(
            batches
                .into_iter()
                .map(|batch| async move { retry(cancel, || self.download_batch(&batch)).await }),
        )
        .buffer_unordered(parallelism)
        .try_collect::<Vec<()>>();
        let streams = futures::stream::iter(large.into_iter().map(|(digest, path)| async move {
            retry(cancel, || self.download_stream(&digest, &path)).await
        }))
        .buffer_unordered(parallelism)
        .try_collect::<Vec<()>>();
        futures::try_join!(batches, streams)?;
        Ok(())
    }

    async fn download_batch(&self, batch: &[(Digest, PathBuf)]) -> Result<(), RemoteError> {
        let mut unique: Vec<Digest> = batch.iter().map(|(d, _)| d.clone()).collect();
        unique.sort_by(|a, b| a.hash.cmp(&b.hash));
        unique.dedup();
        let mut client = ContentAddressableStorageClient::new(self.channel.clone());
        let response = client
            .batch_read_blobs(self.request(BatchReadBlobsRequest {
                instance_name: self.options.instance_name.clone(),
                digests: unique,
                acceptable_compressors: Vec::new(),
                digest_function: digest_function::Value::Sha256 as i32,
            }))
            .await
            .map_err(|s| self.rpc_error("BatchReadBlobs", s))?
            .into_inner();
        let mut got = std::collections::BTreeMap::new();
        for r in response.responses {
            let digest = r.digest.unwrap_or_default();
            let status = r.status.unwrap_or_default();
            if status.code == tonic::Code::NotFound as i32 {
                return Err(self.missing(&digest));
            }
            if status.code != 0 {
                return Err(self.rpc_error(
                    "BatchReadBlobs",
                    tonic::Status::new(tonic::Code::from(status.code), status.message),
                ));
            }
            self.verify(&digest, &digest::of_bytes(&r.data))?;
            self.counters.downloaded(r.data.len() as u64);
            got.insert(digest.hash.clone(), r.data);
        }
        for (digest, path) in batch {
            let data = got.get(&digest.hash).ok_or_else(|| self.missing(digest))?;
            std::fs::write(path, data).map_err(|e| io("writing", path, e))?;
        }
        Ok(())
    }

    async fn download_stream(&self, digest: &Digest, path: &PathBuf) -> Result<(), RemoteError> {
        let mut file = std::fs::File::create(path).map_err(|e| io("creating", path, e))?;
        let got = self.read_stream(digest, &mut file).await?;
        self.verify(digest, &got)?;
        file.sync_data().map_err(|e| io("writing", path, e))?;
        Ok(())
    }

    /// Stream a blob into `out`; returns the digest of what arrived.
    async fn read_stream(
        &self,
        digest: &Digest,
        out: &mut dyn Write,
    ) -> Result<Digest, RemoteError> {
        let mut client = ByteStreamClient::new(self.channel.clone());
        let resource = format!(
            "{}blobs/{}",
            self.instance_prefix(),
            digest::display(digest)
        );
        let mut stream = client
            .read(self.request(ReadRequest {
                resource_name: resource,
                read_offset: 0,
                read_limit: 0,
            }))
            .await
            .map_err(|s| match s.code() {
                tonic::Code::NotFound => self.missing(digest),
                _ => self.rpc_error("ByteStream.Read", s),
            })?
            .into_inner();
        let mut hasher = Hasher::default();
        while let Some(chunk) = stream.message().await.map_err(|s| match s.code() {
            tonic::Code::NotFound => self.missing(digest),
            _ => self.rpc_error("ByteStream.Read", s),
        })? {
            hasher.update(&chunk.data);
            self.counters.downloaded(chunk.data.len() as u64);
            out.write_all(&chunk.data)
                .map_err(|e| io("writing", &PathBuf::from("<download>"), e))?;
        }
        Ok(hasher.finish())
    }

    fn verify(&self, expected: &Digest, got: &Digest) -> Result<(), RemoteError> {
        if expected.hash == got.hash && expected.size_bytes == got.size_bytes {
            return Ok(());
        }
        Err(RemoteError::DigestMismatch {
            address: self.address().to_string(),
            digest: digest::display(expected),
            got: digest::display(got),
        })
    }

    fn missing(&self, digest: &Digest) -> RemoteError {
        RemoteError::BlobMissing {
            address: self.address().to_string(),
            digest: digest::display(digest),
        }
    }

    /// `INSTANCE/` or nothing, the start of ByteStream resource names.
    fn instance_prefix(&self) -> String {
        match self.options.instance_name.as_str() {
            "" => String::new(),
            name => format!("{name}/"),
        }
    }
}

fn read_source(source: &BlobSource) -> Result<Vec<u8>, RemoteError> {
    match source {
        BlobSource::Bytes(bytes) => Ok(bytes.clone()),
        BlobSource::File(path) => std::fs::read(path).map_err(|e| io("reading", path, e)),
    }
}

fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> RemoteError {
    RemoteError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// A UUID-shaped id for a ByteStream upload, unique per process, blob and moment.
fn upload_id(digest: &Digest) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!(
        "{}:{}:{}:{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos,
        digest.hash
    );
    let h = digest::of_bytes(seed.as_bytes()).hash;
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_are_uuid_shaped_and_differ() {
        let d = digest::of_bytes(b"x");
        let (a, b) = (upload_id(&d), upload_id(&d));
        assert_ne!(a, b);
        let parts: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
    }
}
