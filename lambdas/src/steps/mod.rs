//! The steps of the flows, one module per Lambda function. A step's handler name is its module's
//! name with `-` for `_` (`create_volume` serves `create-volume`); the template's functions name
//! them in `Handler`, and `infra/tests` checks that it deploys exactly these.

// Declared here rather than by `steps!`, so that rustfmt (which does not expand macros) formats
// and checks them; `every_module_under_steps_is_a_handler` keeps this list and `steps!` in step.
pub mod check_database;
pub mod check_export;
pub mod check_table_export;
pub mod check_volume;
pub mod claim_snapshot;
pub mod create_volume;
pub mod daily_digest;
pub mod delete_database;
pub mod delete_recovery_point;
pub mod delete_table;
pub mod delete_volume;
pub mod drill_report;
pub mod export_table;
pub mod notify;
pub mod pick_drill;
pub mod plan;
pub mod prepare_table;
pub mod relay_alert;
pub mod restore_database;
pub mod set_database_password;
pub mod shorten_retention;
pub mod sns_trigger;
pub mod start_copy;
pub mod start_export;
pub mod start_table_export;
pub mod verify;

/// Names each step's handler next to its module, so the list of names and the dispatch cannot
/// disagree.
macro_rules! steps {
    ($($module:ident => $handler:literal),* $(,)?) => {
        /// Every handler name this binary serves.
        pub const HANDLERS: &[&str] = &[$($handler),*];

        /// Runs the step `handler` names until the runtime stops it; an unknown name fails at
        /// once, before any client is built.
        pub async fn run(handler: &str) -> Result<(), lambda_runtime::Error> {
            match handler {
                $($handler => $module::run().await,)*
                _ => Err(UnknownHandler { handler: handler.to_string() }.into()),
            }
        }
    };
}

steps! {
    check_database => "check-database",
    check_export => "check-export",
    check_table_export => "check-table-export",
    check_volume => "check-volume",
    claim_snapshot => "claim-snapshot",
    create_volume => "create-volume",
    daily_digest => "daily-digest",
    delete_database => "delete-database",
    delete_recovery_point => "delete-recovery-point",
    delete_table => "delete-table",
    delete_volume => "delete-volume",
    drill_report => "drill-report",
    export_table => "export-table",
    notify => "notify",
    pick_drill => "pick-drill",
    plan => "plan",
    prepare_table => "prepare-table",
    relay_alert => "relay-alert",
    restore_database => "restore-database",
    set_database_password => "set-database-password",
    shorten_retention => "shorten-retention",
    sns_trigger => "sns-trigger",
    start_copy => "start-copy",
    start_export => "start-export",
    start_table_export => "start-table-export",
    verify => "verify",
}

/// The function's `Handler` names no step of this binary: a template or deployment error.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown handler {handler:?} (the function's Handler, passed in _HANDLER); the handlers are: {}",
    HANDLERS.join(", ")
)]
pub struct UnknownHandler {
    pub handler: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unknown_handler_fails_at_once_naming_every_handler() {
        for handler in ["", "bootstrap", "Plan"] {
            let error = run(handler).await.expect_err("no such step").to_string();
            assert!(error.contains(&format!("{handler:?}")), "{error}");
            for known in HANDLERS {
                assert!(error.contains(known), "{known} missing from: {error}");
            }
        }
    }

    #[test]
    fn every_module_under_steps_is_a_handler() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/steps");
        let mut modules: Vec<String> = std::fs::read_dir(&dir)
            .expect("src/steps")
            .map(|entry| entry.expect("an entry").file_name().to_string_lossy().into_owned())
            .filter_map(|name| name.strip_suffix(".rs").map(str::to_string))
            .filter(|name| name != "mod")
            .map(|name| name.replace('_', "-"))
            .collect();
        modules.sort();
        assert_eq!(modules, HANDLERS, "src/steps and the steps! list disagree");
    }
}
