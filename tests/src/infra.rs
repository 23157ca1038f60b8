//! The templates under `infra/`, read as YAML for the tests that check them (CloudFormation's
//! short forms such as `!Sub` come back as tagged values).

use serde_norway::Value;

/// `infra/<name>` as YAML.
pub fn load(name: &str) -> Value {
    let path = crate::moto::workspace_root().join("infra").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

/// A string or a list of strings (an IAM `Action`, `Resource`, a condition's values), as a list.
pub fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        _ => vec![],
    }
}
