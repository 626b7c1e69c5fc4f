//! The emulator's EBS direct APIs and EC2 snapshots, for the tests to write snapshots and look
//! behind the binaries' backs (shared with batch-worker's tests, which include it by path).

use std::collections::BTreeMap;

/// moto's S3 as the other tests use it, and its EBS direct APIs as EBS behaves.
pub const PATCHES: &str = "full_object_checksums,ebs_direct_apis";
/// The EBS direct APIs' only block size.
pub const BLOCK: usize = 512 * 1024;

/// The emulator's EBS and EC2, for looking behind the CLI's back.
pub struct Aws {
    pub rt: tokio::runtime::Runtime,
    pub ebs: aws_sdk_ebs::Client,
    pub ec2: aws_sdk_ec2::Client,
}

impl Aws {
    pub fn new(endpoint: &str) -> Aws {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ebs::config::SharedCredentialsProvider::new(
                aws_sdk_ebs::config::Credentials::new("test", "test", None, None, "tests"),
            ))
            .endpoint_url(endpoint)
            .build();
        Aws { rt, ebs: aws_sdk_ebs::Client::new(&config), ec2: aws_sdk_ec2::Client::new(&config) }
    }

    /// Every written block of a snapshot, read with GetSnapshotBlock and checked against its
    /// checksum.
    pub fn blocks(&self, snapshot_id: &str) -> BTreeMap<u64, Vec<u8>> {
        self.rt.block_on(async {
            let listed = self.ebs.list_snapshot_blocks().snapshot_id(snapshot_id).send().await.expect("list blocks");
            assert_eq!(listed.block_size(), Some(BLOCK as i32));
            assert_eq!(listed.next_token(), None, "one page is enough for these snapshots");
            let mut blocks = BTreeMap::new();
            for block in listed.blocks() {
                let index = block.block_index().expect("an index");
                let got = self
                    .ebs
                    .get_snapshot_block()
                    .snapshot_id(snapshot_id)
                    .block_index(index)
                    .block_token(block.block_token().expect("a token"))
                    .send()
                    .await
                    .expect("get block");
                let checksum = got.checksum().expect("a checksum").to_string();
                let data = got.block_data.collect().await.expect("block body").into_bytes().to_vec();
                use base64::Engine;
                use sha2::Digest;
                let actual = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&data));
                assert_eq!(actual, checksum, "block {index}'s checksum");
                blocks.insert(index as u64, data);
            }
            blocks
        })
    }

    /// A completed 1 GiB snapshot holding `blocks`, written as EBS expects (checksums, count and
    /// LINEAR checksum), everything else a hole.
    pub fn write_snapshot(&self, blocks: &BTreeMap<u64, Vec<u8>>) -> String {
        use aws_sdk_ebs::types::{ChecksumAggregationMethod, ChecksumAlgorithm};
        use base64::Engine;
        use sha2::Digest;
        let b64 = |data: &[u8]| base64::engine::general_purpose::STANDARD.encode(data);
        self.rt.block_on(async {
            let id = self.ebs.start_snapshot().volume_size(1).send().await.expect("start snapshot");
            let id = id.snapshot_id().expect("an id").to_string();
            let mut linear = sha2::Sha256::new();
            for (index, data) in blocks {
                let digest = sha2::Sha256::digest(data);
                linear.update(digest);
                self.ebs
                    .put_snapshot_block()
                    .snapshot_id(&id)
                    .block_index(*index as i32)
                    .block_data(data.clone().into())
                    .data_length(BLOCK as i32)
                    .checksum(b64(&digest))
                    .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("put block {index}: {e:?}"));
            }
            self.ebs
                .complete_snapshot()
                .snapshot_id(&id)
                .changed_blocks_count(blocks.len() as i32)
                .checksum(b64(&linear.finalize()))
                .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
                .checksum_aggregation_method(ChecksumAggregationMethod::ChecksumAggregationLinear)
                .send()
                .await
                .expect("complete snapshot");
            id
        })
    }

    /// (state, description, tags, encrypted) of a snapshot as EC2 describes it.
    pub fn describe(&self, snapshot_id: &str) -> (String, String, Vec<(String, String)>, bool) {
        let out = self
            .rt
            .block_on(self.ec2.describe_snapshots().snapshot_ids(snapshot_id).send())
            .unwrap_or_else(|e| panic!("describe {snapshot_id}: {e:?}"));
        let s = &out.snapshots()[0];
        let tags = s.tags().iter().map(|t| (t.key().unwrap_or("").into(), t.value().unwrap_or("").into())).collect();
        (
            s.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
            s.description().unwrap_or_default().to_string(),
            tags,
            s.encrypted().unwrap_or(false),
        )
    }

    /// The ids of every snapshot this account owns.
    pub fn snapshot_ids(&self) -> Vec<String> {
        let out = self.rt.block_on(self.ec2.describe_snapshots().owner_ids("self").send()).expect("describe snapshots");
        let mut ids: Vec<String> = out.snapshots().iter().filter_map(|s| s.snapshot_id().map(str::to_string)).collect();
        ids.sort();
        ids
    }
}
