# syntax=docker/dockerfile:1
# The batch-worker image that AWS Batch runs (infra/template.yaml, WorkerJobDefinition).
#
#   docker build -t backup-archiver-worker .        # infra/deploy does this and pushes to ECR
#
# Two stages: the workspace is compiled in the Rust image, and only the binary and the programs
# it runs (batch-worker/src: `command::run("losetup" | "blkid" | "blockdev" | "sfdisk", ..)`, and
# core/src/dump_tools.rs's pg_dump, pg_dumpall, psql, mysqldump, mysql) go into a slim Debian runtime. Mounting needs no mkfs/fsck tools (e2fsprogs, xfsprogs, btrfs-progs):
# the worker calls mount(2) itself and the host's kernel reads the filesystems.
#
# Both stages are Debian 13 (trixie), the current stable release (bookworm left regular security
# support in June 2026); the builder's glibc is therefore the runtime's. Move both together.

# --- build ------------------------------------------------------------------------------------
FROM rust:1.95-slim-trixie AS build
WORKDIR /src
# The whole workspace: cargo needs every member's manifest to resolve the lock file. .dockerignore
# keeps target/, images and caches out of the context.
COPY . .
# BuildKit caches keep the crates.io index, the sources and the compiled dependencies between
# builds; --locked builds exactly Cargo.lock. CARGO_TARGET_DIR overrides .cargo/config.toml, which
# points at the developers' shared cache.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target-cache \
    CARGO_TARGET_DIR=/src/target-cache cargo build --release --locked -p batch-worker --bin batch-worker \
    && install -D -m 0755 /src/target-cache/release/batch-worker /out/batch-worker

# --- runtime ----------------------------------------------------------------------------------
FROM debian:trixie-slim
# mount: losetup; util-linux: blkid, blockdev; fdisk: sfdisk (reads GPT and MBR tables);
# ca-certificates: TLS to S3, EC2 and SSM. Versions come with the base image's Debian point release.
#
# `batch-worker dump` (the RDS native-dump flow) runs the engines' own clients:
# postgresql-client: pg_dump, pg_dumpall, psql. pg_dump refuses a server newer than itself, so
#   the client must be >= the newest PostgreSQL engine version the flow dumps. trixie ships
#   PostgreSQL 17, which dumps RDS PostgreSQL up to 17; for 18, add the PGDG repository's
#   postgresql-client-18 here.
# mariadb-client: mysqldump and mysql (trixie: MariaDB 11.8). It dumps MariaDB and MySQL 5.7/8.0
#   (RDS MySQL, Aurora MySQL); default-mysql-client is the same package on Debian.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends mount util-linux fdisk ca-certificates \
       postgresql-client mariadb-client \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/batch-worker /usr/local/bin/batch-worker
# Runs as root, on purpose: the worker mounts filesystems read-only (mount(2) needs CAP_SYS_ADMIN),
# makes device nodes for volumes attached after the container started (mknod), and reads raw block
# devices. The job definition runs it privileged with the host's /dev at /host/dev. A non-root
# user cannot do any of this.
# checkov:skip=CKV_DOCKER_8:the worker mounts filesystems and makes device nodes, which needs root (see above)
# hadolint ignore=DL3002
USER 0
# The worker answers Docker's HEALTHCHECK question itself: it exits when the archive is done.
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/batch-worker"]
