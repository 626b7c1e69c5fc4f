//! The digest over made-up days: window edges, counts, failures' order and cap, silence, renderings.

use super::super::render::Format;
use super::*;
use crate::manifest::tests::sample as sample_manifest;
use crate::message::MAX_SNS_SUBJECT_CHARS;

fn now() -> DateTime<Utc> {
    "2026-11-22T07:00:00Z".parse().unwrap()
}

fn job(kind: AlertKind, id: &str, state: &str, hours_ago: i64) -> DigestJob {
    DigestJob {
        kind,
        job_id: id.to_string(),
        state: state.to_string(),
        resource_arn: Some("arn:aws:ec2:eu-west-1:123456789012:volume/vol-0123456789abcdef0".into()),
        resource_type: Some("EBS".into()),
        vault_name: Some("prod-vault".into()),
        status_message: None,
        creation_date: now() - Duration::hours(hours_ago),
    }
}

fn failed(id: &str, hours_ago: i64, reason: &str) -> DigestJob {
    DigestJob { status_message: Some(reason.into()), ..job(AlertKind::BackupJob, id, "FAILED", hours_ago) }
}

fn manifest(hours_ago: i64, bytes: u64) -> Manifest {
    let mut m = sample_manifest();
    m.finished_at = now() - Duration::hours(hours_ago);
    m.objects[0].size = bytes;
    m
}

fn digest(jobs: &[DigestJob], manifests: &[Manifest]) -> Digest {
    summarize(Some("123456789012".into()), "eu-west-1", now(), jobs, manifests)
}

fn day() -> Digest {
    digest(
        &[
            job(AlertKind::BackupJob, "b1", "COMPLETED", 2),
            job(AlertKind::BackupJob, "b2", "COMPLETED", 3),
            failed("b3", 5, "Insufficient privileges to perform snapshot"),
            job(AlertKind::CopyJob, "c1", "COMPLETED", 4),
            DigestJob { vault_name: Some("central".into()), ..job(AlertKind::CopyJob, "c2", "PARTIAL", 1) },
            job(AlertKind::RestoreJob, "r1", "ABORTED", 10),
        ],
        &[manifest(1, 1 << 30), manifest(20, 512 << 20)],
    )
}

#[test]
fn counts_jobs_by_kind_and_state() {
    let d = day();
    assert_eq!(d.counts[&AlertKind::BackupJob], BTreeMap::from([("COMPLETED".into(), 2), ("FAILED".into(), 1)]));
    assert_eq!(d.counts[&AlertKind::CopyJob], BTreeMap::from([("COMPLETED".into(), 1), ("PARTIAL".into(), 1)]));
    assert_eq!(d.counts[&AlertKind::RestoreJob], BTreeMap::from([("ABORTED".into(), 1)]));
    assert_eq!((d.archives, d.archive_bytes), (2, (1 << 30) + (512 << 20)));
    assert_eq!(d.since, now() - Duration::hours(24));
    assert_eq!(d.until, now());
}

#[test]
fn failures_come_first_oldest_first_then_warnings() {
    let d = day();
    let ids: Vec<&str> = d.failures.iter().map(|j| j.job_id.as_str()).collect();
    assert_eq!(ids, ["r1", "b3", "c2"]);
}

#[test]
fn window_includes_its_start_and_excludes_now() {
    let at_start = job(AlertKind::BackupJob, "start", "COMPLETED", 24);
    let older = DigestJob { creation_date: now() - Duration::hours(24) - Duration::seconds(1), ..at_start.clone() };
    let at_now = job(AlertKind::BackupJob, "now", "FAILED", 0);
    let d = digest(&[at_start, older, at_now], &[manifest(25, 7), manifest(0, 9), manifest(24, 11)]);
    assert_eq!(d.counts[&AlertKind::BackupJob], BTreeMap::from([("COMPLETED".into(), 1)]));
    assert!(d.failures.is_empty(), "a job created at `now` is tomorrow's: {:?}", d.failures);
    assert_eq!((d.archives, d.archive_bytes), (1, 11));
}

#[test]
fn recovery_point_events_are_not_jobs() {
    let d = digest(&[job(AlertKind::RecoveryPoint, "rp", "EXPIRED", 1)], &[]);
    assert!(d.is_empty());
    assert!(d.failures.is_empty());
}

#[test]
fn completed_with_issues_is_a_warning_but_an_empty_status_message_is_not() {
    let issues = DigestJob {
        status_message: Some("Windows VSS failed".into()),
        ..job(AlertKind::BackupJob, "w", "COMPLETED", 1)
    };
    let empty = DigestJob { status_message: Some(String::new()), ..job(AlertKind::BackupJob, "e", "COMPLETED", 1) };
    let d = digest(&[issues, empty], &[]);
    assert_eq!(d.failures.len(), 1);
    assert_eq!(d.failures[0].job_id, "w");
    assert_eq!(d.severity(), Severity::Warning);
    assert!(d.title().ends_with("2 jobs OK, 1 warning"), "{}", d.title());
}

#[test]
fn an_expired_job_is_a_failure() {
    let d = digest(&[job(AlertKind::BackupJob, "x", "EXPIRED", 1)], &[]);
    assert_eq!(d.severity(), Severity::Failure);
    assert!(d.title().ends_with("1 failed of 1 job"), "{}", d.title());
}

#[test]
fn titles_say_the_verdict() {
    assert_eq!(day().title(), "AWS Backup daily digest 123456789012 / eu-west-1: 2 failed of 6 jobs, 1 warning");
    let ok = digest(&[job(AlertKind::BackupJob, "b", "COMPLETED", 1)], &[]);
    assert_eq!(ok.title(), "AWS Backup daily digest 123456789012 / eu-west-1: 1 job OK");
    assert_eq!(ok.severity(), Severity::Success);
    let empty = summarize(None, "us-east-1", now(), &[], &[]);
    assert_eq!(empty.title(), "AWS Backup daily digest us-east-1: no jobs");
    assert_eq!(empty.severity(), Severity::Info);
    let only_archives = digest(&[], &[manifest(1, 5)]);
    assert!(!only_archives.is_empty());
    assert_eq!(only_archives.severity(), Severity::Success);
}

#[test]
fn silence_decides_on_emptiness_or_failures() {
    let empty = digest(&[], &[]);
    let clean = digest(&[job(AlertKind::BackupJob, "b", "COMPLETED", 1)], &[]);
    let bad = day();
    let sent = |d: &Digest, s| d.worth_sending(s);
    assert!(
        sent(&empty, DigestSilence::Never) && sent(&clean, DigestSilence::Never) && sent(&bad, DigestSilence::Never)
    );
    assert!(!sent(&empty, DigestSilence::WhenEmpty));
    assert!(sent(&clean, DigestSilence::WhenEmpty) && sent(&bad, DigestSilence::WhenEmpty));
    assert!(!sent(&empty, DigestSilence::WhenNoFailures) && !sent(&clean, DigestSilence::WhenNoFailures));
    assert!(sent(&bad, DigestSilence::WhenNoFailures));
}

#[test]
fn silence_parses_its_three_words_and_names_a_wrong_one() {
    for s in [DigestSilence::Never, DigestSilence::WhenEmpty, DigestSilence::WhenNoFailures] {
        assert_eq!(s.to_string().parse::<DigestSilence>(), Ok(s));
    }
    assert_eq!(" When-Empty ".parse::<DigestSilence>(), Ok(DigestSilence::WhenEmpty));
    let error = "true".parse::<DigestSilence>().unwrap_err();
    assert!(error.to_string().contains("\"true\"") && error.to_string().contains("when-empty"), "{error}");
}

#[test]
fn slack_lists_counts_failures_with_reasons_and_links() {
    let payload = day().slack_payload();
    assert!(payload["text"].as_str().unwrap().starts_with(":rotating_light: AWS Backup daily digest"), "{payload}");
    let attachment = &payload["attachments"][0];
    assert_eq!(attachment["color"], "#D0021B");
    let blocks = attachment["blocks"].as_array().unwrap();
    let fields: Vec<&str> =
        blocks[1]["fields"].as_array().unwrap().iter().map(|f| f["text"].as_str().unwrap()).collect();
    assert_eq!(
        fields,
        [
            "*Backup jobs*\n2 COMPLETED, 1 FAILED",
            "*Copy jobs*\n1 COMPLETED, 1 PARTIAL",
            "*Restore jobs*\n1 ABORTED",
            "*Archives written*\n2 (1.5 GiB)",
        ]
    );
    let failure = &blocks[3];
    let text = failure["text"]["text"].as_str().unwrap();
    assert!(
        text.starts_with(":rotating_light: *Backup job FAILED: EBS vol-0123456789abcdef0 in prod-vault (job b3)*"),
        "{text}"
    );
    assert!(text.contains("\n>Insufficient privileges to perform snapshot"), "{text}");
    assert_eq!(
        failure["accessory"]["url"],
        "https://eu-west-1.console.aws.amazon.com/backup/home?region=eu-west-1#/jobs/backup/details/b3"
    );
    assert!(blocks[4]["text"]["text"].as_str().unwrap().starts_with(":warning: *Copy job PARTIAL"), "{payload}");
    let context = blocks.last().unwrap()["elements"][0]["text"].as_str().unwrap();
    assert_eq!(context, "backup-archiver | 2026-11-21 07:00 UTC to 2026-11-22 07:00 UTC");
}

#[test]
fn slack_escapes_what_aws_wrote() {
    let d = digest(&[failed("b", 1, "role <arn> & co")], &[]);
    let text = d.slack_payload().to_string();
    assert!(text.contains("role &lt;arn&gt; &amp; co"), "{text}");
}

#[test]
fn an_empty_day_says_so() {
    let d = digest(&[], &[]);
    let blocks = d.slack_payload()["attachments"][0]["blocks"].as_array().unwrap().clone();
    assert_eq!(blocks.len(), 3, "headline, counts, context: {blocks:?}");
    assert_eq!(blocks[1]["fields"][0]["text"], "*Archives written*\n0 (0 B)");
    assert!(!d.text_message().contains("Needs a look"));
}

#[test]
fn failures_past_the_cap_are_counted() {
    let jobs: Vec<DigestJob> = (0..MAX_LISTED_FAILURES + 3).map(|i| failed(&format!("j{i:02}"), 1, "x")).collect();
    let d = digest(&jobs, &[]);
    assert_eq!(d.failures.len(), MAX_LISTED_FAILURES + 3);
    let blocks = d.slack_payload()["attachments"][0]["blocks"].as_array().unwrap().clone();
    assert_eq!(blocks.len(), 2 + MAX_LISTED_FAILURES + 2);
    assert_eq!(blocks[blocks.len() - 2]["text"]["text"], "… and 3 more");
    assert!(blocks.len() <= 50, "Slack's block limit");
    assert!(d.text_message().contains("… and 3 more"));
    assert_eq!(d.text_message().matches("  Reason: x").count(), MAX_LISTED_FAILURES);
    assert!(d.chatbot_notification()["content"]["description"].as_str().unwrap().ends_with("… and 3 more"));
}

#[test]
fn text_lists_every_failure_with_reason_and_link() {
    let d = day();
    let text = d.text_message();
    assert!(text.starts_with(&format!("{}\n\nBackup jobs: 2 COMPLETED, 1 FAILED\n", d.title())), "{text}");
    assert!(text.contains("Archives written: 2 (1.5 GiB)\n"), "{text}");
    assert!(text.contains(
        "- Backup job FAILED: EBS vol-0123456789abcdef0 in prod-vault (job b3)\n  Reason: Insufficient privileges to perform snapshot\n  Open job: https://eu-west-1.console.aws.amazon.com/backup/home?region=eu-west-1#/jobs/backup/details/b3\n"
    ), "{text}");
    assert!(text.contains("- Restore job ABORTED"), "{text}");
    assert!(text.contains("#/jobs/copy/details/c2"), "{text}");
    assert_eq!(d.render(Format::Text)["subject"], d.sns_subject());
    assert!(d.sns_subject().len() <= MAX_SNS_SUBJECT_CHARS);
}

#[test]
fn chatbot_notification_has_the_custom_shape() {
    let n = day().render(Format::Chatbot);
    assert_eq!(n["version"], "1.0");
    assert_eq!(n["source"], "custom");
    assert_eq!(n["content"]["textType"], "client-markdown");
    let description = n["content"]["description"].as_str().unwrap();
    assert!(description.starts_with("*Backup jobs:* `2 COMPLETED, 1 FAILED`"), "{description}");
    assert!(description.contains("• Backup job FAILED: EBS vol-0123456789abcdef0 in prod-vault (job b3): Insufficient"));
    assert_eq!(n["content"]["nextSteps"].as_array().unwrap().len(), 3);
    assert_eq!(n["metadata"]["threadId"], "daily-digest-2026-11-22");
    assert_eq!(n["metadata"]["additionalContext"]["archives"], 2);
    assert_eq!(n["metadata"]["additionalContext"]["severity"], "failure");
}

#[test]
fn slack_render_is_the_payload() {
    let d = day();
    assert_eq!(d.render(Format::Slack), d.slack_payload());
}

#[test]
fn a_job_without_resource_or_vault_still_reads() {
    let bare = DigestJob { resource_arn: None, resource_type: None, vault_name: None, ..failed("z", 1, "") };
    let text = digest(&[bare], &[]).text_message();
    assert!(text.contains("- Backup job FAILED (job z)\n  Open job:"), "{text}");
    assert!(!text.contains("Reason:"), "an empty status message is no reason: {text}");
}
