//! What recording and notifying need of a check's evidence, whatever the check: each check's
//! evidence type says it itself, in its own module. The confirmation page's sentence and the
//! "cannot be undone" warnings (Slack, the page) ask through it without naming a check; Slack's
//! public-bucket block and the page's idle chart still read their check's evidence directly, until
//! the checks have folders of their own (issue 27).

use crate::model::Finding;

/// A check's evidence, as a person reads it.
pub trait Explain {
    /// Why the rule flagged `finding` (whose evidence this is), in one sentence a person reads,
    /// numbers with their units.
    fn why(&self, finding: &Finding) -> String;

    /// Whether carrying out the finding's action could not be undone (as the policy in force at
    /// detection said).
    fn cannot_be_undone(&self) -> bool {
        false
    }
}
