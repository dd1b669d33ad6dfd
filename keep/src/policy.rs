//! The retention policy: a TOML file of periods by principal, target, account or tag, and what
//! it decides for one subject ([`Policy::decide`]). Pure: reading the file (and the tags file
//! it names) is the only I/O, in [`Policy::load`].

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use chrono::Datelike as _;
use serde::{Deserialize, Serialize};

use sessionlake_storage::ensure;

use crate::error::{Context as _, ErrorKind as _, KeepError, KeepErrorKind, KeepResult};

/// One day, µs.
pub const DAY_MICROS: i64 = 86_400_000_000;

/// What happens to a session whose rows expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Remove its objects (its session keys go with them).
    Delete,
    /// Destroy its session keys first, then remove its objects: copies elsewhere are useless.
    Shred,
}

impl Action {
    /// Returns the action's name in policies and plans (`delete`, `shred`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Delete => "delete",
            Action::Shred => "shred",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: u32,
    /// The targets' tags for `tag` rules: the JSON `aws ec2 describe-tags` prints, relative
    /// to the policy file.
    tags_file: Option<String>,
    default: DefaultFile,
    #[serde(default)]
    rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultFile {
    commands: String,
    raw: Option<String>,
    action: Option<Action>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: String,
    principal: Option<String>,
    target: Option<String>,
    account: Option<String>,
    /// `Key=Value` of a tag of the target (`*` patterns), from `tags_file`.
    tag: Option<String>,
    commands: Option<String>,
    raw: Option<String>,
    action: Option<Action>,
}

/// A pattern with `*` for any text; anything else matches itself.
#[derive(Debug, Clone)]
pub struct Glob {
    regex: regex::Regex,
}

impl Glob {
    /// Compiles `text`, whose `*`s match any text.
    pub fn new(text: &str) -> KeepResult<Glob> {
        let pattern = format!("^{}$", regex::escape(text).replace(r"\*", ".*"));
        let regex = regex::Regex::new(&pattern).map_err(invalid)?;
        Ok(Glob { regex })
    }

    /// Returns whether `value` is present and matches.
    pub fn matches(&self, value: Option<&str>) -> bool {
        value.is_some_and(|value| self.regex.is_match(value))
    }
}

/// How long a rule keeps something: days (`90d`, `12w`) or calendar years (`7y`: until the same
/// date seven years on, leap days included, never a day short).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// Whole days.
    Days(i64),
    /// Calendar years.
    Years(i64),
}

impl Period {
    /// Length in quarter days, a year counting 365.25 days: orders periods of either unit.
    fn quarter_days(self) -> i64 {
        match self {
            Period::Days(days) => days * 4,
            Period::Years(years) => years * 1461,
        }
    }

    /// The end of this period from `start` (µs): the first instant something that began at
    /// `start` may go. A year from 29 February ends on 1 March.
    pub fn end(self, start: i64) -> i64 {
        match self {
            Period::Days(days) => start.saturating_add(days.saturating_mul(DAY_MICROS)),
            Period::Years(years) => {
                let Some(begin) = chrono::DateTime::from_timestamp_micros(start) else {
                    return i64::MAX;
                };
                let months = u32::try_from(years.saturating_mul(12)).unwrap_or(u32::MAX);
                match begin.checked_add_months(chrono::Months::new(months)) {
                    // Clamped to the month's last day (29 February to 28 February): one more day.
                    Some(end) if end.day() != begin.day() => {
                        (end + chrono::Days::new(1)).timestamp_micros()
                    }
                    Some(end) => end.timestamp_micros(),
                    None => i64::MAX,
                }
            }
        }
    }

    /// Whole days from `start` to the end of this period.
    pub fn days_from(self, start: i64) -> i64 {
        (self.end(start).saturating_sub(start)).div_euclid(DAY_MICROS)
    }
}

impl PartialOrd for Period {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Period {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.quarter_days().cmp(&other.quarter_days())
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Period::Days(days) => write!(f, "{days}d"),
            Period::Years(years) => write!(f, "{years}y"),
        }
    }
}

/// Parses a period (`90d`, `12w`, `7y`; 1d to 100y); errors name `field`.
pub fn parse_period(field: &str, text: &str) -> KeepResult<Period> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let not_a_period = || {
        let message =
            format!("{field}: {text:?} is not a period (a number and d, w or y: 90d, 12w, 7y)");
        KeepErrorKind::Invalid.message(message)
    };
    let number: i64 = number.parse().map_err(|_| not_a_period())?;
    let period = match unit {
        "d" => Period::Days(number),
        "w" => Period::Days(number.saturating_mul(7)),
        "y" => Period::Years(number),
        _ => return Err(not_a_period()),
    };
    ensure!(
        number > 0 && period <= Period::Years(100),
        KeepErrorKind::Invalid,
        "{field}: {text:?} must be 1d to 100y"
    );
    Ok(period)
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) name: String,
    principal: Option<Glob>,
    target: Option<Glob>,
    account: Option<Glob>,
    tag: Option<Glob>,
    commands: Period,
    pub(crate) raw: Period,
    action: Action,
}

/// A validated retention policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) default: Rule,
    rules: Vec<Rule>,
    tags_file: Option<String>,
    /// Each target's tags as `Key=Value`, from the policy's `tags_file`.
    tags: HashMap<String, Vec<String>>,
    /// SHA-256 (hex) of the policy file, recorded in the commits it makes.
    sha256: String,
}

/// Who a rule is about.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Subject {
    /// The IAM principal (ARN) or user.
    pub principal: Option<String>,
    /// The instance or other target.
    pub target: Option<String>,
    /// The AWS account.
    pub account: Option<String>,
}

/// What the policy decides for one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The rule that gives the rows' period.
    pub rule: String,
    /// How long the rows (and the session) are kept.
    pub commands: Period,
    /// How long the original transcript is kept.
    pub raw: Period,
    /// What happens when the rows expire.
    pub action: Action,
    /// Other rules that applied with different terms (the longest period wins).
    pub conflicts: Vec<String>,
}

impl Policy {
    /// Returns the SHA-256 (hex) of the policy's text, recorded in the commits it makes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Returns the longest period any rule keeps anything, in whole days (a year counts 365.25
    /// days, rounded up): how long the commits this policy makes are locked on an S3 bucket
    /// with Object Lock, unless `--object-lock-days` says otherwise.
    pub fn longest_days(&self) -> u32 {
        let longest = std::iter::once(&self.default)
            .chain(&self.rules)
            .flat_map(|rule| [rule.commands, rule.raw])
            .max()
            .unwrap_or(self.default.commands);
        u32::try_from(longest.quarter_days().saturating_add(3) / 4).unwrap_or(u32::MAX)
    }

    /// Reads and validates a policy file; errors name the file and the field.
    pub fn load(path: &Path) -> KeepResult<Policy> {
        let text = std::fs::read_to_string(path)
            .with_context_kind(KeepErrorKind::Invalid, || {
                format!("failed to read policy {}", path.display())
            })?;
        let mut policy = Policy::parse(&text).with_context_kind(KeepErrorKind::Invalid, || {
            format!("policy {} is not valid", path.display())
        })?;
        if let Some(tags_file) = &policy.tags_file {
            let tags_path = path.parent().unwrap_or(Path::new(".")).join(tags_file);
            policy.tags =
                read_tags(&tags_path).with_context_kind(KeepErrorKind::Invalid, || {
                    format!(
                        "policy {}: tags_file {} is not usable",
                        path.display(),
                        tags_path.display()
                    )
                })?;
        }
        Ok(policy)
    }

    /// Parses and validates a policy's text (a `tags_file` it names is not read: see
    /// [`Policy::load`]).
    pub fn parse(text: &str) -> KeepResult<Policy> {
        let file: PolicyFile = toml::from_str(text).map_err(invalid)?;
        ensure!(
            file.version == 1,
            KeepErrorKind::Invalid,
            "version {}: this build reads version 1",
            file.version
        );
        let commands = parse_period("default.commands", &file.default.commands)?;
        let raw = match &file.default.raw {
            Some(raw) => parse_period("default.raw", raw)?,
            None => commands,
        };
        let default = Rule {
            name: "default".to_string(),
            principal: None,
            target: None,
            account: None,
            tag: None,
            commands,
            raw,
            action: file.default.action.unwrap_or(Action::Delete),
        };
        check_raw(&default)?;
        let mut names = BTreeSet::new();
        let mut rules = Vec::new();
        for (index, rule) in file.rules.into_iter().enumerate() {
            let field = |name: &str| format!("rules[{index}] ({}).{name}", rule.name);
            ensure!(
                !rule.name.trim().is_empty(),
                KeepErrorKind::Invalid,
                "rules[{index}].name is empty"
            );
            ensure!(
                names.insert(rule.name.clone()),
                KeepErrorKind::Invalid,
                "rules[{index}]: a second rule named {:?}",
                rule.name
            );
            ensure!(
                rule.principal.is_some()
                    || rule.target.is_some()
                    || rule.account.is_some()
                    || rule.tag.is_some(),
                KeepErrorKind::Invalid,
                "rules[{index}] ({}) matches nothing: give principal, target, account or tag",
                rule.name
            );
            ensure!(
                rule.tag.is_none() || file.tags_file.is_some(),
                KeepErrorKind::Invalid,
                "rules[{index}] ({}).tag needs tags_file (the targets' tags)",
                rule.name
            );
            if let Some(tag) = &rule.tag {
                ensure!(
                    tag.contains('='),
                    KeepErrorKind::Invalid,
                    "rules[{index}] ({}).tag: {tag:?} is not Key=Value",
                    rule.name
                );
            }
            let glob = |value: &Option<String>, name: &str| -> KeepResult<Option<Glob>> {
                let glob = value.as_deref().map(Glob::new).transpose();
                glob.with_context_kind(KeepErrorKind::Invalid, || field(name))
            };
            let commands = match &rule.commands {
                Some(text) => parse_period(&field("commands"), text)?,
                None => default.commands,
            };
            let raw = match &rule.raw {
                Some(text) => parse_period(&field("raw"), text)?,
                None => default.raw.min(commands),
            };
            let parsed = Rule {
                principal: glob(&rule.principal, "principal")?,
                target: glob(&rule.target, "target")?,
                account: glob(&rule.account, "account")?,
                tag: glob(&rule.tag, "tag")?,
                name: rule.name,
                commands,
                raw,
                action: rule.action.unwrap_or(default.action),
            };
            check_raw(&parsed)?;
            rules.push(parsed);
        }
        Ok(Policy {
            default,
            rules,
            tags: HashMap::new(),
            tags_file: file.tags_file,
            sha256: sessionlake_storage::store::sha256_hex(text.as_bytes()),
        })
    }

    /// The rules that apply to `subject`, and what they decide together: the longest period of
    /// each kind wins, and shred wins over delete.
    pub fn decide(&self, subject: &Subject) -> Decision {
        let applicable: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|rule| {
                [
                    (&rule.principal, &subject.principal),
                    (&rule.target, &subject.target),
                    (&rule.account, &subject.account),
                ]
                .iter()
                .all(|(glob, value)| {
                    glob.as_ref().is_none_or(|glob| glob.matches(value.as_deref()))
                }) && rule.tag.as_ref().is_none_or(|glob| {
                    let tags = subject.target.as_ref().and_then(|target| self.tags.get(target));
                    tags.is_some_and(|tags| tags.iter().any(|tag| glob.matches(Some(tag))))
                })
            })
            .collect();
        let Some(first) = applicable.first() else {
            return Decision {
                rule: self.default.name.clone(),
                commands: self.default.commands,
                raw: self.default.raw,
                action: self.default.action,
                conflicts: Vec::new(),
            };
        };
        let commands = applicable.iter().map(|rule| rule.commands).max().unwrap_or(first.commands);
        let raw = applicable.iter().map(|rule| rule.raw).max().unwrap_or(first.raw);
        let action = applicable.iter().map(|rule| rule.action).max().unwrap_or(first.action);
        // The rule named is the one that gives the rows' period.
        let winner = applicable.iter().find(|rule| rule.commands == commands).unwrap_or(first);
        let conflicts = applicable
            .iter()
            .filter(|rule| (rule.commands, rule.raw, rule.action) != (commands, raw, action))
            .map(|rule| rule.name.clone())
            .collect();
        Decision { rule: winner.name.clone(), commands, raw, action, conflicts }
    }
}

/// Reads `aws ec2 describe-tags --output json`: each resource's tags as `Key=Value`.
pub(crate) fn read_tags(path: &Path) -> KeepResult<HashMap<String, Vec<String>>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Tags {
        tags: Vec<Tag>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Tag {
        key: String,
        resource_id: String,
        #[serde(default)]
        value: String,
    }
    let text = std::fs::read_to_string(path).map_err(invalid)?;
    let tags: Tags = serde_json::from_str(&text)
        .context_kind(KeepErrorKind::Invalid, "not the JSON of `aws ec2 describe-tags` ({\"Tags\": [{\"Key\", \"ResourceId\", \"Value\"}]})")?;
    let mut by_resource: HashMap<String, Vec<String>> = HashMap::new();
    for tag in tags.tags {
        by_resource.entry(tag.resource_id).or_default().push(format!("{}={}", tag.key, tag.value));
    }
    Ok(by_resource)
}

/// Passes on an error of reading a policy (its TOML, a pattern, its tags file) as it is.
fn invalid(error: impl Into<sessionlake_storage::error::Cause>) -> KeepError {
    KeepErrorKind::Invalid.passing(error)
}

fn check_raw(rule: &Rule) -> KeepResult<()> {
    ensure!(
        rule.raw <= rule.commands,
        KeepErrorKind::Invalid,
        "{}: raw ({}) outlives commands ({}): an original is never kept without its rows",
        rule.name,
        rule.raw,
        rule.commands
    );
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Three rules: the default (rows 3y, original 1y, delete), contractors (1y, 90d, shred)
    /// and prod targets (7y, 2y, the default's delete).
    pub(crate) const POLICY: &str = r#"
version = 1
[default]
commands = "3y"
raw = "1y"

[[rules]]
name = "contractors"
principal = "arn:aws:iam::111122223333:user/contractor-*"
commands = "1y"
raw = "90d"
action = "shred"

[[rules]]
name = "prod"
target = "i-0prod*"
commands = "7y"
raw = "2y"
"#;

    fn subject(principal: &str, target: &str) -> Subject {
        Subject { principal: Some(principal.into()), target: Some(target.into()), account: None }
    }

    pub(crate) fn micros(time: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(time).expect("time").timestamp_micros()
    }

    #[test]
    fn test_years_are_calendar_years() {
        // A year from 2023-03-01 ends on 2024-03-01: 366 days, never 365.
        let start = micros("2023-03-01T10:00:00Z");
        let year = Period::Years(1);
        assert_eq!(year.end(start), micros("2024-03-01T10:00:00Z"));
        assert_eq!(year.days_from(start), 366);
        assert!(micros("2024-02-29T10:00:00Z") < year.end(start), "a day short");
        // From 29 February, a year ends on 1 March (no 29 February to land on).
        assert_eq!(year.end(micros("2024-02-29T00:00:00Z")), micros("2025-03-01T00:00:00Z"));
        assert_eq!(
            Period::Years(4).end(micros("2024-02-29T00:00:00Z")),
            micros("2028-02-29T00:00:00Z")
        );
        assert_eq!(Period::Days(90).days_from(start), 90);
        // Ordering across units: 365 days is shorter than a year, 366 longer.
        assert!(Period::Days(365) < year && year < Period::Days(366));
        assert_eq!(parse_period("f", "12w").expect("weeks"), Period::Days(84));
        assert!(parse_period("f", "101y").is_err() && parse_period("f", "0d").is_err());
    }

    #[test]
    fn test_tag_rules_match_the_targets_tags() {
        let text = r#"
version = 1
tags_file = "tags.json"
[default]
commands = "1y"
[[rules]]
name = "pci"
tag = "Compliance=pci*"
commands = "7y"
"#;
        let mut policy = Policy::parse(text).expect("valid");
        let dir = tempfile::tempdir().expect("tempdir");
        let tags = dir.path().join("tags.json");
        std::fs::write(
            &tags,
            r#"{"Tags": [
                {"Key": "Compliance", "ResourceId": "i-0pci", "ResourceType": "instance", "Value": "pci-dss"},
                {"Key": "Env", "ResourceId": "i-0dev", "ResourceType": "instance", "Value": "dev"}
            ]}"#,
        )
        .expect("write");
        policy.tags = read_tags(&tags).expect("tags");
        let pci = policy.decide(&subject("arn:aws:iam::1:user/a", "i-0pci"));
        assert_eq!((pci.rule.as_str(), pci.commands), ("pci", Period::Years(7)));
        let dev = policy.decide(&subject("arn:aws:iam::1:user/a", "i-0dev"));
        assert_eq!(dev.rule, "default");
        // A tag rule without the tags file, or a tag that is not Key=Value, is refused.
        let without = text.replace("tags_file = \"tags.json\"\n", "");
        let error = format!("{:#}", Policy::parse(&without).expect_err("no tags file"));
        assert!(error.contains("needs tags_file"), "{error}");
        let bad = text.replace("Compliance=pci*", "pci");
        let error = format!("{:#}", Policy::parse(&bad).expect_err("bad tag"));
        assert!(error.contains("is not Key=Value"), "{error}");
        std::fs::write(&tags, "[]").expect("write");
        let error = format!("{:#}", read_tags(&tags).expect_err("not tags"));
        assert!(error.contains("describe-tags"), "{error}");
    }

    #[test]
    fn test_rules_apply_and_the_longest_period_wins() {
        let policy = Policy::parse(POLICY).expect("valid");
        // Seven years of 365.25 days, rounded up: how long its commits are locked.
        assert_eq!(policy.longest_days(), 2557);
        let nobody = policy.decide(&subject("arn:aws:iam::111122223333:user/alice", "i-0dev"));
        assert_eq!(
            (nobody.rule.as_str(), nobody.commands, nobody.raw),
            ("default", Period::Years(3), Period::Years(1))
        );
        let contractor =
            policy.decide(&subject("arn:aws:iam::111122223333:user/contractor-bob", "i-0dev"));
        assert_eq!(
            (contractor.commands, contractor.raw, contractor.action),
            (Period::Years(1), Period::Days(90), Action::Shred)
        );
        // A contractor on prod: prod's periods (longer) and the contractor's shred; both named.
        let both =
            policy.decide(&subject("arn:aws:iam::111122223333:user/contractor-bob", "i-0prod1"));
        assert_eq!(
            (both.rule.as_str(), both.commands, both.raw, both.action),
            ("prod", Period::Years(7), Period::Years(2), Action::Shred)
        );
        assert_eq!(both.conflicts, vec!["contractors".to_string(), "prod".to_string()]);
    }

    #[test]
    fn test_bad_policies_name_the_field() {
        for (text, expected) in [
            ("version = 1\n[default]\ncommands = \"3x\"", "default.commands"),
            (
                "version = 1\n[default]\ncommands = \"1y\"\nraw = \"2y\"",
                "raw (2y) outlives commands (1y)",
            ),
            (
                "version = 1\n[default]\ncommands = \"1y\"\n[[rules]]\nname = \"a\"\ncommands = \"2y\"",
                "matches nothing",
            ),
            (
                "version = 1\n[default]\ncommands = \"1y\"\n[[rules]]\nname = \"a\"\ntarget = \"x\"\n[[rules]]\nname = \"a\"\ntarget = \"y\"",
                "a second rule named",
            ),
            ("version = 1\n[default]\ncommands = \"1y\"\nkeep = true", "unknown field"),
            ("version = 2\n[default]\ncommands = \"1y\"", "version 2"),
        ] {
            let error = format!("{:#}", Policy::parse(text).expect_err(text));
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
    }
}
