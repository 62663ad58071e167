//! Feature flags as operators switch them: creating one, changing it, the list.

use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::domain::shape::{self, Schemas};
use crate::domain::{Msisdn, Region};
use crate::flags::{COLUMNS, Flag};

/// The most numbers or channels one list of a flag holds.
pub const MAX_LISTED: usize = 1_000;

/// A flag to create, as the admin API takes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFlag {
    #[schema(schema_with = Schemas::flag_name)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = Schemas::flag_about)]
    pub description: String,
    pub enabled: bool,
    /// Percent of subscribers it is on for, by a stable hash of their number; `null` or
    /// left out: everyone.
    #[serde(default)]
    #[schema(schema_with = Schemas::rollout)]
    pub rollout: Option<Value>,
    #[serde(default)]
    #[schema(schema_with = Schemas::flag_numbers)]
    pub numbers_in: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = Schemas::flag_numbers)]
    pub numbers_out: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = Schemas::flag_channels)]
    pub channels_in: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = Schemas::flag_channels)]
    pub channels_out: Vec<String>,
    /// Every later change needs a second token's approval (four eyes).
    #[serde(default)]
    pub sensitive: bool,
}

/// What may change of a flag: any of these, the rest stays. A list sent replaces the
/// list held; `"rollout": null` puts the flag back on for everyone.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagChange {
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::flag_about)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::boolean)]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::rollout)]
    pub rollout: Option<Value>,
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::flag_numbers)]
    pub numbers_in: Option<Vec<String>>,
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::flag_numbers)]
    pub numbers_out: Option<Vec<String>>,
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::flag_channels)]
    pub channels_in: Option<Vec<String>>,
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::flag_channels)]
    pub channels_out: Option<Vec<String>>,
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::boolean)]
    pub sensitive: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// The request breaks the admin API's document (a 400).
    #[error("{0}")]
    Invalid(String),
    /// The request keeps to the document but cannot be done (a 422): a number no
    /// numbering plan has.
    #[error("{0}")]
    Unacceptable(String),
    #[error("a flag named {0} exists; change it with PATCH /admin/flags/{0}")]
    Taken(String),
    #[error("no flag is named {0}; create it with POST /admin/flags")]
    Unknown(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The rollout as stored: `None` for everyone.
fn rollout(given: &Value) -> Result<Option<i16>, FlagError> {
    match given {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=100.0).contains(f))
            .map(|f| Some(f as i16))
            .ok_or_else(|| {
                FlagError::Invalid(format!("`rollout` {n} must be a whole percent from 0 to 100"))
            }),
        other => Err(FlagError::Invalid(format!(
            "`rollout` {other} must be a whole percent from 0 to 100, or null"
        ))),
    }
}

/// Whether every list keeps to the document (length, each item's shape): checked before
/// any number is parsed, so that a request breaking the document is a 400, never a 422.
fn lists_fit<'a>(
    numbers: impl IntoIterator<Item = (&'a str, &'a [String])>,
    channels: impl IntoIterator<Item = (&'a str, &'a [String])>,
) -> Result<(), FlagError> {
    const NUMBER: &str = "a phone number (6 to 15 digits, `+` first if international)";
    const CHANNEL: &str = "a channel name (its `name` in the settings)";
    let numbers = numbers.into_iter().map(|(f, l)| (f, l, &shape::MSISDN, NUMBER));
    let channels = channels.into_iter().map(|(f, l)| (f, l, &shape::CHANNEL_NAME, CHANNEL));
    for (field, list, pattern, what) in numbers.chain(channels) {
        if list.len() > MAX_LISTED {
            return Err(FlagError::Invalid(format!(
                "`{field}` holds {} items; at most {MAX_LISTED}",
                list.len()
            )));
        }
        if let Some(bad) = list.iter().find(|v| !pattern.fits(v)) {
            return Err(FlagError::Invalid(format!("`{field}`: `{bad}` is not {what}")));
        }
    }
    Ok(())
}

/// Numbers in E.164, each read in `region` when written nationally, once each.
fn numbers(field: &str, given: &[String], region: Region) -> Result<Vec<String>, FlagError> {
    let parsed: Vec<String> = given
        .iter()
        .map(|n| Msisdn::parse(n, region).map(|m| m.as_e164().to_owned()).map_err(|e| (n, e)))
        .collect::<Result<_, _>>()
        .map_err(|(n, e)| FlagError::Unacceptable(format!("`{field}`: `{n}`: {e}")))?;
    Ok(once_each(&parsed))
}

/// `given` without repeats, in its order.
fn once_each(given: &[String]) -> Vec<String> {
    let mut kept: Vec<String> = Vec::with_capacity(given.len());
    for v in given {
        if !kept.contains(v) {
            kept.push(v.clone());
        }
    }
    kept
}

fn description(given: &str) -> Result<&str, FlagError> {
    if given.chars().count() > 200 || !shape::NO_NUL.fits(given) {
        return Err(FlagError::Invalid("`description` is at most 200 characters".into()));
    }
    Ok(given.trim())
}

/// Creates a flag; every replica decides by it within [`crate::flags::REFRESH`].
pub async fn create(pool: &PgPool, new: &NewFlag, region: Region) -> Result<Flag, FlagError> {
    if !shape::FLAG_NAME.fits(&new.name) {
        return Err(FlagError::Invalid(format!(
            "`name` `{}` must be lower-case letters, digits and `_`, starting with a letter, at most 40",
            new.name
        )));
    }
    let share = new.rollout.as_ref().map_or(Ok(None), rollout)?;
    let about = description(&new.description)?;
    lists_fit(
        [("numbers_in", &new.numbers_in[..]), ("numbers_out", &new.numbers_out[..])],
        [("channels_in", &new.channels_in[..]), ("channels_out", &new.channels_out[..])],
    )?;
    let inserted: Option<Flag> = sqlx::query_as(&format!(
        "INSERT INTO flags (name, description, enabled, rollout, numbers_in, numbers_out, channels_in, channels_out, sensitive)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(&new.name)
    .bind(about)
    .bind(new.enabled)
    .bind(share)
    .bind(numbers("numbers_in", &new.numbers_in, region)?)
    .bind(numbers("numbers_out", &new.numbers_out, region)?)
    .bind(once_each(&new.channels_in))
    .bind(once_each(&new.channels_out))
    .bind(new.sensitive)
    .fetch_optional(pool)
    .await?;
    inserted.ok_or_else(|| FlagError::Taken(new.name.clone()))
}

/// Whether a change to the flag `name` needs four eyes; `None` when no flag has the name.
pub async fn sensitive(pool: &PgPool, name: &str) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar("SELECT sensitive FROM flags WHERE name = $1").bind(name).fetch_optional(pool).await
}

/// The checks of `change` that need no database: what breaks the document.
pub fn problem<'a>(change: &'a FlagChange) -> Result<(), FlagError> {
    change.rollout.as_ref().map(rollout).transpose()?;
    change.description.as_deref().map(description).transpose()?;
    let sent = |pairs: [(&'static str, &'a Option<Vec<String>>); 2]| {
        pairs.into_iter().filter_map(|(field, list)| list.as_deref().map(|l| (field, l)))
    };
    lists_fit(
        sent([("numbers_in", &change.numbers_in), ("numbers_out", &change.numbers_out)]),
        sent([("channels_in", &change.channels_in), ("channels_out", &change.channels_out)]),
    )
}

/// Applies `change` to the flag `name`.
pub async fn change(
    pool: &PgPool,
    name: &str,
    change: &FlagChange,
    region: Region,
) -> Result<Flag, FlagError> {
    problem(change)?;
    let share = change.rollout.as_ref().map(rollout).transpose()?;
    let about = change.description.as_deref().map(description).transpose()?;
    let list =
        |field, given: &Option<Vec<String>>| given.as_deref().map(|g| numbers(field, g, region)).transpose();
    let chans = |given: &Option<Vec<String>>| given.as_deref().map(once_each);
    let updated: Option<Flag> = sqlx::query_as(&format!(
        "UPDATE flags SET description = coalesce($2, description), enabled = coalesce($3, enabled),
                rollout = CASE WHEN $4 THEN $5 ELSE rollout END,
                numbers_in = coalesce($6, numbers_in), numbers_out = coalesce($7, numbers_out),
                channels_in = coalesce($8, channels_in), channels_out = coalesce($9, channels_out),
                sensitive = coalesce($10, sensitive)
         WHERE name = $1 RETURNING {COLUMNS}"
    ))
    .bind(name)
    .bind(about)
    .bind(change.enabled)
    .bind(share.is_some())
    .bind(share.flatten())
    .bind(list("numbers_in", &change.numbers_in)?)
    .bind(list("numbers_out", &change.numbers_out)?)
    .bind(chans(&change.channels_in))
    .bind(chans(&change.channels_out))
    .bind(change.sensitive)
    .fetch_optional(pool)
    .await?;
    updated.ok_or_else(|| FlagError::Unknown(name.to_owned()))
}
