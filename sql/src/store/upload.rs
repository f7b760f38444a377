//! Multipart uploads: a background task owns the `FileWriter` of the
//! temporary file and takes the parts in call order from an unbounded
//! channel, so `put_part` never waits; each part's future waits for its
//! own acknowledgement.

use object_store::path::Path;
use object_store::{MultipartUpload, PutMultipartOptions, PutPayload, PutResult, UploadPart};
use tokio::sync::{mpsc, oneshot};
use tusk_client::{Client, FileWriter};

use super::errors::{from_client, generic, not_implemented};
use super::write::{abort_quietly, create_temp, discard, publish, temp_path};
use super::{DfsStore, dfs_path};

type Result<T, E = object_store::Error> = std::result::Result<T, E>;

/// What the upload's task is asked to do, in call order.
enum Command {
    Part(PutPayload, oneshot::Sender<Result<()>>),
    Complete(oneshot::Sender<Result<PutResult>>),
    Abort(oneshot::Sender<Result<()>>),
}

/// A multipart upload to one target. Dropping it without `complete` or
/// `abort` aborts it (the task deletes the temporary file).
#[derive(Debug)]
pub(crate) struct DfsUpload {
    location: Path,
    /// `None` once completed or aborted.
    commands: Option<mpsc::UnboundedSender<Command>>,
}

/// `put_multipart_opts`: creates the temporary file (so a refusal shows at
/// once) and starts the task writing it.
pub(crate) async fn start(
    store: &DfsStore,
    location: &Path,
    opts: PutMultipartOptions,
) -> Result<Box<dyn MultipartUpload>> {
    if !opts.attributes.is_empty() {
        return Err(not_implemented("put_multipart_opts with attributes"));
    }
    let client = store.client().clone();
    let temp = temp_path(&dfs_path(location))?;
    let writer = create_temp(&client, location, &temp).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    let task = UploadTask { client, location: location.clone(), temp, writer: Some(writer), failure: None };
    tokio::spawn(task.run(rx));
    Ok(Box::new(DfsUpload { location: location.clone(), commands: Some(tx) }))
}

impl DfsUpload {
    fn finished(&self) -> object_store::Error {
        generic(format!("{}: the upload is already completed or aborted", dfs_path(&self.location)))
    }

    fn task_gone(location: &Path) -> object_store::Error {
        generic(format!("{}: the upload's writer task ended", dfs_path(location)))
    }
}

#[async_trait::async_trait]
impl MultipartUpload for DfsUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let (ack, done) = oneshot::channel();
        let sent = match &self.commands {
            Some(tx) => tx.send(Command::Part(data, ack)).is_ok(),
            None => false,
        };
        let refused = (!sent).then(|| self.finished());
        let location = self.location.clone();
        Box::pin(async move {
            if let Some(e) = refused {
                return Err(e);
            }
            done.await.unwrap_or_else(|_| Err(DfsUpload::task_gone(&location)))
        })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let tx = self.commands.take().ok_or_else(|| self.finished())?;
        let (ack, done) = oneshot::channel();
        tx.send(Command::Complete(ack)).map_err(|_| DfsUpload::task_gone(&self.location))?;
        done.await.unwrap_or_else(|_| Err(DfsUpload::task_gone(&self.location)))
    }

    async fn abort(&mut self) -> Result<()> {
        let Some(tx) = self.commands.take() else { return Ok(()) };
        let (ack, done) = oneshot::channel();
        tx.send(Command::Abort(ack)).map_err(|_| DfsUpload::task_gone(&self.location))?;
        done.await.unwrap_or_else(|_| Err(DfsUpload::task_gone(&self.location)))
    }
}

/// The task behind a [`DfsUpload`].
struct UploadTask {
    client: Client,
    location: Path,
    temp: String,
    /// `None` once the writer failed (and was aborted) or finished.
    writer: Option<FileWriter>,
    /// Why the writer failed, for every later part and `complete`.
    failure: Option<String>,
}

impl UploadTask {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        while let Some(command) = commands.recv().await {
            match command {
                Command::Part(payload, ack) => {
                    let r = self.write(&payload).await;
                    let _ = ack.send(r);
                }
                Command::Complete(ack) => {
                    let _ = ack.send(self.complete().await);
                    return;
                }
                Command::Abort(ack) => {
                    let _ = ack.send(self.abort().await);
                    return;
                }
            }
        }
        // The upload was dropped unfinished.
        if let Some(w) = self.writer.take() {
            abort_quietly(w, &self.temp).await;
        }
    }

    fn failed(&self) -> Option<object_store::Error> {
        self.failure.as_ref().map(|why| generic(format!("{}: an earlier part failed: {why}", dfs_path(&self.location))))
    }

    async fn write(&mut self, payload: &PutPayload) -> Result<()> {
        if let Some(e) = self.failed() {
            return Err(e);
        }
        let Some(w) = self.writer.as_mut() else { return Err(generic("the upload's writer is closed")) };
        for chunk in payload.iter() {
            if let Err(e) = w.write(chunk).await {
                self.failure = Some(e.to_string());
                if let Some(w) = self.writer.take() {
                    abort_quietly(w, &self.temp).await;
                }
                return Err(from_client(self.location.as_ref(), e));
            }
        }
        Ok(())
    }

    async fn complete(&mut self) -> Result<PutResult> {
        if let Some(e) = self.failed() {
            return Err(e);
        }
        let Some(w) = self.writer.take() else { return Err(generic("the upload's writer is closed")) };
        if let Err(e) = w.close().await {
            discard(&self.client, &self.temp).await;
            return Err(from_client(self.location.as_ref(), e));
        }
        publish(&self.client, &self.temp, &self.location, true).await
    }

    async fn abort(&mut self) -> Result<()> {
        match self.writer.take() {
            Some(w) => w.abort().await.map_err(|e| from_client(self.location.as_ref(), e)),
            // The writer failed and was aborted already.
            None => Ok(()),
        }
    }
}
