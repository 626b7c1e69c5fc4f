//! The Batch worker's EC2 side: attach the restored volume to this instance, wait for
//! `attached`, and at the end detach it and wait until it is free again, so the state machine
//! can delete it. Every wait is bounded.

use std::time::Duration;

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ec2::types::{VolumeAttachmentState, VolumeState};
use aws_sdk_ec2::Client;
use tokio_util::sync::CancellationToken;

/// Device names offered to AttachVolume, tried in order until one is free. On Nitro the name is
/// only a label (the device is found by serial), but it must be unused on the instance.
const DEVICE_NAMES: [&str; 11] =
    ["/dev/sdf", "/dev/sdg", "/dev/sdh", "/dev/sdi", "/dev/sdj", "/dev/sdk", "/dev/sdl", "/dev/sdm", "/dev/sdn", "/dev/sdo", "/dev/sdp"];
/// DescribeVolumes polling interval: attachment takes seconds, and EC2 throttles Describe calls.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

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
    #[error("interrupted")]
    Interrupted,
}

/// A volume attached by this worker.
#[derive(Debug)]
pub struct Attachment {
    pub volume_id: String,
    pub instance_id: String,
    pub device_name: String,
}

/// Attaches `volume_id` to `instance_id` and waits until the attachment is `attached`.
pub async fn attach(
    client: &Client,
    volume_id: &str,
    instance_id: &str,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<Attachment, EbsError> {
    let attach_err = |message: String| EbsError::Attach { volume_id: volume_id.into(), instance_id: instance_id.into(), message };
    let mut device_name = None;
    for name in DEVICE_NAMES {
        match client.attach_volume().volume_id(volume_id).instance_id(instance_id).device(name).send().await {
            Ok(_) => {
                device_name = Some(name);
                break;
            }
            Err(e) if e.code() == Some("InvalidParameterValue") && e.message().is_some_and(|m| m.contains("in use")) => continue,
            Err(e) => return Err(attach_err(DisplayErrorContext(e).to_string())),
        }
    }
    let device_name = device_name.ok_or_else(|| attach_err("every device name from /dev/sdf to /dev/sdp is in use".into()))?;
    tracing::info!(volume_id, instance_id, device_name, "attaching volume");
    wait_for(client, volume_id, "attached", timeout, cancel, |state| state.attachment == Some(VolumeAttachmentState::Attached)).await?;
    Ok(Attachment { volume_id: volume_id.into(), instance_id: instance_id.into(), device_name: device_name.into() })
}

impl Attachment {
    /// Detaches the volume and waits until it is `available`. If a normal detach does not
    /// finish within half of `timeout`, forces it: by then the worker has unmounted everything.
    pub async fn detach(self, client: &Client, timeout: Duration) -> Result<(), EbsError> {
        let never = CancellationToken::new();
        for force in [false, true] {
            client
                .detach_volume()
                .volume_id(&self.volume_id)
                .instance_id(&self.instance_id)
                .force(force)
                .send()
                .await
                .map_err(|e| EbsError::Detach { volume_id: self.volume_id.clone(), message: DisplayErrorContext(e).to_string() })?;
            tracing::info!(volume_id = %self.volume_id, force, "detaching volume");
            match wait_for(client, &self.volume_id, "detached", timeout / 2, &never, |state| state.volume == Some(VolumeState::Available)).await {
                Err(EbsError::Timeout { .. }) if !force => continue,
                result => return result,
            }
        }
        unreachable!("the forced attempt returns")
    }
}

struct VolumeStatus {
    volume: Option<VolumeState>,
    attachment: Option<VolumeAttachmentState>,
}

async fn wait_for(
    client: &Client,
    volume_id: &str,
    wanted: &'static str,
    timeout: Duration,
    cancel: &CancellationToken,
    done: impl Fn(&VolumeStatus) -> bool,
) -> Result<(), EbsError> {
    let started = tokio::time::Instant::now();
    loop {
        let output = client
            .describe_volumes()
            .volume_ids(volume_id)
            .send()
            .await
            .map_err(|e| EbsError::Describe { volume_id: volume_id.into(), message: DisplayErrorContext(e).to_string() })?;
        let volume = output.volumes().first();
        let status = VolumeStatus {
            volume: volume.and_then(|v| v.state().cloned()),
            attachment: volume.and_then(|v| v.attachments().first()).and_then(|a| a.state().cloned()),
        };
        if done(&status) {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(EbsError::Timeout { volume_id: volume_id.into(), wanted, waited: timeout });
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(EbsError::Interrupted),
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}
