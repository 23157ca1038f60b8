//! What recording and notifying need of a check's evidence, whatever the check, and the catalog
//! of checks they ask it through. Each check's evidence type says it itself ([`Explain`]), beside
//! its detector; the model keeps evidence as the JSON its check wrote
//! ([`crate::model::Evidence`]) and names no check. The layers above ask a [`Catalog`]: the
//! confirmation page's sentence and drawing, the "cannot be undone" warnings (Slack, the page),
//! what to look at by hand (Slack), a findings table's columns, the rules a finding id may name, a
//! snooze closes and a report lists, and which rule takes which action by itself.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::model::{ActionKind, Finding, FindingIdParts};

/// A check's evidence, as a person reads it.
pub trait Explain {
    /// What the resource is, in a word or two (`t3.large`, `gp2 100G`, `bucket`): a findings
    /// table's kind column.
    fn what(&self) -> String;

    /// The numbers the check judged, in one short line: a findings table's last column.
    fn summary(&self) -> String;

    /// Why the rule flagged `finding` (whose evidence this is), in one sentence a person reads,
    /// numbers with their units.
    fn why(&self, finding: &Finding) -> String;

    /// Whether carrying out the finding's action could not be undone (as the policy in force at
    /// detection said).
    fn cannot_be_undone(&self) -> bool {
        false
    }

    /// What a person should look at by hand before deciding, one sentence each (where AWS's own
    /// reading of a resource differs from the check's, say).
    fn to_look_at(&self) -> Vec<String> {
        Vec::new()
    }

    /// What the check judged, drawn for the confirmation page: an inline SVG of numbers only (no
    /// text from outside); `None` when the check draws nothing.
    fn chart_svg(&self) -> Option<String> {
        None
    }
}

/// The evidence type of one check: what it explains, and the rule whose findings carry it.
pub trait CheckEvidence: Explain + Serialize + DeserializeOwned + 'static {
    /// The rule (`idle-ec2`, …) whose findings carry this evidence.
    const RULE: &'static str;

    /// The actions the rule's findings take on a resource, by themselves in its automatic mode
    /// (none for a check that only notifies): an unsealed record of any other action under this
    /// rule is not one this deployment writes.
    const ACTS: &'static [ActionKind] = &[];
}

/// A check as the layers above the detectors know it: its rule, and its evidence explained.
pub trait Check: Sync {
    /// The rule's name (`idle-ec2`, …).
    fn rule(&self) -> &'static str;

    /// The evidence explained, when it is this check's; `None` otherwise (evidence written by a
    /// version this one cannot read).
    fn explain(&self, evidence: &crate::model::Evidence) -> Option<Box<dyn Explain>>;

    /// The actions its findings take on a resource ([`CheckEvidence::ACTS`]).
    fn acts(&self) -> &'static [ActionKind];
}

/// The [`Check`] of an evidence type: `&Evidenced::<IdleEc2Evidence>::CHECK`.
pub struct Evidenced<T>(PhantomData<fn() -> T>);

impl<T> Evidenced<T> {
    pub const CHECK: Evidenced<T> = Evidenced(PhantomData);
}

impl<T: CheckEvidence> Check for Evidenced<T> {
    fn rule(&self) -> &'static str {
        T::RULE
    }

    fn explain(&self, evidence: &crate::model::Evidence) -> Option<Box<dyn Explain>> {
        evidence.get::<T>().map(|e| Box::new(e) as Box<dyn Explain>)
    }

    fn acts(&self) -> &'static [ActionKind] {
        T::ACTS
    }
}

/// Every check this version runs, by rule: the one list the rest asks.
pub struct Catalog {
    checks: &'static [&'static dyn Check],
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.rules()).finish()
    }
}

impl Catalog {
    pub const fn new(checks: &'static [&'static dyn Check]) -> Catalog {
        Catalog { checks }
    }

    /// Every rule, in the catalog's order.
    pub fn rules(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.checks.iter().map(|c| c.rule())
    }

    /// Whether `rule` is one of this version's.
    pub fn knows(&self, rule: &str) -> bool {
        self.get(rule).is_some()
    }

    /// The check of `rule`.
    pub fn get(&self, rule: &str) -> Option<&'static dyn Check> {
        self.checks.iter().copied().find(|c| c.rule() == rule)
    }

    /// Whether `rule`'s findings take `action` on a resource by themselves.
    pub fn takes(&self, rule: &str, action: ActionKind) -> bool {
        self.get(rule).is_some_and(|c| c.acts().contains(&action))
    }

    /// The finding's evidence explained by its rule's check; `None` for a rule this version does
    /// not run, or evidence its check cannot read.
    pub fn explain(&self, finding: &Finding) -> Option<Box<dyn Explain>> {
        self.get(&finding.rule)?.explain(&finding.evidence)
    }

    /// Why the rule flagged the finding, in one sentence a person reads (numbers with their
    /// units): what the confirmation page leads with.
    pub fn why(&self, finding: &Finding) -> String {
        match self.explain(finding) {
            Some(e) => e.why(finding),
            None => format!(
                "{} proposes to {} {}.",
                finding.rule,
                finding.action.as_str(),
                finding.resource.id
            ),
        }
    }

    /// Whether carrying out the finding's action could not be undone (a volume deleted without a
    /// snapshot, as the policy in force at detection said).
    pub fn cannot_be_undone(&self, finding: &Finding) -> bool {
        self.explain(finding).is_some_and(|e| e.cannot_be_undone())
    }

    /// What a person should look at by hand before deciding on the finding.
    pub fn to_look_at(&self, finding: &Finding) -> Vec<String> {
        self.explain(finding).map(|e| e.to_look_at()).unwrap_or_default()
    }

    /// What the resource is and the numbers its check judged, for a findings table: the evidence
    /// as JSON for a check this version does not run.
    pub fn summary(&self, finding: &Finding) -> (String, String) {
        match self.explain(finding) {
            Some(e) => (e.what(), e.summary()),
            None => (String::new(), finding.evidence.as_json().to_string()),
        }
    }

    /// What the finding's check judged, drawn (see [`Explain::chart_svg`]).
    pub fn chart_svg(&self, finding: &Finding) -> Option<String> {
        self.explain(finding)?.chart_svg()
    }

    /// The parts of a finding id of one of this version's rules; `None` for anything else.
    pub fn parse_id<'a>(&self, id: &'a str) -> Option<FindingIdParts<'a>> {
        Finding::parse_id(id).filter(|p| self.knows(p.rule))
    }
}
