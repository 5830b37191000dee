//! `vault restore --estate` / `--with acls,quotas,users`: which parts to
//! restore, the SCRAM passwords the operator supplies, and the estate's
//! part of the dry run and of the report.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use vault::estate::{EstateOutcome, EstateParts, EstatePlan};
use vault::{Error, Result};

/// What a restore brings back: the records (topics, records, group
/// offsets) and the estate's parts.
#[derive(Clone, Copy, Debug)]
pub(super) struct RestoreParts {
    pub records: bool,
    pub estate: EstateParts,
}

/// `--with` and `--estate`, checked. Neither: the records only, as before.
pub(super) fn parts(with: &[String], estate: bool) -> Result<RestoreParts> {
    if estate && !with.is_empty() {
        return Err(Error::Usage(
            "--estate is --with records,acls,quotas,users: give one or the other".into(),
        ));
    }
    if estate {
        return Ok(RestoreParts {
            records: true,
            estate: EstateParts {
                acls: true,
                quotas: true,
                users: true,
                configs: false,
            },
        });
    }
    if with.is_empty() {
        return Ok(RestoreParts {
            records: true,
            estate: EstateParts::default(),
        });
    }
    let mut p = RestoreParts {
        records: false,
        estate: EstateParts::default(),
    };
    for w in with {
        match w.trim() {
            "records" => p.records = true,
            "acls" => p.estate.acls = true,
            "quotas" => p.estate.quotas = true,
            "users" => p.estate.users = true,
            "configs" => p.estate.configs = true,
            "schemas" => {
                return Err(Error::Usage(format!(
                    "--with {w}: vault does not restore {w} yet; restore the other parts, and see \
                     `vault ls SNAPSHOT --metadata` for what the snapshot holds"
                )));
            }
            other => {
                return Err(Error::Usage(format!(
                    "--with {other:?}: the parts are records, acls, quotas, users and configs"
                )));
            }
        }
    }
    Ok(p)
}

/// `--scram-passwords FILE`: one `USER=PASSWORD` per line; `#` starts a
/// comment line. The password is everything after the first `=`.
pub(super) fn read_passwords(file: Option<&Path>) -> Result<BTreeMap<String, String>> {
    let Some(file) = file else {
        return Ok(BTreeMap::new());
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Usage(format!("--scram-passwords {}: {e}", file.display())))?;
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((user, password)) = line.split_once('=') else {
            return Err(Error::Usage(format!(
                "--scram-passwords {} line {}: expected USER=PASSWORD",
                file.display(),
                i + 1
            )));
        };
        if user.is_empty() || password.is_empty() {
            return Err(Error::Usage(format!(
                "--scram-passwords {} line {}: an empty user or password",
                file.display(),
                i + 1
            )));
        }
        out.insert(user.to_string(), password.to_string());
    }
    Ok(out)
}

/// The estate's part of `--dry-run --json` and of the report.
#[derive(Serialize)]
pub(super) struct EstateReport<'a> {
    pub parts: EstateParts,
    /// One line per change (a dry run: would make).
    pub changes: Vec<String>,
    pub already_there: &'a [String],
    pub conflicts: &'a [String],
    pub not_restored: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done: Option<&'a EstateOutcome>,
}

impl<'a> EstateReport<'a> {
    pub fn of(plan: &'a EstatePlan, done: Option<&'a EstateOutcome>) -> EstateReport<'a> {
        EstateReport {
            parts: plan.parts,
            changes: plan.changes(),
            already_there: &plan.already_there,
            conflicts: &plan.conflicts,
            not_restored: &plan.not_restored,
            done,
        }
    }
}

/// The estate's part of a dry run, in words.
pub(super) fn print_estate_plan(plan: &EstatePlan) {
    if !plan.parts.any() {
        return;
    }
    for c in plan.changes() {
        println!("  {c}");
    }
    for t in &plan.already_there {
        println!("  already on the target: {t}");
    }
    for n in &plan.not_restored {
        println!("  not restored: {n}");
    }
    for c in &plan.conflicts {
        println!("  CONFLICT: {c}");
    }
    if !plan.conflicts.is_empty() {
        println!("  the restore would be refused: --merge overwrites what differs");
    }
}
