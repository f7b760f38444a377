//! Starting and stopping a worker: local directories, the task runtime, the
//! WorkerService server, the jobtracker actor, the finish reporter and the
//! log janitor.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tusk_proto::compute::worker_service_server::WorkerServiceServer;

use crate::config::{WorkerConfig, derive_slots};
use crate::error::{Result, WorkerError};
use crate::jobtracker::{Announcement, FinishReporter, JobtrackerActor, JobtrackerClient, new_worker_id};
use crate::logs::{self, LogJanitor};
use crate::runtime::{ProcessRuntime, TaskRuntime, WarmConfig, procfs};
use crate::service::WorkerRpc;
use crate::worker::{Settings, Worker};

/// A running worker.
pub struct WorkerHandle {
    addr: SocketAddr,
    advertised: String,
    worker: Arc<Worker>,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::result::Result<(), tonic::transport::Error>>,
    background: Vec<JoinHandle<()>>,
    fatal: Option<oneshot::Receiver<WorkerError>>,
}

/// Prepares the local directories, binds `config.rpc_addr` and serves
/// WorkerService. Returns once the server listens (and the addr file is
/// written); registration with the jobtracker goes on in the background
/// (see [`WorkerHandle::fatal_error`]). Call from a tokio runtime.
pub async fn start(config: WorkerConfig) -> Result<WorkerHandle> {
    config.validate()?;
    let settings = settings(&config)?;
    let dirs = settings.local_dirs.clone();
    let stale = tokio::task::spawn_blocking(move || logs::prepare_local_dirs(&dirs))
        .await
        .map_err(|e| WorkerError::Config(format!("preparing the local directories: {e}")))??;
    let keep_logs = !settings.log_retain.is_zero();
    tokio::task::spawn_blocking(move || logs::clear_previous_run(stale, keep_logs));

    let warm = WarmConfig {
        program: settings.task_executable.clone(),
        dir: settings.local_dirs.first().map(|d| d.join("warm")).unwrap_or_default(),
        count: config.warm_tasks.unwrap_or(settings.slots) as usize,
        attempts: config.warm_task_attempts,
    };
    let runtime: Arc<dyn TaskRuntime> = Arc::new(ProcessRuntime::start()?.with_env(config.task_base_env()).with_warm(warm));
    let listener = tokio::net::TcpListener::bind(&config.rpc_addr)
        .await
        .map_err(|source| WorkerError::Bind { addr: config.rpc_addr.clone(), source })?;
    let addr = listener.local_addr().map_err(|source| WorkerError::Bind { addr: config.rpc_addr.clone(), source })?;
    let advertised =
        if addr.ip().is_unspecified() { format!("{}:{}", config.host, addr.port()) } else { addr.to_string() };
    let announcement = Announcement {
        addr: advertised.clone(),
        host: config.host.clone(),
        datanode: config.datanode.clone(),
        memory_bytes: u64::from(settings.slots).saturating_mul(settings.default_memory_bytes),
    };
    let client = JobtrackerClient::new(&config.jobtracker_addr)?;
    let (worker, finished) = Worker::new(settings, runtime, new_worker_id(&announcement));

    let (stop, stop_rx) = watch::channel(false);
    let incoming = TcpListenerStream::new(listener).map(|s| {
        let s = s?;
        s.set_nodelay(true)?;
        Ok::<_, std::io::Error>(s)
    });
    let mut server_stop = stop_rx.clone();
    let server = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(WorkerServiceServer::new(WorkerRpc { worker: Arc::clone(&worker) }))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = server_stop.wait_for(|s| *s).await;
        });
    let server = tokio::spawn(server);

    let (fatal_tx, fatal_rx) = oneshot::channel();
    let actor = JobtrackerActor { worker: Arc::clone(&worker), client: client.clone(), announcement };
    let reporter = FinishReporter { worker: Arc::clone(&worker), client };
    let janitor = LogJanitor { local_dirs: worker.settings.local_dirs.clone(), retain: worker.settings.log_retain };
    let background = vec![
        actor.spawn(stop_rx.clone(), fatal_tx),
        tokio::spawn(reporter.run(finished, stop_rx.clone())),
        tokio::spawn(janitor.run(stop_rx)),
    ];
    let handle = WorkerHandle { addr, advertised, worker, stop, server, background, fatal: Some(fatal_rx) };
    if let Some(file) = &config.addr_file
        && let Err(e) = write_addr_file(file, &handle.advertised)
    {
        let _ = handle.shutdown().await;
        return Err(e);
    }
    tracing::info!(
        addr = %handle.advertised,
        worker = %handle.worker_id(),
        slots = handle.slots(),
        jobtracker = %config.jobtracker_addr,
        "worker serving"
    );
    Ok(handle)
}

/// The configuration resolved against the machine.
fn settings(config: &WorkerConfig) -> Result<Settings> {
    let task_executable = match &config.task_executable {
        Some(p) => {
            if !p.is_file() {
                return Err(WorkerError::Config(format!("task_executable: {}: no such file", p.display())));
            }
            p.clone()
        }
        None => std::env::current_exe()
            .map_err(|e| WorkerError::Config(format!("task_executable: cannot find the running executable: {e}")))?,
    };
    let slots = match config.slots {
        0 => {
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let memory = procfs::physical_memory_bytes().unwrap_or(config.task_memory_bytes());
            derive_slots(cores, memory, config.task_memory_bytes())
        }
        n => n,
    };
    let local_dirs = config
        .local_dirs
        .iter()
        .map(|d| std::path::absolute(d).map_err(|e| WorkerError::io(d, e)))
        .collect::<Result<Vec<PathBuf>>>()?;
    Ok(Settings {
        slots,
        host: config.host.clone(),
        local_dirs,
        task_executable,
        default_memory_bytes: config.task_memory_bytes(),
        log_retain: Duration::from_millis(config.log_retain_ms),
    })
}

impl WorkerHandle {
    /// The address the WorkerService is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address announced to the jobtracker (`host:port`; the bound
    /// address unless it is 0.0.0.0).
    pub fn advertised_addr(&self) -> &str {
        &self.advertised
    }

    /// This worker's current id at the jobtracker (a new one after every
    /// re-registration).
    pub fn worker_id(&self) -> String {
        self.worker.identity().worker_id
    }

    /// Concurrent attempts this worker accepts.
    pub fn slots(&self) -> u32 {
        self.worker.settings.slots
    }

    /// Stops taking attempts, kills the running ones (reporting them KILLED
    /// to the jobtracker when it answers within a moment), then stops the
    /// server and the background workers.
    pub async fn shutdown(self) -> Result<()> {
        self.worker.stop("worker shutting down").await;
        let _ = self.stop.send(true);
        let mut server = self.server;
        let served = tokio::time::timeout(Duration::from_secs(2), &mut server).await;
        if served.is_err() {
            server.abort();
        }
        for mut task in self.background {
            if tokio::time::timeout(Duration::from_secs(2), &mut task).await.is_err() {
                task.abort();
            }
        }
        tracing::info!(worker = %self.worker.identity().worker_id, "worker stopped");
        match served {
            Ok(Ok(Err(e))) => Err(WorkerError::Internal(format!("rpc server: {e}"))),
            _ => Ok(()),
        }
    }

    /// Resolves when the worker meets an error it cannot continue after
    /// (the jobtracker refused its registration). Never resolves otherwise.
    pub async fn fatal_error(&mut self) -> WorkerError {
        if let Some(rx) = self.fatal.as_mut()
            && let Ok(e) = rx.await
        {
            self.fatal = None;
            return e;
        }
        self.fatal = None;
        std::future::pending().await
    }
}

fn write_addr_file(file: &Path, addr: &str) -> Result<()> {
    tusk_common::write_addr_file(file, &addr).map_err(|(path, e)| WorkerError::io(&path, e))
}

#[cfg(test)]
mod tests;
