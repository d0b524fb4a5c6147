//! The types of the config tables: Kafka's config types, the values a key takes, and what
//! Ringtail does with a topic config.

/// Kafka's config types (DescribeConfigs v3+ `config_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
}

impl ConfigType {
    pub fn code(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
        }
    }
}

/// What Ringtail does with a topic config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Changes what the broker does, from the next append, read or retention pass on.
    Enforced,
    /// Accepted and reported, without effect (the text says why).
    NoOp(&'static str),
}

/// The values a key takes.
#[derive(Debug, Clone, Copy)]
pub enum Valid {
    Bool,
    /// An integer from `.0` to `.1`.
    Range(i64, i64),
    /// A number from `.0` to `.1`.
    Real(f64, f64),
    /// One of these (as Kafka, case-insensitive).
    OneOf(&'static [&'static str]),
    /// A comma-separated list of these.
    ListOf(&'static [&'static str]),
    /// Kafka's throttled-replicas list: `*`, or `partition:broker` pairs.
    ThrottledReplicas,
}

impl Valid {
    /// Checks `value`; the error says what the key takes.
    pub fn check(self, name: &str, value: &str) -> Result<(), String> {
        let bad = |what: String| Err(format!("{name}={value} is not valid: {what}"));
        match self {
            Valid::Bool => match value.to_ascii_lowercase().as_str() {
                "true" | "false" => Ok(()),
                _ => bad("use true or false".into()),
            },
            Valid::Range(min, max) => match value.trim().parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(()),
                Ok(_) => bad(format!("use a number from {min} to {max}")),
                Err(_) => bad("not a whole number".into()),
            },
            Valid::Real(min, max) => match value.trim().parse::<f64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(()),
                _ => bad(format!("use a number from {min} to {max}")),
            },
            Valid::OneOf(options) => match options.iter().any(|o| o.eq_ignore_ascii_case(value.trim())) {
                true => Ok(()),
                false => bad(format!("use one of {}", options.join(", "))),
            },
            Valid::ListOf(options) => {
                let items: Vec<&str> = value.split(',').map(str::trim).filter(|i| !i.is_empty()).collect();
                match items.iter().find(|i| !options.iter().any(|o| o.eq_ignore_ascii_case(i))) {
                    Some(item) => bad(format!("`{item}` is not one of {}", options.join(", "))),
                    None if items.is_empty() => bad("the list is empty".into()),
                    None => Ok(()),
                }
            }
            Valid::ThrottledReplicas => {
                let value = value.trim();
                let pair = |p: &str| {
                    p.trim()
                        .split_once(':')
                        .is_some_and(|(a, b)| a.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok())
                };
                if value.is_empty() || value == "*" || value.split(',').all(pair) {
                    Ok(())
                } else {
                    bad("use * or partition:broker pairs separated by commas".into())
                }
            }
        }
    }
}

/// Values of a key that Ringtail refuses although Kafka takes them (the test), and why.
pub type Refusal = (fn(&str) -> bool, &'static str);

/// One topic config.
#[derive(Debug, Clone, Copy)]
pub struct TopicKey {
    pub name: &'static str,
    pub ty: ConfigType,
    pub valid: Valid,
    /// Broker configs that give its default, the one AlterConfigs changes first (Kafka's
    /// synonyms; empty for topic-only keys).
    pub synonyms: &'static [&'static str],
    /// Kafka's default; keys Ringtail enforces take theirs from the broker's log settings.
    pub default: &'static str,
    pub treatment: Treatment,
    /// Values Kafka takes that Ringtail refuses, and why.
    pub refused: Option<Refusal>,
    pub doc: &'static str,
}

impl TopicKey {
    /// Kafka's documentation of the key, then what Ringtail does with it.
    pub fn documentation(&self) -> String {
        match (self.treatment, self.refused) {
            (Treatment::Enforced, None) => format!("{} Ringtail: enforced.", self.doc),
            (Treatment::Enforced, Some((_, why))) => format!("{} Ringtail: enforced; refused: {why}.", self.doc),
            (Treatment::NoOp(why), _) => format!("{} Ringtail: accepted, no effect: {why}.", self.doc),
        }
    }
}
