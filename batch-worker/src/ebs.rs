//! The Batch worker's EC2 side: attach the restored volume to this instance, wait for
//! `attached`, run the archive, and detach the volume on every path (success, failure, an attach
//! whose wait times out, SIGTERM at any step) so the state machine can delete it. Every wait is
//! bounded, and after a signal the whole cleanup fits in [`SIGNAL_BUDGET`]: AWS Batch sends
//! SIGKILL 30 s after SIGTERM, and a process killed with the volume attached leaves it attached.
//!
//! The EC2 calls go through [`Volumes`], implemented by the SDK's client, so that the waits can be
//! tested with tokio's paused clock against volumes that never attach or never detach.

use std::future::Future;
use std::time::Duration;

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ec2::types::{VolumeAttachmentState, VolumeState};
use tokio_util::sync::CancellationToken;

use crate::signal;

/// Device names offered to AttachVolume, tried in order until one is free. On Nitro the name is
/// only a label (the device is found by serial), but it must be unused on the instance.
const DEVICE_NAMES: [&str; 11] = [
    "/dev/sdf", "/dev/sdg", "/dev/sdh", "/dev/sdi", "/dev/sdj", "/dev/sdk", "/dev/sdl", "/dev/sdm", "/dev/sdn",
    "/dev/sdo", "/dev/sdp",
];
/// DescribeVolumes polling interval: attachment takes seconds, and EC2 throttles Describe calls.
const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Everything after SIGTERM must end within this: AWS Batch sends SIGKILL 30 s after SIGTERM
/// (<https://docs.aws.amazon.com/batch/latest/APIReference/API_TerminateJob.html>), and 5 s are
/// left for the process to exit and for clock and API latency.
pub const SIGNAL_BUDGET: Duration = Duration::from_secs(25);
/// After a signal, the archive gets this long to abort its upload and unmount; then it is
/// dropped (an upload left open is removed by the bucket's AbortIncompleteMultipartUpload rule).
pub const CLEANUP_AFTER_SIGNAL: Duration = Duration::from_secs(10);
/// After a signal, the detach gets the rest of [`SIGNAL_BUDGET`] less one poll of slack: half
/// for a normal detach, half for a forced one.
pub const DETACH_AFTER_SIGNAL: Duration = Duration::from_secs(13);

#[derive(Debug, thiserror::Error)]
pub enum EbsError {
    #[error("failed to attach {volume_id} to {instance_id}: {message}")]
    Attach { volume_id: String, instance_id: String, message: String },
    #[error("failed to detach {volume_id}: {message}")]
    Detach { volume_id: String, message: String },
    #[error("failed to describe {volume_id}: {message}")]
    Describe { volume_id: String, message: String },
    #[error("{volume_id} did not become {wanted} within {waited:?}")]
    Timeout { volume_id: String, wanted: &'static str, waited: Duration },
    #[error("the archive did not stop within {CLEANUP_AFTER_SIGNAL:?} of the signal")]
    CleanupTimedOut,
    #[error("interrupted")]
    Interrupted,
}

/// An EC2 API error: its code, and the whole error for people.
#[derive(Debug, Clone)]
pub struct Ec2Failure {
    pub code: Option<String>,
    pub message: String,
}

/// What DescribeVolumes says of one volume.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VolumeStatus {
    pub volume: Option<VolumeState>,
    pub attachment: Option<VolumeAttachmentState>,
}

/// The three EC2 calls the worker makes.
pub trait Volumes {
    fn attach_volume(
        &self,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> impl Future<Output = Result<(), Ec2Failure>>;
    fn detach_volume(
        &self,
        volume_id: &str,
        instance_id: &str,
        force: bool,
    ) -> impl Future<Output = Result<(), Ec2Failure>>;
    fn volume_status(&self, volume_id: &str) -> impl Future<Output = Result<VolumeStatus, Ec2Failure>>;
}

fn failure<E: ProvideErrorMetadata + std::error::Error + 'static>(e: E) -> Ec2Failure {
    Ec2Failure { code: e.code().map(Into::into), message: DisplayErrorContext(e).to_string() }
}

impl Volumes for aws_sdk_ec2::Client {
    async fn attach_volume(&self, volume_id: &str, instance_id: &str, device: &str) -> Result<(), Ec2Failure> {
        self.attach_volume()
            .volume_id(volume_id)
            .instance_id(instance_id)
            .device(device)
            .send()
            .await
            .map(drop)
            .map_err(failure)
    }

    async fn detach_volume(&self, volume_id: &str, instance_id: &str, force: bool) -> Result<(), Ec2Failure> {
        self.detach_volume()
            .volume_id(volume_id)
            .instance_id(instance_id)
            .force(force)
            .send()
            .await
            .map(drop)
            .map_err(failure)
    }

    async fn volume_status(&self, volume_id: &str) -> Result<VolumeStatus, Ec2Failure> {
        let output = self.describe_volumes().volume_ids(volume_id).send().await.map_err(failure)?;
        let volume = output.volumes().first();
        Ok(VolumeStatus {
            volume: volume.and_then(|v| v.state().cloned()),
            attachment: volume.and_then(|v| v.attachments().first()).and_then(|a| a.state().cloned()),
        })
    }
}

/// A volume attached by this worker.
#[derive(Debug)]
pub struct Attachment {
    pub volume_id: String,
    pub instance_id: String,
    pub device_name: String,
}

/// Attaches `volume_id` to `instance_id`, runs `work` once it is attached, and detaches it on
/// every path: when `work` ends, fails or is cancelled, and when the attachment never completes.
/// After `cancel` fires, `work` gets [`CLEANUP_AFTER_SIGNAL`] to stop and the detach (forced if
/// the normal one is slow) [`DETACH_AFTER_SIGNAL`]. Returns the work's result and the detach's.
pub async fn with_attached_volume<V, T, E>(
    ec2: &V,
    volume_id: &str,
    instance_id: &str,
    timeout: Duration,
    cancel: &CancellationToken,
    work: impl Future<Output = Result<T, E>>,
) -> (Result<T, E>, Result<(), EbsError>)
where
    V: Volumes,
    E: From<EbsError>,
{
    let attachment = match request_attachment(ec2, volume_id, instance_id).await {
        Ok(attachment) => attachment,
        // AttachVolume failed: nothing to detach.
        Err(e) => return (Err(e.into()), Ok(())),
    };
    let attached_then_work = async {
        attachment.wait_attached(ec2, timeout, cancel).await?;
        work.await
    };
    let result = signal::with_grace(attached_then_work, cancel, CLEANUP_AFTER_SIGNAL)
        .await
        .unwrap_or_else(|| Err(EbsError::CleanupTimedOut.into()));
    let detached = attachment.detach(ec2, timeout, cancel).await;
    (result, detached)
}

/// Calls AttachVolume with the first free device name. Once this returns, the volume may be
/// attaching and must be detached.
async fn request_attachment<V: Volumes>(ec2: &V, volume_id: &str, instance_id: &str) -> Result<Attachment, EbsError> {
    let attach_err =
        |message: String| EbsError::Attach { volume_id: volume_id.into(), instance_id: instance_id.into(), message };
    for name in DEVICE_NAMES {
        match ec2.attach_volume(volume_id, instance_id, name).await {
            Ok(()) => {
                tracing::info!(volume_id, instance_id, device_name = name, "attaching volume");
                return Ok(Attachment {
                    volume_id: volume_id.into(),
                    instance_id: instance_id.into(),
                    device_name: name.into(),
                });
            }
            Err(e) if e.code.as_deref() == Some("InvalidParameterValue") && e.message.contains("in use") => continue,
            Err(e) => return Err(attach_err(e.message)),
        }
    }
    Err(attach_err("every device name from /dev/sdf to /dev/sdp is in use".into()))
}

impl Attachment {
    async fn wait_attached<V: Volumes>(
        &self,
        ec2: &V,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), EbsError> {
        wait_for(ec2, &self.volume_id, "attached", timeout, cancel, |s| {
            s.attachment == Some(VolumeAttachmentState::Attached)
        })
        .await
    }

    /// Detaches the volume and waits until it is `available`; if a normal detach does not finish
    /// within half of its time, forces it (by then the worker has unmounted everything, or given
    /// up on it). Its time is `timeout`, or [`DETACH_AFTER_SIGNAL`] once `cancel` has fired: a
    /// signal during the normal detach's wait goes straight to the forced one.
    pub async fn detach<V: Volumes>(
        self,
        ec2: &V,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), EbsError> {
        let budget = |cancel: &CancellationToken| {
            if cancel.is_cancelled() {
                DETACH_AFTER_SIGNAL
            } else {
                timeout
            }
        };
        let never = CancellationToken::new();
        let available = |s: &VolumeStatus| s.volume == Some(VolumeState::Available);
        self.request_detach(ec2, false).await?;
        let watch = if cancel.is_cancelled() { &never } else { cancel };
        match wait_for(ec2, &self.volume_id, "detached", budget(cancel) / 2, watch, available).await {
            Err(EbsError::Timeout { .. } | EbsError::Interrupted) => {}
            result => return result,
        }
        self.request_detach(ec2, true).await?;
        wait_for(ec2, &self.volume_id, "detached", budget(cancel) / 2, &never, available).await
    }

    async fn request_detach<V: Volumes>(&self, ec2: &V, force: bool) -> Result<(), EbsError> {
        tracing::info!(volume_id = %self.volume_id, force, "detaching volume");
        ec2.detach_volume(&self.volume_id, &self.instance_id, force)
            .await
            .map_err(|e| EbsError::Detach { volume_id: self.volume_id.clone(), message: e.message })
    }
}

async fn wait_for<V: Volumes>(
    ec2: &V,
    volume_id: &str,
    wanted: &'static str,
    timeout: Duration,
    cancel: &CancellationToken,
    done: impl Fn(&VolumeStatus) -> bool,
) -> Result<(), EbsError> {
    let started = tokio::time::Instant::now();
    loop {
        let status = ec2
            .volume_status(volume_id)
            .await
            .map_err(|e| EbsError::Describe { volume_id: volume_id.into(), message: e.message })?;
        if done(&status) {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(EbsError::Timeout { volume_id: volume_id.into(), wanted, waited: timeout });
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(EbsError::Interrupted),
            _ = tokio::time::sleep(POLL_INTERVAL.min(timeout.saturating_sub(started.elapsed()))) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::time::Instant;

    /// An EC2 whose volume attaches only if `attaches`, and detaches only with a forced detach
    /// unless `detaches`: the slow paths that AWS shows and the emulator does not.
    struct Ec2 {
        attaches: bool,
        detaches: bool,
        calls: Mutex<Vec<String>>,
        state: Mutex<VolumeStatus>,
    }

    impl Ec2 {
        fn new(attaches: bool, detaches: bool) -> Ec2 {
            let state = VolumeStatus { volume: Some(VolumeState::Available), attachment: None };
            Ec2 { attaches, detaches, calls: Mutex::default(), state: Mutex::new(state) }
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }

        fn available(&self) -> bool {
            self.state.lock().unwrap().volume == Some(VolumeState::Available)
        }
    }

    impl Volumes for Ec2 {
        async fn attach_volume(&self, _: &str, _: &str, device: &str) -> Result<(), Ec2Failure> {
            self.calls.lock().unwrap().push(format!("attach {device}"));
            let attachment =
                if self.attaches { VolumeAttachmentState::Attached } else { VolumeAttachmentState::Attaching };
            *self.state.lock().unwrap() =
                VolumeStatus { volume: Some(VolumeState::InUse), attachment: Some(attachment) };
            Ok(())
        }

        async fn detach_volume(&self, _: &str, _: &str, force: bool) -> Result<(), Ec2Failure> {
            self.calls.lock().unwrap().push(format!("detach force={force}"));
            if force || self.detaches {
                *self.state.lock().unwrap() = VolumeStatus { volume: Some(VolumeState::Available), attachment: None };
            }
            Ok(())
        }

        async fn volume_status(&self, _: &str) -> Result<VolumeStatus, Ec2Failure> {
            Ok(self.state.lock().unwrap().clone())
        }
    }

    const WAIT: Duration = Duration::from_secs(300);

    async fn run(
        ec2: &Ec2,
        cancel: &CancellationToken,
        work: impl Future<Output = Result<(), EbsError>>,
    ) -> (Result<(), EbsError>, Result<(), EbsError>) {
        with_attached_volume(ec2, "vol-1", "i-1", WAIT, cancel, work).await
    }

    /// Cancels `cancel` after `after`, as the SIGTERM handler would.
    fn sigterm_after(cancel: &CancellationToken, after: Duration) {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            cancel.cancel();
        });
    }

    #[tokio::test(start_paused = true)]
    async fn an_attach_whose_wait_times_out_is_detached() {
        let ec2 = Ec2::new(false, false);
        let (result, detached) = run(&ec2, &CancellationToken::new(), async { Ok(()) }).await;
        assert!(matches!(result, Err(EbsError::Timeout { wanted: "attached", .. })), "{result:?}");
        detached.unwrap();
        assert_eq!(ec2.calls(), ["attach /dev/sdf", "detach force=false", "detach force=true"]);
        assert!(ec2.available());
    }

    #[tokio::test(start_paused = true)]
    async fn sigterm_during_the_attach_wait_detaches_within_the_budget() {
        let ec2 = Ec2::new(false, false);
        let cancel = CancellationToken::new();
        sigterm_after(&cancel, Duration::from_secs(7));
        let started = Instant::now();
        let (result, detached) = run(&ec2, &cancel, async { Ok(()) }).await;
        assert!(matches!(result, Err(EbsError::Interrupted)), "{result:?}");
        detached.unwrap();
        assert!(ec2.available());
        assert!(started.elapsed() <= Duration::from_secs(7) + SIGNAL_BUDGET, "{:?}", started.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn sigterm_during_a_work_that_ignores_it_still_detaches_within_the_budget() {
        let ec2 = Ec2::new(true, false);
        let cancel = CancellationToken::new();
        sigterm_after(&cancel, Duration::from_secs(3600));
        let started = Instant::now();
        let (result, detached) = run(&ec2, &cancel, std::future::pending()).await;
        assert!(matches!(result, Err(EbsError::CleanupTimedOut)), "{result:?}");
        detached.unwrap();
        assert_eq!(ec2.calls(), ["attach /dev/sdf", "detach force=false", "detach force=true"]);
        assert!(ec2.available());
        let after_signal = started.elapsed() - Duration::from_secs(3600);
        assert!(after_signal <= SIGNAL_BUDGET, "{after_signal:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn sigterm_during_the_normal_detach_forces_it_at_once() {
        let ec2 = Ec2::new(true, false);
        let cancel = CancellationToken::new();
        let attachment = request_attachment(&ec2, "vol-1", "i-1").await.unwrap();
        sigterm_after(&cancel, Duration::from_secs(5));
        let started = Instant::now();
        attachment.detach(&ec2, WAIT, &cancel).await.unwrap();
        assert!(started.elapsed() <= Duration::from_secs(5) + DETACH_AFTER_SIGNAL, "{:?}", started.elapsed());
        assert_eq!(ec2.calls(), ["attach /dev/sdf", "detach force=false", "detach force=true"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_archive_detaches_normally() {
        let ec2 = Ec2::new(true, true);
        let (result, detached) = run(&ec2, &CancellationToken::new(), async { Ok(()) }).await;
        result.unwrap();
        detached.unwrap();
        assert_eq!(ec2.calls(), ["attach /dev/sdf", "detach force=false"]);
    }
}
