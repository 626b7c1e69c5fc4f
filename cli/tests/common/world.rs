//! One test's world: a work directory, an S3 server with a bucket, and the CLI's environment.
//! Each test file adds the methods it needs in its own `impl World` block.

use std::path::PathBuf;

use super::cli::CliEnv;
use super::s3::TestS3;
use super::{require_image_prerequisites, workdir};

pub struct World {
    pub work: tempfile::TempDir,
    pub t: TestS3,
    pub env: CliEnv,
}

impl World {
    pub fn new(tag: &str) -> World {
        require_image_prerequisites();
        let work = workdir(tag);
        let t = TestS3::start(tag);
        let env = CliEnv::new(&t.endpoint());
        World { work, t, env }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }
}
